from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dms.normalize import (
    fold_text,
    mask_phone,
    parse_email,
    parse_language,
    parse_phone,
    parse_time,
    parse_vin,
    parse_year,
    slugify_name,
)
from dms.records import DmsRecord

TORONTO = ZoneInfo("America/Toronto")


# --- phones -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "514 555-0142",
        "(514) 555-0142",
        "+1 514-555-0142",
        "1-514-555-0142",
        "5145550142",
        "514.555.0142",
        " +15145550142 ",
        5145550142,
        "514 555-0142 ext. 12",
    ],
)
def test_parse_phone_accepts_common_formats(raw):
    assert parse_phone(raw) == "+15145550142"


def test_parse_phone_keeps_international_numbers():
    assert parse_phone("+33 1 42 68 53 00") == "+33142685300"


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_parse_phone_empty_is_unknown(raw):
    assert parse_phone(raw) is None


@pytest.mark.parametrize("raw", ["514-555-01", "111-111-1111", "call me", "+1 000 000 0000", "5145550142999"])
def test_parse_phone_rejects_invalid_numbers_without_echoing_them(raw):
    with pytest.raises(ValueError) as caught:
        parse_phone(raw)
    digits = "".join(c for c in raw if c.isdigit())
    if len(digits) > 4:
        assert digits not in str(caught.value).replace("-", "").replace(" ", "")


def test_mask_phone_keeps_country_code_and_last_two_digits():
    assert mask_phone("+15145550142") == "+1********42"
    assert mask_phone("+33142685300") == "+33*******00"


def test_mask_phone_of_raw_text_keeps_only_last_two_digits():
    assert mask_phone("(514) 555-0142") == "********42"
    assert mask_phone("514-555-01") == "******01"
    assert mask_phone("12") == "**"
    assert mask_phone("") == ""
    assert mask_phone(None) == ""


# --- times --------------------------------------------------------------------


def test_time_without_offset_is_shop_local():
    parsed = parse_time("2026-11-30T08:30", TORONTO)
    assert parsed == datetime(2026, 11, 30, 8, 30, tzinfo=TORONTO)
    assert parsed.utcoffset() == timedelta(hours=-5)
    assert parse_time("2026-11-30 08:30:00", TORONTO) == parsed


def test_time_with_offset_keeps_the_instant_in_shop_zone():
    parsed = parse_time("2026-11-30T13:30:00Z", TORONTO)
    assert parsed.tzinfo == TORONTO
    assert (parsed.hour, parsed.minute) == (8, 30)
    assert parse_time("2026-11-30T14:30:00+01:00", TORONTO) == parsed
    assert parse_time("2026-11-30T13:30:00.250z", TORONTO) == parsed + timedelta(milliseconds=250)


def test_bare_date_is_local_midnight():
    assert parse_time("2026-11-30", TORONTO) == datetime(2026, 11, 30, 0, 0, tzinfo=TORONTO)
    assert parse_time(date(2026, 11, 30), TORONTO) == datetime(2026, 11, 30, tzinfo=TORONTO)


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_empty_time_is_unknown(raw):
    assert parse_time(raw, TORONTO) is None


@pytest.mark.parametrize("raw", ["30/11/2026", "tomorrow", "2026-13-01", "2026-11-30T25:00", "2026-11-30T8:30"])
def test_garbage_time_raises(raw):
    with pytest.raises(ValueError):
        parse_time(raw, TORONTO)


def test_local_time_in_spring_forward_gap_moves_forward():
    # 2026-03-08 02:30 does not exist in Toronto: clocks jump from 02:00 EST to 03:00 EDT.
    parsed = parse_time("2026-03-08T02:30", TORONTO)
    assert (parsed.hour, parsed.minute) == (3, 30)
    assert parsed.utcoffset() == timedelta(hours=-4)
    assert parsed.astimezone(UTC) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_ambiguous_local_time_at_fall_back_takes_first_occurrence():
    # 2026-11-01 01:30 happens twice in Toronto; a naive value means the first (EDT) one.
    parsed = parse_time("2026-11-01T01:30", TORONTO)
    assert parsed.utcoffset() == timedelta(hours=-4)
    assert parsed.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_offsets_disambiguate_the_repeated_hour():
    first = parse_time("2026-11-01T05:30:00Z", TORONTO)
    second = parse_time("2026-11-01T06:30:00Z", TORONTO)
    assert (first.hour, first.minute) == (second.hour, second.minute) == (1, 30)
    assert (first.fold, second.fold) == (0, 1)
    # Python subtracts same-zone datetimes on the wall clock: compare instants in UTC.
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    other = parse_time("2026-11-01T01:30:00-05:00", TORONTO)
    assert other.astimezone(UTC) == second.astimezone(UTC)


