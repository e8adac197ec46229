"""Tekmetric reads that stay true while the data changes under them: pages read while ROs are
deleted or updated, reads cut short and resumed, the look-back window, lookups that fail, and
the reconciliation that brings customer edits in. The fake is a real HTTP server on loopback."""

from __future__ import annotations

import json
import logging
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest

from dms.tekmetric import TekmetricConnector
from tests.fakes.fake_tekmetric import FakeTekmetric, stamp
from tests.support.tekmetric import tekmetric_connector

TZ = ZoneInfo("America/Toronto")
MOBILE = [{"number": "(438) 555-0142", "type": "Mobile", "primary": True}]


@pytest.fixture
def connect(fake_tekmetric):
    def make(**overrides) -> TekmetricConnector:
        return tekmetric_connector(fake_tekmetric, TZ, **overrides)

    return make


def owner(fake: FakeTekmetric, last_name: str = "Bélanger"):
    customer = fake.add_customer("Luc", last_name, phones=MOBILE)
    return customer, fake.add_vehicle(customer)


def ids_of(*results) -> set[str]:
    return {r.external_id for result in results for r in result.records}


def settle(fake: FakeTekmetric) -> None:
    fake.advance(600)


def updated_ro_reads(fake: FakeTekmetric) -> list:
    return [
        c
        for c in fake.calls_to("/api/v1/repair-orders")
        if "updatedDateStart" in c.query and "repairOrderStatusId" not in c.query
    ]


# --- item 2: pages read while the data changes ------------------------------------------------


def test_an_ro_deleted_or_updated_between_two_pages_makes_no_other_ro_go_missing(fake_tekmetric, connect):
    customer, vehicle = owner(fake_tekmetric)
    ids = [fake_tekmetric.add_repair_order(customer, vehicle) for _ in range(150)]
    settle(fake_tekmetric)
    connector = connect()
    first = connector.fetch(None)
    settle(fake_tekmetric)
    for ro in ids:  # 150 changed ROs
        fake_tekmetric.update_repair_order(ro, keytag=f"K{ro}")
    settle(fake_tekmetric)
    deleted, updated_again = ids[0], ids[1]
    seen: list[dict] = []

    def between_pages(path, query):
        if path.endswith("repair-orders") and "updatedDateStart" in query and "repairOrderStatusId" not in query:
            seen.append(query)
            if len(seen) == 2:  # after page one was read, before the next one is
                fake_tekmetric.delete_repair_order(deleted)
                fake_tekmetric.update_repair_order(updated_again, keytag="moved")

    fake_tekmetric.before_page = between_pages
    second = connector.fetch(first.watermark)
    fake_tekmetric.before_page = None
    settle(fake_tekmetric)
    third = connector.fetch(second.watermark)

    assert len(seen) >= 2, "the change did not happen between two page reads"
    assert {f"ro:{i}" for i in ids[1:]} <= ids_of(second, third)
    assert f"ro:{deleted}" in {r.external_id for r in second.removed + third.removed}
    latest = {r.external_id: r for r in second.records + third.records}
    assert latest[f"ro:{updated_again}"].tag_number == "moved"


def test_pages_are_read_with_an_explicit_sort_and_the_date_filter_format(fake_tekmetric, connect):
    customer, vehicle = owner(fake_tekmetric)
    for _ in range(120):
        fake_tekmetric.add_repair_order(customer, vehicle)
    settle(fake_tekmetric)
    connect().fetch("2026-11-01T00:00:00Z")
    lists = [c for c in fake_tekmetric.calls if c.path.endswith(("repair-orders", "appointments")) and "vehicleId" not in c.query]
    assert lists and all(c.query.get("sort") and c.query.get("sortDirection") == "ASC" for c in lists)
    for c in lists:
        for key in ("updatedDateStart", "deletedDateStart"):
            if key in c.query:
                assert len(c.query[key]) == 20 and c.query[key].endswith("Z")


def test_a_read_longer_than_the_page_budget_goes_on_at_the_next_sync(fake_tekmetric, connect):
    customer, vehicle = owner(fake_tekmetric)
    ids = [fake_tekmetric.add_repair_order(customer, vehicle) for _ in range(250)]
    settle(fake_tekmetric)
    connector = connect(max_pages=2)
    first = connector.fetch(None)
    assert first.incomplete and "more than 2 pages" in first.incomplete
    assert 0 < len(first.records) < 250
    second = connector.fetch(first.watermark)
    assert second.incomplete is None
    assert ids_of(first, second) == {f"ro:{i}" for i in ids}


# --- item 2: resumable, first read at the look-back window, lookups only for what is kept ------


