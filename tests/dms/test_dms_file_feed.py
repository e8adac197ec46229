import json
import re
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from dms.connector import make_connector
from dms.errors import DmsBadData, DmsUnavailable
from dms.file_feed import FileFeedConnector
from dms.sample_feed import TEMPLATE, ensure_sample_feed

TZ = ZoneInfo("America/Toronto")
HEADER = (
    "ro_number,tag_number,status,appointment_at,promised_at,closed_at,customer_first_name,"
    "customer_last_name,mobile_phone,email,language,vehicle_year,vehicle_make,vehicle_model,"
    "vin,advisor_email"
)


def feed(tmp_path, text, name="feed.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return FileFeedConnector(path, TZ)


def by_number(result):
    return {r.ro_number: r for r in result.records}


# --- CSV ----------------------------------------------------------------------


def test_csv_rows_become_records(tmp_path):
    result = feed(
        tmp_path,
        HEADER + "\n"
        "48211,T-12,open,2026-11-30 08:30,2026-11-30T17:00:00-05:00,,Luc,Bélanger,"
        "(514) 555-0142,Luc@Example.COM,fr-CA,2020,Ford,F-150, 1ftew1ep24r084529 ,Marie.Roy@dealer.example\n"
        "48212,,closed,2026-11-29,,2026-11-29T16:10:00Z,Sarah,Smith,,,,,,,,\n",
    ).fetch(None)
    assert result.snapshot is True and result.watermark is None and result.rejected == []
    luc, sarah = by_number(result)["48211"], by_number(result)["48212"]
    assert luc.source == "file" and luc.external_id == "48211" and luc.aliases == ()
    assert luc.tag_number == "T-12" and luc.closed is False
    assert luc.appointment_at == datetime(2026, 11, 30, 8, 30, tzinfo=TZ)
    assert luc.promised_at == datetime(2026, 11, 30, 17, 0, tzinfo=TZ)
    assert luc.mobile_phone == "+15145550142" and luc.email == "luc@example.com"
    assert (luc.language, luc.vehicle_year, luc.vehicle_make, luc.vehicle_model) == ("fr", 2020, "Ford", "F-150")
    assert luc.vin == "1FTEW1EP24R084529" and luc.advisor_email == "marie.roy@dealer.example"
    assert luc.customer_last_name == "Bélanger"
    assert sarah.closed is True and sarah.appointment_at == datetime(2026, 11, 29, tzinfo=TZ)
    assert sarah.closed_at == datetime(2026, 11, 29, 11, 10, tzinfo=TZ)
    assert (sarah.tag_number, sarah.mobile_phone, sarah.email, sarah.vehicle_year) == (None, None, None, None)
    assert sarah.language == "en"


def test_bom_semicolons_and_sloppy_headers_are_tolerated(tmp_path):
    text = (
        " RO Number ;Customer-Last-Name; MOBILE_PHONE ;Status;Extra column\r\n"
        "7001;Côté;514 555 0101;CLOSED;whatever\r\n"
        "7002;O'Brien;;;\r\n"
    )
    result = feed(tmp_path, text, encoding="utf-8-sig").fetch(None)
    assert result.rejected == []
    assert by_number(result)["7001"].customer_last_name == "Côté"
    assert by_number(result)["7001"].closed is True
    assert by_number(result)["7002"].mobile_phone is None


def test_windows_1252_export_is_read(tmp_path):
    result = feed(tmp_path, "ro_number,customer_last_name\n1,Lévesque\n", encoding="cp1252").fetch(None)
    assert by_number(result)["1"].customer_last_name == "Lévesque"


def test_bad_rows_are_rejected_and_the_rest_kept(tmp_path):
    result = feed(
        tmp_path,
        HEADER + "\n"
        "1,,open,2026-11-30 08:30,,,Ann,Good,514 555-0101,,,,,,,\n"
        ",,open,2026-11-30 09:00,,,No,Number,514 555-0102,,,,,,,\n"
        "3,,open,30/11/2026,,,Bad,Date,514 555-0103,,,,,,,\n"
        "4,,open,2026-11-30 10:00,,,Bad,Phone,514-555-0104-999,,,,,,,\n"
        "5,,pending,2026-11-30 11:00,,,Odd,Status,,,,,,,,\n"
        "6,,open,2026-11-30 12:00,,,Bad,Email,,not-an-email,,19xx,,,,\n",
    ).fetch(None)
    assert sorted(by_number(result)) == ["1", "6"]
    assert by_number(result)["6"].email is None and by_number(result)["6"].vehicle_year is None
    reasons = {r.ref: r.reason for r in result.rejected}
    assert set(reasons) == {"row 3", "row 4", "row 5", "row 6"}
    assert "ro_number" in reasons["row 3"]
    assert "appointment_at" in reasons["row 4"] and "30/11/2026" in reasons["row 4"]
    assert "mobile_phone" in reasons["row 5"]
    assert "pending" in reasons["row 6"]


def test_rejection_never_shows_a_full_phone_number(tmp_path):
    result = feed(tmp_path, "ro_number,mobile_phone\n9,514-555-0104-999\n10,+1 (514) 555-01\n").fetch(None)
    assert len(result.rejected) == 2
    for rejected in result.rejected:
        digits = re.sub(r"\D", "", rejected.reason.split("row")[0])
        assert "5145550" not in digits and "555010" not in digits
        assert "**" in rejected.reason


def test_duplicate_ro_number_keeps_the_last_row(tmp_path):
    result = feed(tmp_path, "ro_number,customer_last_name\n42,First\n43,Other\n42,Second\n").fetch(None)
    assert by_number(result)["42"].customer_last_name == "Second"
    assert [r.ref for r in result.rejected] == ["row 2"]
    assert "duplicate" in result.rejected[0].reason and "row 4" in result.rejected[0].reason


def test_file_is_read_afresh_at_every_fetch(tmp_path):
    connector = feed(tmp_path, "ro_number,status\n1,open\n")
    assert by_number(connector.fetch(None))["1"].closed is False
    connector.path.write_text("ro_number,status\n1,closed\n2,open\n", encoding="utf-8")
    assert {k: v.closed for k, v in by_number(connector.fetch("ignored")).items()} == {"1": True, "2": False}


# --- JSON ----------------------------------------------------------------------


def test_json_feed_with_numbers_and_nulls(tmp_path):
    items = [
        {
            "ro_number": 48211,
            "status": "open",
            "appointment_at": "2026-11-30T13:30:00Z",
            "customer_last_name": "Gagnon",
            "mobile_phone": 5145550142,
            "vehicle_year": 2021,
            "language": "français",
            "tag_number": None,
            "Extra": {"ignored": True},
        },
        {"RO_Number": "48212", "status": "closed", "mobile_phone": "12"},
    ]
    result = feed(tmp_path, json.dumps(items), name="feed.json").fetch(None)
    record = by_number(result)["48211"]
    assert record.mobile_phone == "+15145550142" and record.vehicle_year == 2021
    assert record.language == "fr" and record.tag_number is None
    assert record.appointment_at == datetime(2026, 11, 30, 8, 30, tzinfo=TZ)
    assert [r.ref for r in result.rejected] == ["item 2"]


def test_json_is_detected_without_extension(tmp_path):
    result = feed(tmp_path, '  [{"ro_number": "1"}]', name="export.txt").fetch(None)
    assert list(by_number(result)) == ["1"]


# --- whole-file failures ------------------------------------------------------------


def test_missing_file_is_unavailable(tmp_path):
    with pytest.raises(DmsUnavailable, match="DMS_FILE"):
        FileFeedConnector(tmp_path / "nope.csv", TZ).fetch(None)


def test_directory_is_bad_data(tmp_path):
    with pytest.raises(DmsBadData):
        FileFeedConnector(tmp_path, TZ).fetch(None)


@pytest.mark.parametrize(
    "name, content",
    [
        ("feed.json", '{"ro_number": "1"}'),
        ("feed.json", '["1", "2"]'),
        ("feed.json", '[{"ro_number": "1"'),
        ("feed.json", '[{"number": "1"}]'),
        ("feed.csv", "number,customer_last_name\n1,Smith\n"),
        ("feed.csv", ""),
        ("feed.csv", "\n\n"),
        ("feed.csv", "<html><body>Error 500</body></html>"),
    ],
)
def test_unusable_files_raise_bad_data(tmp_path, name, content):
    with pytest.raises(DmsBadData):
        feed(tmp_path, content, name=name).fetch(None)


def test_binary_garbage_raises_bad_data(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DmsBadData):
        FileFeedConnector(path, TZ).fetch(None)


def test_check_describes_the_feed(tmp_path):
    assert "2 repair orders" in feed(tmp_path, "ro_number\n1\n2\n").check()


# --- bundled sample --------------------------------------------------------------------


def test_sample_template_renders_about_twenty_clean_rows_around_today(tmp_path):
    today = date(2026, 3, 10)
    path = ensure_sample_feed(tmp_path / "data" / "sample_feed.csv", today)
    assert path.exists() and "{day" not in path.read_text(encoding="utf-8")
    result = FileFeedConnector(path, TZ).fetch(None)
    assert result.rejected == []
    assert 18 <= len(result.records) <= 25
    days = {r.appointment_at.date() - today for r in result.records}
    assert {timedelta(days=-1), timedelta(0), timedelta(days=1), timedelta(days=2)} <= days
    assert any(r.closed for r in result.records) and any(not r.closed for r in result.records)
    assert any(r.mobile_phone is None and r.email for r in result.records)
    assert {r.language for r in result.records} == {"fr", "en"}
    assert all(r.vin and len(r.vin) == 17 for r in result.records)
    assert {"Tremblay", "Bélanger", "Côté", "Gagnon", "Lévesque", "O'Brien", "Smith"} <= {
        r.customer_last_name for r in result.records
    }
    assert all(r.advisor_email.endswith("@dealer.example") for r in result.records)


def test_sample_is_rendered_once_only(tmp_path):
    target = tmp_path / "sample_feed.csv"
    ensure_sample_feed(target, date(2026, 3, 10))
    first = target.read_text(encoding="utf-8")
    assert ensure_sample_feed(target, date(2027, 1, 1)) == target
    assert target.read_text(encoding="utf-8") == first
    target.write_text("ro_number\n1\n", encoding="utf-8")
    ensure_sample_feed(target, date(2027, 1, 1))
    assert target.read_text(encoding="utf-8") == "ro_number\n1\n"
    assert list(tmp_path.iterdir()) == [target]


def test_template_uses_relative_days_only():
    text = TEMPLATE.read_text(encoding="utf-8")
    assert re.search(r"\{day[+-]\d+\}", text)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)