def test_times_around_the_dst_change_stay_one_hour_apart():
    before = parse_time("2026-03-08T01:30", TORONTO)
    after = parse_time("2026-03-08T03:30", TORONTO)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(hours=1)


# --- other fields ---------------------------------------------------------------


@pytest.mark.parametrize("raw", ["fr", "FR", "fr-CA", "fr_ca", "français", "Francais", "French", " FR "])
def test_french_spellings(raw):
    assert parse_language(raw) == "fr"


@pytest.mark.parametrize("raw", ["en", "EN", "en-CA", "English", "", None, "de", "frisian"])
def test_everything_else_is_english(raw):
    assert parse_language(raw) == "en"


def test_email_is_lowercased_and_garbage_is_unknown():
    assert parse_email("  Marie.Roy@Dealer.Example ") == "marie.roy@dealer.example"
    assert parse_email("not an email") is None
    assert parse_email("") is None


def test_vin_and_year():
    assert parse_vin(" 2t3r1rfv61b462630 ") == "2T3R1RFV61B462630"
    assert parse_vin("") is None
    assert parse_year("2019") == 2019
    assert parse_year(2019.0) == 2019
    assert parse_year("19x") is None
    assert parse_year("") is None


# --- names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, slug",
    [
        ("Bélanger-Côté", "belanger-cote"),
        ("O'Brien", "obrien"),
        ("O’Brien", "obrien"),
        ("  Lévesque  ", "levesque"),
        ("Smith & Sons -- Ltd.", "smith-sons-ltd"),
        ("Œuvre Ærø", "oeuvre-aero"),
        ("Tremblay  Gagnon", "tremblay-gagnon"),
        ("---", ""),
        ("", ""),
    ],
)
def test_slugify_name(raw, slug):
    assert slugify_name(raw) == slug


def test_fold_text_removes_accents_and_case_only():
    assert fold_text("Bélanger") == "belanger"
    assert fold_text("FRANÇOIS Côté") == "francois cote"
    assert fold_text("O'Brien") == "o'brien"
    assert fold_text("") == ""


# --- the record -------------------------------------------------------------------


def _record(**overrides):
    fields = dict(
        source="file",
        external_id="48211",
        ro_number="48211",
        tag_number="T-1",
        closed=False,
        appointment_at=datetime(2026, 11, 30, 8, 30, tzinfo=TORONTO),
        promised_at=None,
        closed_at=None,
        customer_first_name="Luc",
        customer_last_name="Bélanger",
        mobile_phone="+15145550142",
        email=None,
        language="fr",
        vehicle_year=2020,
        vehicle_make="Ford",
        vehicle_model="F-150",
        vin=None,
        advisor_email=None,
    )
    fields.update(overrides)
    return DmsRecord(**fields)


def test_fingerprint_is_stable_and_zone_independent():
    record = _record()
    same_instant = _record(appointment_at=record.appointment_at.astimezone(UTC))
    assert record.fingerprint() == _record().fingerprint() == same_instant.fingerprint()
    assert len(record.fingerprint()) == 64


def test_fingerprint_changes_with_any_field():
    base = _record().fingerprint()
    assert _record(closed=True).fingerprint() != base
    assert _record(tag_number="T-2").fingerprint() != base
    assert _record(aliases=("appointment:1",)).fingerprint() != base


def test_record_refuses_naive_times_and_unknown_languages():
    with pytest.raises(ValueError):
        _record(appointment_at=datetime(2026, 11, 30, 8, 30))
    with pytest.raises(ValueError):
        _record(language="de")
