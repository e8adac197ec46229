"""The sync engine on SQLite and PostgreSQL: idempotent upserts, statuses, bad rows, a DMS that fails."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dms.errors import DmsUnavailable
from dms.file_feed import FileFeedConnector
from dms.records import FetchResult
from dms.sync_engine import SyncEngine, roll_over
from spaces.status_rules import set_status
from storage.db import database, open_database
from storage.migrations import migrate
from storage.models import RepairOrder, RoAlias, StatusChange, SyncState
from tests.support.dms_feed import row, write_feed

TZ = ZoneInfo("America/Toronto")
NOW = datetime(2026, 11, 29, 7, 0, tzinfo=TZ)


@pytest.fixture
def db(database_url):
    open_database(database_url)
    migrate()
    with database.connection_context():
        yield


@pytest.fixture
def feed(tmp_path):
    return tmp_path / "feed.csv"


def sync(feed, now=NOW):
    return SyncEngine(FileFeedConnector(str(feed), TZ), TZ).run(now)


def test_first_sync_creates_each_ro_with_its_status(db, feed):
    write_feed(
        feed,
        [
            row("48213", "2026-11-29T09:15"),
            row("48214", "2026-11-30T08:00", customer_last_name="Bélanger"),
            row("48215", "2026-11-27T10:00", status="closed", closed_at="2026-11-28T16:00"),
        ],
    )
    report = sync(feed)
    assert sorted(report.created) == ["48213", "48214", "48215"] and not report.error
    statuses = {ro.ro_number: ro.status for ro in RepairOrder.select()}
    assert statuses == {"48213": "in_progress", "48214": "upcoming", "48215": "completed"}
    ro = RepairOrder.get(RepairOrder.ro_number == "48214")
    assert ro.mobile_phone == "+15145550142" and ro.phone_digits == "15145550142"
    assert ro.name_folded == "jean belanger"
    # Shop-local 08:00 in winter is 13:00 UTC.
    assert ro.appointment_at == datetime(2026, 11, 30, 13, 0)
    assert all(r.slack_dirty for r in RepairOrder.select())


def test_second_sync_with_no_change_touches_nothing(db, feed):
    write_feed(feed, [row("48213"), row("48214")])
    sync(feed)
    RepairOrder.update(slack_dirty=False).execute()
    report = sync(feed)
    assert report.created == [] and report.changed == [] and report.unchanged == 2
    assert not RepairOrder.select().where(RepairOrder.slack_dirty == True).exists()


def test_a_changed_row_updates_and_marks_the_ro_for_slack(db, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    sync(feed)
    RepairOrder.update(slack_dirty=False).execute()
    write_feed(feed, [row("48213", "2026-11-30T09:00", status="closed", vehicle_model="Accord")])
    report = sync(feed)
    assert report.changed == ["48213"] and report.status_changes == 1
    ro = RepairOrder.get()
    assert ro.status == "completed" and ro.vehicle_model == "Accord" and ro.slack_dirty
    change = StatusChange.select().order_by(StatusChange.id.desc()).first()
    assert (change.old_status, change.new_status, change.source) == ("upcoming", "completed", "dms")


def test_a_row_that_disappears_is_kept_as_it_was(db, feed):
    write_feed(feed, [row("48213"), row("48214")])
    sync(feed)
    write_feed(feed, [row("48213")])
    report = sync(feed)
    assert report.unchanged == 1
    assert RepairOrder.select().count() == 2
    assert RepairOrder.get(RepairOrder.ro_number == "48214").status == "in_progress"


def test_bad_rows_are_skipped_with_reasons_and_the_rest_goes_on(db, feed, caplog):
    caplog.set_level(logging.INFO)
    write_feed(
        feed,
        [
            row("48213"),
            row("", customer_last_name="NoNumber"),
            row("48215", appointment_at="next tuesday"),
            row("48216", mobile_phone="555-01"),
            row("48217"),
        ],
    )
    report = sync(feed)
    assert sorted(report.created) == ["48213", "48217"]
    assert len(report.rejected) == 3
    reasons = " ".join(r.reason for r in report.rejected)
    assert "555-01" not in reasons
    assert "skipped" in caplog.text and "next tuesday" in caplog.text  # the reasons are logged…
    assert "555-01" not in caplog.text  # …with the phone masked


def test_a_dms_that_is_down_changes_nothing_and_the_next_sync_catches_up(db, feed):
    write_feed(feed, [row("48213")])
    sync(feed)
    feed.unlink()
    report = sync(feed)
    assert report.error and "DmsUnavailable" in report.error
    assert RepairOrder.select().count() == 1
    assert SyncState.get().last_error
    write_feed(feed, [row("48213"), row("48214")])
    report = sync(feed)
    assert report.created == ["48214"] and SyncState.get().last_error is None


def test_a_garbage_feed_changes_nothing(db, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    sync(feed)
    feed.write_bytes(b"\x00\x01<html>oops</html>\xff")
    report = sync(feed)
    assert report.error
    ro = RepairOrder.get()
    assert ro.status == "upcoming" and ro.ro_number == "48213"


def test_manual_status_holds_until_the_dms_changes_the_ro(db, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    sync(feed)
    ro = RepairOrder.get()
    assert set_status(ro, "completed", "UADVISOR")
    assert not set_status(ro, "completed", "UADVISOR")  # same value: nothing recorded
    sync(feed)  # unchanged in the DMS: the manual value holds
    assert RepairOrder.get().status == "completed"
    roll_over(TZ, NOW + timedelta(days=1))  # nor does the rollover touch it
    assert RepairOrder.get().status == "completed"
    write_feed(feed, [row("48213", "2026-11-30T14:00", promised_at="2026-11-30T17:00", mobile_phone="514 555-0199")])
    sync(feed)  # a corrected phone, a promised time, an hour moved within the day: the person's choice holds
    ro = RepairOrder.get()
    assert ro.status == "completed" and ro.status_manual and ro.mobile_phone == "+15145550199"
    write_feed(feed, [row("48213", "2026-12-01T09:00", promised_at="2026-11-30T17:00", mobile_phone="514 555-0199")])
    sync(feed)  # the appointment moved to another day: the DMS speaks again
    ro = RepairOrder.get()
    assert ro.status == "upcoming" and not ro.status_manual


@pytest.mark.parametrize("dms_status", ["closed", "reopened"])
def test_a_manual_status_yields_when_the_dms_closes_or_reopens_the_ro(db, feed, dms_status):
    first = "open" if dms_status == "closed" else "closed"
    write_feed(feed, [row("48213", "2026-11-28T09:00", status=first, closed_at="2026-11-28T16:00" if first == "closed" else "")])
    sync(feed)
    ro = RepairOrder.get()
    assert set_status(ro, "upcoming", "UADVISOR")
    now_status = "closed" if dms_status == "closed" else "open"
    write_feed(
        feed,
        [row("48213", "2026-11-28T09:00", status=now_status, closed_at="2026-11-28T16:00" if now_status == "closed" else "")],
    )
    sync(feed)
    ro = RepairOrder.get()
    assert not ro.status_manual
    assert ro.status == ("completed" if dms_status == "closed" else "in_progress")


def test_midnight_rollover_moves_upcoming_to_in_progress(db, feed):
    write_feed(feed, [row("48213", "2026-11-30T08:00"), row("48214", "2026-12-01T08:00")])
    sync(feed)
    RepairOrder.update(slack_dirty=False).execute()
    moved = roll_over(TZ, datetime(2026, 11, 30, 0, 0, 5, tzinfo=TZ))
    assert moved == 1
    assert RepairOrder.get(RepairOrder.ro_number == "48213").status == "in_progress"
    assert RepairOrder.get(RepairOrder.ro_number == "48213").slack_dirty
    assert RepairOrder.get(RepairOrder.ro_number == "48214").status == "upcoming"
    change = StatusChange.select().where(StatusChange.source == "schedule").get()
    assert (change.old_status, change.new_status) == ("upcoming", "in_progress")
    assert roll_over(TZ, datetime(2026, 11, 30, 0, 1, tzinfo=TZ)) == 0


def test_an_appointment_space_is_taken_over_by_its_ro(db):
    from dms.records import DmsRecord

    def record(external_id, number, aliases=(), model="Civic"):
        return DmsRecord(
            source="tekmetric",
            external_id=external_id,
            ro_number=number,
            tag_number=None,
            closed=False,
            appointment_at=datetime(2026, 11, 30, 9, tzinfo=TZ),
            promised_at=None,
            closed_at=None,
            customer_first_name="Jean",
            customer_last_name="Tremblay",
            mobile_phone=None,
            email=None,
            language="fr",
            vehicle_year=2021,
            vehicle_make="Honda",
            vehicle_model=model,
            vin=None,
            advisor_email=None,
            aliases=aliases,
        )

    class Feed:
        source = "tekmetric"

        def __init__(self):
            self.records = []

        def fetch(self, since):
            return FetchResult(records=self.records, snapshot=False, watermark="w")

    connector = Feed()
    engine = SyncEngine(connector, TZ)
    connector.records = [record("appointment:77", "A77")]
    engine.run(NOW)
    connector.records = [record("ro:5", "48213", aliases=("appointment:77",))]
    report = engine.run(NOW)
    assert report.changed == ["48213"]
    assert RepairOrder.select().count() == 1
    ro = RepairOrder.get()
    assert (ro.external_id, ro.ro_number) == ("ro:5", "48213")
    assert RoAlias.get().alias == "appointment:77"
    # The old appointment showing up again must not pull the space back.
    connector.records = [record("appointment:77", "A77", model="Other")]
    engine.run(NOW)
    ro = RepairOrder.get()
    assert (ro.external_id, ro.ro_number, ro.vehicle_model) == ("ro:5", "48213", "Civic")
    # A second RO that claims the same appointment (a second visit) gets its own space.
    connector.records = [record("ro:6", "48214", aliases=("appointment:77",))]
    report = engine.run(NOW)
    assert report.created == ["48214"]
    assert RepairOrder.get(RepairOrder.external_id == "ro:5").ro_number == "48213"


def test_unavailable_connector_error_is_reported_not_raised(db):
    class Down:
        source = "tekmetric"

        def fetch(self, since):
            raise DmsUnavailable("connection refused")

    report = SyncEngine(Down(), TZ).run(NOW)
    assert "connection refused" in report.error and "Nothing was changed" in report.summary()


def test_ros_closed_long_ago_get_no_space_on_first_sight(db, feed):
    write_feed(
        feed,
        [
            row("40001", "2025-01-10T09:00", status="closed", closed_at="2025-01-10T17:00"),
            row("48215", "2026-11-27T10:00", status="closed", closed_at="2026-11-28T16:00"),
        ],
    )
    report = sync(feed)
    assert report.created == ["48215"] and report.old_closed == 1
    assert "1 closed before the look-back window ignored" in report.summary()


def test_synced_ros_are_found_by_search_and_follow_dms_changes(db, feed):
    from storage import search_index as search

    write_feed(feed, [row("48213", customer_last_name="Bélanger"), row("48214", customer_last_name="Côté")])
    sync(feed)
    assert [ro.ro_number for ro in search.find("belanger").items] == ["48213"]
    write_feed(feed, [row("48213", customer_last_name="Gagnon"), row("48214", customer_last_name="Côté")])
    sync(feed)
    assert search.find("belanger").items == []
    assert [ro.ro_number for ro in search.find("gagnon").items] == ["48213"]


def test_oversized_values_are_cut_to_fit_and_oversized_ids_skipped(db, feed):
    """On PostgreSQL an oversized value would fail the whole batch; one odd row must not stop a sync."""
    write_feed(
        feed,
        [
            row("48213"),
            row("48214", vin="1HGCM82633A00435212345678901234567890", vehicle_model="M" * 300, customer_last_name="L" * 400),
            row("9" * 80),
            row("48216"),
        ],
    )
    report = sync(feed)
    assert sorted(report.created) == ["48213", "48214", "48216"]
    assert [r.reason for r in report.rejected] == ["RO number longer than 64 characters"]
    ro = RepairOrder.get(RepairOrder.ro_number == "48214")
    assert len(ro.vin) == RepairOrder.vin.max_length and ro.vehicle_model == "M" * 255
    assert sync(feed).unchanged == 3  # and the next sync recognises every RO


def test_the_watermark_is_stored_and_passed_back(db):
    seen: list = []

    class Incremental:
        source = "tekmetric"

        def fetch(self, since):
            seen.append(since)
            return FetchResult(records=[], snapshot=False, watermark=f"w{len(seen)}")

    engine = SyncEngine(Incremental(), TZ)
    engine.run(NOW)
    engine.run(NOW)
    assert seen == [None, "w1"]
    assert SyncState.get(SyncState.source == "tekmetric").watermark == "w2"


@pytest.mark.parametrize("cut", ["48213,T213,open", "48213,T213,open,2026-11-30T09:00,,,Jean,Tremb"])
def test_a_feed_cut_while_it_is_written_changes_nothing(db, feed, cut):
    """The export is read while the DMS is still writing it: the cut row must not blank its RO,
    reset a status a person set, nor drop its search keys."""
    from storage import search_index as search

    write_feed(feed, [row("48212"), row("48213", "2026-11-30T09:00")])
    sync(feed)
    assert set_status(RepairOrder.get(RepairOrder.ro_number == "48213"), "completed", "UADVISOR")
    whole = feed.read_text(encoding="utf-8")
    feed.write_text(whole[: whole.index("48213")] + cut, encoding="utf-8")
    report = sync(feed)
    assert report.error and "middle of a line" in report.error
    ro = RepairOrder.get(RepairOrder.ro_number == "48213")
    assert (ro.customer_last_name, ro.mobile_phone, ro.status, ro.status_manual) == (
        "Tremblay",
        "+15145550142",
        "completed",
        True,
    )
    assert ro.appointment_at is not None
    assert (
        StatusChange.select()
        .where(StatusChange.source == "dms", StatusChange.ro == ro, StatusChange.old_status.is_null(False))
        .count()
        == 0
    )
    assert "48213" in [r.ro_number for r in search.find("tremblay").items]


def test_a_row_cut_short_in_the_middle_is_skipped_and_changes_nothing(db, feed):
    write_feed(feed, [row("48212"), row("48213", "2026-11-30T09:00")])
    sync(feed)
    lines = feed.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = "48213,T213,open\r\n"  # 48213's row, cut short, with a later row after it
    feed.write_text("".join(lines) + "48214,T214,open," + ",".join([""] * 13) + "\r\n", encoding="utf-8")
    report = sync(feed)
    assert not report.error and report.created == ["48214"]
    assert [r.reason for r in report.rejected] == ["3 fields, the header has 16"]
    assert RepairOrder.get(RepairOrder.ro_number == "48213").customer_last_name == "Tremblay"
