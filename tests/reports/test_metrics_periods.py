"""`/ro metrics` periods, read without Slack: dates, this month, last week, last month (English or
French, any case, accents optional), and every refusal."""

from __future__ import annotations

from datetime import date

import pytest

from reports.metrics_rules import MetricsRefused, Period, last_month, last_week, parse_period, this_month

WEDNESDAY = date(2026, 12, 2)


def period(words: str, today: date = WEDNESDAY, max_days: int = 400) -> Period:
    return parse_period(words.split(), today, max_days)


def refusal(words: str, today: date = WEDNESDAY, max_days: int = 400) -> MetricsRefused:
    with pytest.raises(MetricsRefused) as caught:
        period(words, today, max_days)
    return caught.value


def test_nothing_is_this_month_so_far():
    assert period("") == this_month(WEDNESDAY) == Period(date(2026, 12, 1), WEDNESDAY)


def test_dates():
    assert period("2026-11-01 2026-11-30") == Period(date(2026, 11, 1), date(2026, 11, 30))
    assert period("2026-11-15") == Period(date(2026, 11, 15), WEDNESDAY)  # to today
    assert period("2026-11-15 2026-11-15").days == 1


@pytest.mark.parametrize(
    "words", ["last-week", "LAST-WEEK", "last week", "last_week", "semaine-derniere", "semaine-dernière", "Semaine Dernière"]
)
def test_last_week_is_monday_to_sunday_of_the_week_before(words):
    assert period(words) == Period(date(2026, 11, 23), date(2026, 11, 29))


def test_last_week_from_a_monday_and_from_a_sunday():
    assert last_week(date(2026, 11, 30)) == Period(date(2026, 11, 23), date(2026, 11, 29))  # a Monday
    assert last_week(date(2026, 11, 29)) == Period(date(2026, 11, 16), date(2026, 11, 22))  # a Sunday


@pytest.mark.parametrize("words", ["last-month", "Last Month", "mois-dernier", "MOIS DERNIER", "mois_dernier"])
def test_last_month_is_the_whole_month_before(words):
    assert period(words) == Period(date(2026, 11, 1), date(2026, 11, 30))


def test_last_month_across_the_year_and_in_a_leap_year():
    assert last_month(date(2027, 1, 31)) == Period(date(2026, 12, 1), date(2026, 12, 31))
    assert last_month(date(2028, 3, 1)) == Period(date(2028, 2, 1), date(2028, 2, 29))
    assert last_month(date(2026, 3, 31)) == Period(date(2026, 2, 1), date(2026, 2, 28))


@pytest.mark.parametrize(
    ("words", "reason", "detail"),
    [
        ("2026-13-01", "bad_date", {"value": "2026-13-01"}),
        ("yesterday", "bad_date", {"value": "yesterday"}),
        ("last-weeks", "bad_date", {"value": "last-weeks"}),
        ("2026-11-30 2026-11-01", "reversed", {"start": "2026-11-30", "end": "2026-11-01"}),
        ("2026-12-03", "reversed", {"start": "2026-12-03", "end": "2026-12-02"}),  # one date after today
        ("2024-01-01 2026-11-30", "too_long", {"days": 1065, "limit": 400}),
        ("2026-11-01 2026-11-02 2026-11-03", "too_many_words", {}),
        ("last week please", "too_many_words", {}),
    ],
)
def test_refusals(words, reason, detail):
    refused = refusal(words)
    assert refused.key == f"metrics.refused.{reason}"
    for name, value in detail.items():
        assert refused.detail[name] == value


def test_a_named_period_longer_than_the_limit_is_refused_too():
    assert refusal("last-week", max_days=5).key == "metrics.refused.too_long"
    assert refusal("last-month", max_days=29).key == "metrics.refused.too_long"
    assert period("last-month", max_days=30).days == 30