def test_the_first_read_starts_at_the_look_back_window_and_looks_up_only_what_is_kept(fake_tekmetric, connect):
    fake_tekmetric.advance(-60 * 86400)  # two months ago
    stale_customer, stale_vehicle = owner(fake_tekmetric, "Ancien")
    estimate = fake_tekmetric.add_repair_order(stale_customer, stale_vehicle, status_id=1)
    complete = fake_tekmetric.add_repair_order(stale_customer, stale_vehicle, status_id=3)
    past_appointment = fake_tekmetric.add_appointment(stale_customer, stale_vehicle, start=fake_tekmetric.now)
    posted_at = stamp(fake_tekmetric.now + timedelta(days=15))
    fake_tekmetric.advance(60 * 86400)
    # Posted 45 days ago, touched today (a payment): closed before the window, nothing to look up.
    paid_customer, paid_vehicle = owner(fake_tekmetric, "Payé")
    paid = fake_tekmetric.add_repair_order(paid_customer, paid_vehicle, status_id=6, postedDate=posted_at)
    customer, vehicle = owner(fake_tekmetric)
    current = fake_tekmetric.add_repair_order(customer, vehicle)
    settle(fake_tekmetric)

    result = connect().fetch(None)

    assert ids_of(result) == {f"ro:{current}"}
    assert f"ro:{estimate}" not in ids_of(result) and f"ro:{complete}" not in ids_of(result)
    assert f"appointment:{past_appointment}" not in ids_of(result) and f"ro:{paid}" not in ids_of(result)
    assert result.old_closed == 1
    looked_up = {c.path for c in fake_tekmetric.calls_to("/api/v1/customers/")}
    assert looked_up == {f"/api/v1/customers/{customer}"}
    window = stamp(fake_tekmetric.now - timedelta(days=14))  # by Tekmetric's clock
    assert {c.query["updatedDateStart"] for c in updated_ro_reads(fake_tekmetric)} == {window}


def test_a_refused_employee_lookup_keeps_the_ro_with_the_advisor_unknown(fake_tekmetric, connect, caplog):
    customer, vehicle = owner(fake_tekmetric)
    hidden = fake_tekmetric.add_employee("Paul", "Caché", email="paul@dealer.example")
    visible = fake_tekmetric.add_employee("Marie", "Roy", email="marie@dealer.example")
    refused = [fake_tekmetric.add_repair_order(customer, vehicle, service_writer_id=hidden) for _ in range(2)]
    fine = fake_tekmetric.add_repair_order(customer, vehicle, service_writer_id=visible)
    fake_tekmetric.fail(times=100, status=403, when=lambda path, query: path == f"/api/v1/employees/{hidden}")
    caplog.set_level(logging.WARNING, logger="dms")
    result = connect().fetch(None)
    records = {r.external_id: r for r in result.records}
    assert result.incomplete is None
    for ro in refused:
        assert records[f"ro:{ro}"].advisor_email is None and records[f"ro:{ro}"].unknown == ("advisor_email",)
        assert records[f"ro:{ro}"].customer_last_name == "Bélanger"
    assert records[f"ro:{fine}"].advisor_email == "marie@dealer.example" and records[f"ro:{fine}"].unknown == ()
    assert len(fake_tekmetric.calls_to(f"/api/v1/employees/{hidden}")) == 1  # asked once per fetch
    lines = [r.getMessage() for r in caplog.records if "403" in r.getMessage()]
    assert len(lines) == 1 and "1 employees" in lines[0] and "2 record(s)" in lines[0]


def test_a_lasting_429_on_a_lookup_holds_that_ro_for_the_next_sync(fake_tekmetric, connect):
    first_owner, second_owner, third_owner = (owner(fake_tekmetric, name) for name in ("Un", "Deux", "Trois"))
    ros = [fake_tekmetric.add_repair_order(*o) for o in (first_owner, second_owner, third_owner)]
    settle(fake_tekmetric)
    connector = connect(max_retries=3)
    fake_tekmetric.rate_limit(times=4, retry_after=0, when=lambda path, query: path == f"/api/v1/customers/{second_owner[0]}")
    first = connector.fetch(None)  # does not raise
    assert first.incomplete and "429" in first.incomplete
    assert ids_of(first) == {f"ro:{ros[0]}"}
    second = connector.fetch(first.watermark)
    assert {f"ro:{ros[1]}", f"ro:{ros[2]}"} <= ids_of(second)
    assert {r.external_id: r for r in second.records}[f"ro:{ros[1]}"].customer_last_name == "Deux"


# --- item 2: customer edits arrive ---------------------------------------------------------------


def test_a_periodic_reconciliation_rereads_open_ros_so_customer_edits_arrive(fake_tekmetric, connect):
    customer, vehicle = owner(fake_tekmetric)
    open_ro = fake_tekmetric.add_repair_order(customer, vehicle, status_id=2)
    posted = fake_tekmetric.add_repair_order(customer, vehicle, status_id=5, postedDate=stamp(fake_tekmetric.now))
    settle(fake_tekmetric)
    connector = connect(reconcile_every=timedelta(hours=1))
    first = connector.fetch(None)
    assert ids_of(first) == {f"ro:{open_ro}", f"ro:{posted}"}
    # The phone is corrected in Tekmetric: the customer changes, the RO's updatedDate does not.
    fake_tekmetric.customers[customer]["phone"] = [{"number": "514 555 0177", "type": "Mobile", "primary": True}]
    settle(fake_tekmetric)
    soon = connector.fetch(first.watermark)
    assert soon.refresh == [] and f"ro:{open_ro}" not in ids_of(soon)  # not due yet
    fake_tekmetric.advance(3600)
    later = connector.fetch(soon.watermark)
    assert [(r.external_id, r.mobile_phone) for r in later.refresh] == [(f"ro:{open_ro}", "+15145550177")]
    reconciled = json.loads(later.watermark)["reconciled"]
    assert reconciled == stamp(fake_tekmetric.now.astimezone(UTC))
