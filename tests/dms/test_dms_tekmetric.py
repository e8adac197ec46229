import json
import socket
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from dms.connector import make_connector
from dms.errors import DmsAuthError, DmsBadData, DmsUnavailable
from dms.records import DmsRecord
from dms.tekmetric import TekmetricConnector
from tests.fakes.fake_tekmetric import FakeTekmetric
from tests.support.tekmetric import tekmetric_connector

TZ = ZoneInfo("America/Toronto")
UTC = UTC
MOBILE = [
    {"number": "514 555 0199", "type": "Home", "primary": True},
    {"number": "(438) 555-0142", "type": "Mobile", "primary": False},
]


@pytest.fixture
def connect(fake_tekmetric):
    def make(**overrides) -> TekmetricConnector:
        return tekmetric_connector(fake_tekmetric, TZ, **overrides)

    return make


def seed_owner(fake: FakeTekmetric, phones=MOBILE):
    customer = fake.add_customer("Luc", "Bélanger", phones=phones, email="Luc.Belanger@Example.com")
    vehicle = fake.add_vehicle(customer, year=2020, make="Ford", model="F-150", vin="1ftew1ep24r084529")
    advisor = fake.add_employee("Marie", "Roy", email="Marie.Roy@Dealer.Example")
    return customer, vehicle, advisor


def by_id(result):
    return {r.external_id: r for r in result.records}


def position(watermark: str, list_name: str = "ro") -> str:
    """Where the watermark says a list's read has got to (its UTC stamp)."""
    return json.loads(watermark)[list_name]


def updated_reads(fake: FakeTekmetric, path: str = "/api/v1/repair-orders"):
    return [c for c in fake.calls_to(path) if "updatedDateStart" in c.query and "repairOrderStatusId" not in c.query]


def settle(fake: FakeTekmetric):
    """Let server time pass, so the last changes are older than the watermark's safety margin."""
    fake.advance(600)


# --- reading --------------------------------------------------------------------


def test_full_read_follows_pages(fake_tekmetric, connect):
    customer, vehicle, advisor = seed_owner(fake_tekmetric)
    ids = [fake_tekmetric.add_repair_order(customer, vehicle, service_writer_id=advisor) for _ in range(250)]
    settle(fake_tekmetric)
    result = connect().fetch(None)
    assert result.snapshot is False and result.rejected == []
    assert set(by_id(result)) == {f"ro:{i}" for i in ids}
    # Always page 0 of a moving date filter, sorted by that date: a record leaving the list shifts nothing.
    pages = updated_reads(fake_tekmetric)
    assert [(c.query["page"], c.query["size"], c.query["sort"], c.query["sortDirection"]) for c in pages] == [
        ("0", "100", "updatedDate", "ASC")
    ] * 3
    starts = [c.query["updatedDateStart"] for c in pages]
    assert starts == sorted(starts) and len(set(starts)) == 3
    assert all(c.query["shop"] == str(fake_tekmetric.shop_id) for c in pages)