# --- factory ----------------------------------------------------------------------------


def test_make_connector_file_and_errors(tmp_path):
    connector = make_connector(SimpleNamespace(dms="file", dms_file=str(tmp_path / "f.csv"), shop_timezone=TZ))
    assert isinstance(connector, FileFeedConnector) and connector.source == "file"
    with pytest.raises(ValueError, match="file.*tekmetric"):
        make_connector(SimpleNamespace(dms="cdk", shop_timezone=TZ))
    with pytest.raises(ValueError, match="TEKMETRIC_CLIENT_SECRET"):
        make_connector(
            SimpleNamespace(
                dms="tekmetric",
                shop_timezone=TZ,
                tekmetric_url="http://x",
                tekmetric_client_id="id",
                tekmetric_client_secret="",
                tekmetric_shop_id="1",
            )
        )


def test_a_feed_that_grows_while_it_is_read_is_not_read(tmp_path):
    """The DMS appends to the export while we read it: size and time differ after the read."""
    path = tmp_path / "feed.csv"
    path.write_text("ro_number,customer_last_name\n1,Smith\n", encoding="utf-8")

    def open_while_the_dms_writes(p):
        handle = p.open("rb")
        with p.open("a", encoding="utf-8") as writer:
            writer.write("2,Jones\n3,Bro")
        return handle

    with pytest.raises(DmsUnavailable, match="changed while it was read"):
        FileFeedConnector(path, TZ, opener=open_while_the_dms_writes).fetch(None)
    with pytest.raises(DmsUnavailable, match="middle of a line"):  # and once the writer paused mid-line
        FileFeedConnector(path, TZ).fetch(None)
    with path.open("a", encoding="utf-8") as writer:
        writer.write("wn\n")
    assert [r.ro_number for r in FileFeedConnector(path, TZ).fetch(None).records] == ["1", "2", "3"]