def test_paging_stops_at_total_pages_when_server_never_says_last(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    for _ in range(150):
        fake_tekmetric.add_repair_order(customer, vehicle)
    fake_tekmetric.never_last = True
    assert len(connect().fetch(None).records) == 150
    assert len(updated_reads(fake_tekmetric)) == 2


def test_incremental_read_returns_only_what_changed(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    ids = [fake_tekmetric.add_repair_order(customer, vehicle) for _ in range(120)]
    settle(fake_tekmetric)
    connector = connect()
    first = connector.fetch(None)
    newest = fake_tekmetric.repair_orders[ids[-1]]["updatedDate"]
    assert position(first.watermark) == newest

    settle(fake_tekmetric)
    fake_tekmetric.update_repair_order(ids[3], keytag="K-77")
    fake_tekmetric.update_repair_order(ids[50], status_id=5, postedDate="2026-11-30T20:00:00Z")
    settle(fake_tekmetric)
    calls_before = len(fake_tekmetric.calls)
    second = connector.fetch(first.watermark)
    queries = [c.query for c in fake_tekmetric.calls[calls_before:] if c.path.endswith("repair-orders")]
    assert {q["updatedDateStart"] for q in queries if "updatedDateStart" in q} == {newest}
    assert {q["deletedDateStart"] for q in queries if "deletedDateStart" in q} == {position(first.watermark, "deleted")}
    # updatedDateStart is inclusive: the RO stamped exactly at the old watermark comes back too.
    assert set(by_id(second)) == {f"ro:{ids[3]}", f"ro:{ids[50]}", f"ro:{ids[-1]}"}
    assert by_id(second)[f"ro:{ids[3]}"].tag_number == "K-77"
    assert position(second.watermark) == fake_tekmetric.repair_orders[ids[50]]["updatedDate"]

    settle(fake_tekmetric)
    third = connector.fetch(second.watermark)
    assert set(by_id(third)) == {f"ro:{ids[50]}"}
    assert position(third.watermark) == position(second.watermark)


def test_watermark_stays_behind_changes_made_while_reading(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    settle(fake_tekmetric)
    connector = connect()
    first = connector.fetch(None)
    ro = fake_tekmetric.add_repair_order(customer, vehicle)  # as fresh as the server clock
    second = connector.fetch(first.watermark)
    assert f"ro:{ro}" in by_id(second)
    assert position(second.watermark) < fake_tekmetric.repair_orders[ro]["updatedDate"]
    settle(fake_tekmetric)
    assert f"ro:{ro}" in by_id(connector.fetch(second.watermark))


def test_empty_shop_reads_nothing_and_starts_at_the_look_back_window(fake_tekmetric, connect):
    result = connect().fetch(None)
    assert (result.records, result.rejected, result.removed) == ([], [], [])
    window = (fake_tekmetric.now - timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert position(result.watermark) == position(result.watermark, "appointments") == window


# --- mapping ------------------------------------------------------------------------


def test_repair_order_fields(fake_tekmetric, connect):
    customer, vehicle, advisor = seed_owner(fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(
        customer,
        vehicle,
        number=48211,
        keytag=" T-12 ",
        service_writer_id=advisor,
        appointment_start="2026-11-30T13:30:00Z",
        promised=datetime(2026, 11, 30, 22, 0, tzinfo=UTC),
    )
    record = by_id(connect().fetch(None))[f"ro:{ro}"]
    assert isinstance(record, DmsRecord) and record.source == "tekmetric"
    assert (record.ro_number, record.tag_number, record.closed) == ("48211", "T-12", False)
    assert record.appointment_at == datetime(2026, 11, 30, 8, 30, tzinfo=TZ)
    assert record.promised_at == datetime(2026, 11, 30, 17, 0, tzinfo=TZ)
    assert (record.customer_first_name, record.customer_last_name) == ("Luc", "Bélanger")
    assert record.mobile_phone == "+14385550142"
    assert record.email == "luc.belanger@example.com"
    assert record.advisor_email == "marie.roy@dealer.example"
    assert (record.vehicle_year, record.vehicle_make, record.vehicle_model) == (2020, "Ford", "F-150")
    assert record.vin == "1FTEW1EP24R084529"
    assert record.language == "en" and record.aliases == () and record.closed_at is None


@pytest.mark.parametrize("status_id, closed", [(1, False), (2, False), (3, False), (4, True), (5, True), (6, True)])
def test_status_mapping(fake_tekmetric, connect, status_id, closed):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(
        customer,
        vehicle,
        status_id=status_id,
        completedDate="2026-11-30T18:00:00Z",
        postedDate="2026-11-30T19:00:00Z" if status_id in (5, 6) else None,
    )
    record = by_id(connect().fetch(None))[f"ro:{ro}"]
    assert record.closed is closed
    if status_id in (5, 6):
        assert record.closed_at == datetime(2026, 11, 30, 14, 0, tzinfo=TZ)
    elif not closed:
        assert record.closed_at is None


@pytest.mark.parametrize(
    "phones, expected",
    [
        (MOBILE, "+14385550142"),
        (
            [
                {"number": "514-555-0101", "type": "Work", "primary": False},
                {"number": "514-555-0102", "type": "Cell", "primary": True},
            ],
            "+15145550102",
        ),
        ([{"number": "819 555 0103", "type": "Home", "primary": True}], "+18195550103"),
        ([{"number": "819 555 0104", "type": "Work", "primary": False}], None),
        ([], None),
        ([{"number": "111-111-1111", "type": "Mobile", "primary": True}], None),  # invalid: kept, no mobile
    ],
)
def test_mobile_phone_choice(fake_tekmetric, connect, phones, expected):
    customer, vehicle, _ = seed_owner(fake_tekmetric, phones=phones)
    ro = fake_tekmetric.add_repair_order(customer, vehicle)
    result = connect().fetch(None)
    assert by_id(result)[f"ro:{ro}"].mobile_phone == expected
    assert result.rejected == []


def test_missing_customer_vehicle_or_advisor_do_not_lose_the_ro(fake_tekmetric, connect):
    ro = fake_tekmetric.add_repair_order(99999, 88888, service_writer_id=77777)
    record = by_id(connect().fetch(None))[f"ro:{ro}"]
    assert (record.customer_last_name, record.vehicle_make, record.advisor_email) == ("", None, None)


def test_customer_vehicle_and_employee_lookups_are_cached_within_a_fetch(fake_tekmetric, connect):
    customer, vehicle, advisor = seed_owner(fake_tekmetric)
    for _ in range(100):
        fake_tekmetric.add_repair_order(customer, vehicle, service_writer_id=advisor)
    connector = connect()
    connector.fetch(None)
    assert len(fake_tekmetric.calls_to("/api/v1/customers/")) == 1
    assert len(fake_tekmetric.calls_to("/api/v1/vehicles/")) == 1
    assert len(fake_tekmetric.calls_to("/api/v1/employees/")) == 1
    fake_tekmetric.customers[customer]["lastName"] = "Côté"
    result = connector.fetch(None)  # a new fetch sees the customer's new name
    assert len(fake_tekmetric.calls_to("/api/v1/customers/")) == 2
    assert {r.customer_last_name for r in result.records} == {"Côté"}


# --- appointments ----------------------------------------------------------------------


def test_appointment_without_ro_is_a_space(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    appointment = fake_tekmetric.add_appointment(
        customer, vehicle, start=datetime(2026, 12, 1, 14, 0, tzinfo=UTC), pickup=datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    )
    assert fake_tekmetric.appointments[appointment]["startTime"] == "2026-12-01T14:00:00"  # no offset, like Tekmetric
    record = by_id(connect().fetch(None))[f"appointment:{appointment}"]
    assert record.ro_number == f"A{appointment}" and record.closed is False and record.tag_number is None
    assert record.appointment_at == datetime(2026, 12, 1, 9, 0, tzinfo=TZ)
    assert record.promised_at == datetime(2026, 12, 1, 16, 0, tzinfo=TZ)
    assert record.customer_last_name == "Bélanger" and record.mobile_phone == "+14385550142"


def test_cancelled_and_deleted_appointments_are_removals_customerless_rejected(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    cancelled = fake_tekmetric.add_appointment(customer, vehicle, status="CANCELED")
    deleted = fake_tekmetric.add_appointment(customer, vehicle)
    fake_tekmetric.delete_appointment(deleted)
    block = fake_tekmetric.add_appointment(None, None)
    no_show = fake_tekmetric.add_appointment(customer, vehicle, status="NO_SHOW")
    result = connect().fetch(None)
    reasons = {r.ref: r.reason for r in result.rejected}
    removed = {r.external_id: r.reason for r in result.removed}
    assert removed == {f"appointment:{cancelled}": "cancelled", f"appointment:{deleted}": "deleted"}
    assert "customer" in reasons[f"appointment:{block}"]
    assert by_id(result)[f"appointment:{no_show}"].closed is True


def test_ro_with_appointment_id_carries_the_alias(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    appointment = fake_tekmetric.add_appointment(customer, vehicle)
    ro = fake_tekmetric.add_repair_order(customer, vehicle, appointmentId=appointment)
    result = connect().fetch(None)
    assert by_id(result)[f"ro:{ro}"].aliases == (f"appointment:{appointment}",)
    assert f"appointment:{appointment}" not in by_id(result)  # the RO supersedes it


def test_ro_opened_from_an_appointment_later_attaches_to_it(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    start = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    other_car = fake_tekmetric.add_vehicle(customer)
    appointment = fake_tekmetric.add_appointment(customer, vehicle, start=start)
    fake_tekmetric.add_appointment(customer, other_car, start=start)
    settle(fake_tekmetric)
    connector = connect()
    first = connector.fetch(None)
    assert f"appointment:{appointment}" in by_id(first)

    settle(fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(customer, vehicle, appointment_start=start)
    fake_tekmetric.update_appointment(appointment, appointmentStatus="ARRIVED", arrived=True)
    settle(fake_tekmetric)
    second = connector.fetch(first.watermark)
    assert by_id(second)[f"ro:{ro}"].aliases == (f"appointment:{appointment}",)
    assert f"appointment:{appointment}" not in by_id(second)

    # A restarted process has forgotten the appointments: it asks Tekmetric for the vehicle's.
    settle(fake_tekmetric)
    changed = fake_tekmetric.update_repair_order(ro, keytag="K-9")["updatedDate"]
    settle(fake_tekmetric)
    restarted = connect().fetch(changed)
    assert set(by_id(restarted)) == {f"ro:{ro}"}
    assert by_id(restarted)[f"ro:{ro}"].aliases == (f"appointment:{appointment}",)
    searches = [c for c in fake_tekmetric.calls_to("/api/v1/appointments") if "vehicleId" in c.query]
    assert len(searches) == 1 and searches[0].query["vehicleId"] == str(vehicle)


def test_a_second_ro_of_the_same_visit_does_not_take_the_appointment(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    start = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    appointment = fake_tekmetric.add_appointment(customer, vehicle, start=start)
    first = fake_tekmetric.add_repair_order(customer, vehicle, appointment_start=start)
    second = fake_tekmetric.add_repair_order(customer, vehicle, appointment_start=start)
    records = by_id(connect().fetch(None))
    assert records[f"ro:{first}"].aliases == (f"appointment:{appointment}",)
    assert records[f"ro:{second}"].aliases == ()


def test_walk_in_ro_has_no_alias_and_costs_no_search(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(customer, vehicle)
    assert by_id(connect().fetch("2026-01-01T00:00:00Z"))[f"ro:{ro}"].aliases == ()
    assert not [c for c in fake_tekmetric.calls_to("/api/v1/appointments") if "vehicleId" in c.query]


# --- deletions -------------------------------------------------------------------------


def test_deleted_ro_is_a_removal_not_dropped(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    keep = fake_tekmetric.add_repair_order(customer, vehicle)
    gone = fake_tekmetric.add_repair_order(customer, vehicle, number=666)
    settle(fake_tekmetric)
    connector = connect()
    first = connector.fetch(None)
    settle(fake_tekmetric)
    fake_tekmetric.delete_repair_order(gone)
    settle(fake_tekmetric)
    second = connector.fetch(first.watermark)
    assert f"ro:{gone}" not in by_id(second) and second.rejected == []
    assert [(r.external_id, r.ro_number, r.reason) for r in second.removed] == [(f"ro:{gone}", "666", "deleted")]
    assert second.removed[0].at == datetime.fromisoformat(fake_tekmetric.repair_orders[gone]["deletedDate"])
    deleted_query = [c for c in fake_tekmetric.calls_to("/api/v1/repair-orders") if "deletedDateStart" in c.query]
    assert deleted_query and "updatedDateStart" not in deleted_query[-1].query
    assert f"ro:{keep}" not in {r.external_id for r in second.removed}


def test_status_seven_is_a_removal_even_without_deleted_date(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(customer, vehicle, status_id=7, number=12)
    result = connect().fetch(None)
    assert result.records == [] and result.rejected == []
    assert [(r.external_id, r.reason) for r in result.removed] == [(f"ro:{ro}", "deleted")]
    assert fake_tekmetric.calls_to("/api/v1/customers/") == []


# --- authentication ------------------------------------------------------------------------


def test_token_is_cached_and_fetched_again_after_expiry(fake_tekmetric, connect):
    seed_owner(fake_tekmetric)
    connector = connect()
    connector.fetch(None)
    connector.fetch(None)
    assert len(fake_tekmetric.calls_to("/api/v1/oauth/token", method="POST")) == 1
    fake_tekmetric.expire_tokens()
    connector.fetch(None)
    assert len(fake_tekmetric.calls_to("/api/v1/oauth/token", method="POST")) == 2


def test_wrong_credentials_name_the_env_vars_and_hide_the_secret(fake_tekmetric, connect):
    secret = "wrong-secret-value-123"
    with pytest.raises(DmsAuthError) as caught:
        connect(client_secret=secret).fetch(None)
    message = str(caught.value)
    assert "TEKMETRIC_CLIENT_ID" in message and "TEKMETRIC_CLIENT_SECRET" in message
    assert secret not in message and secret not in repr(caught.value)
    assert fake_tekmetric.calls_to("/api/v1/repair-orders") == []


def test_check_reports_the_shop_or_the_wrong_shop(fake_tekmetric, connect):
    assert "Garage Test" in connect().check()
    with pytest.raises(DmsAuthError, match="TEKMETRIC_SHOP_ID"):
        connect(shop_id=12345).check()
    with pytest.raises(DmsAuthError, match="TEKMETRIC_SHOP_ID"):
        connect(shop_id=12345).fetch(None)


def test_secret_and_token_never_show_in_repr(fake_tekmetric, connect):
    connector = connect()
    connector.fetch(None)
    text = repr(connector) + repr(connector.client)
    assert fake_tekmetric.client_secret not in text and connector.client.token() not in text


# --- faults ---------------------------------------------------------------------------------


def test_rate_limit_then_success(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(customer, vehicle)
    connector = connect()
    connector.client.token()
    fake_tekmetric.rate_limit(times=2, retry_after=0)
    assert f"ro:{ro}" in by_id(connector.fetch(None))


def test_repeated_rate_limit_is_unavailable(fake_tekmetric, connect):
    connector = connect(max_retries=3)
    connector.client.token()
    fake_tekmetric.rate_limit(times=10, retry_after=0)
    with pytest.raises(DmsUnavailable, match="429"):
        connector.fetch(None)
    assert len(fake_tekmetric.calls_to("/api/v1/")) == 4  # the first request and its 3 retries


def test_retry_after_beyond_the_wait_budget_gives_up_at_once(fake_tekmetric, connect):
    connector = connect(max_retry_wait=1.0)
    connector.client.token()
    fake_tekmetric.rate_limit(times=1, retry_after=30)
    with pytest.raises(DmsUnavailable):
        connector.fetch(None)
    assert len(fake_tekmetric.calls_to("/api/v1/", "GET")) == 1, "gave up at the 429 instead of asking again after 30 s"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_unavailable(fake_tekmetric, connect, status):
    fake_tekmetric.fail(times=1, status=status)
    with pytest.raises(DmsUnavailable, match=str(status)):
        connect().fetch(None)


def test_timeout_is_unavailable(fake_tekmetric, connect):
    fake_tekmetric.delay(20.0)
    # "did not answer" is the time-out's message: a DMS that answered after 20 s would have been read.
    with pytest.raises(DmsUnavailable, match="did not answer"):
        connect(timeout=0.2).fetch(None)


def test_connection_refused_is_unavailable(connect):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DmsUnavailable):
        connect(base_url=f"http://127.0.0.1:{port}").fetch(None)


def test_html_instead_of_json_is_bad_data(fake_tekmetric, connect):
    fake_tekmetric.garbage(times=1)
    with pytest.raises(DmsBadData, match="HTML"):
        connect().fetch(None)


def test_a_failure_on_a_later_page_keeps_what_was_read_and_the_next_sync_goes_on(fake_tekmetric, connect):
    customer, vehicle, _ = seed_owner(fake_tekmetric)
    ids = [fake_tekmetric.add_repair_order(customer, vehicle) for _ in range(250)]
    settle(fake_tekmetric)
    reads = []

    def second_page(path, query):
        if path.endswith("repair-orders") and "updatedDateStart" in query:
            reads.append(query)
            return len(reads) == 2
        return False

    fake_tekmetric.fail(status=503, when=second_page)
    connector = connect()
    first = connector.fetch(None)
    assert first.incomplete and "503" in first.incomplete
    assert set(by_id(first)) == {f"ro:{i}" for i in ids[:100]}
    assert position(first.watermark) == fake_tekmetric.repair_orders[ids[99]]["updatedDate"]

    calls_before = len(fake_tekmetric.calls)
    second = connector.fetch(first.watermark)
    resumed = [c for c in fake_tekmetric.calls[calls_before:] if c.path.endswith("repair-orders")]
    assert resumed[0].query["updatedDateStart"] == position(first.watermark)  # not from the start again
    assert second.incomplete is None
    assert set(by_id(first)) | set(by_id(second)) == {f"ro:{i}" for i in ids}


# --- factory ----------------------------------------------------------------------------------


def test_make_connector_builds_tekmetric(fake_tekmetric):
    settings = SimpleNamespace(
        dms="Tekmetric",
        shop_timezone=TZ,
        tekmetric_url=fake_tekmetric.url,
        tekmetric_client_id=fake_tekmetric.client_id,
        tekmetric_client_secret=fake_tekmetric.client_secret,
        tekmetric_shop_id=str(fake_tekmetric.shop_id),
    )
    connector = make_connector(settings)
    assert isinstance(connector, TekmetricConnector) and connector.source == "tekmetric"
    assert connector.client.timeout == 15
    assert connector.lookback == timedelta(days=14)
    settings.sync_lookback_days = 30
    assert make_connector(settings).lookback == timedelta(days=30)
    assert "Garage Test" in connector.check()
    settings.dms_timeout_seconds = 2.5
    assert make_connector(settings).client.timeout == 2.5
