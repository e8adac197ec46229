"""Status rules in the shop's time zone (pure: no database, no Slack)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dms.status_rules import computed_status, parse_status
from storage.values import COMPLETED, IN_PROGRESS, UPCOMING

TZ = ZoneInfo("America/Toronto")


def local(*args) -> datetime:
    return datetime(*args, tzinfo=TZ)


@pytest.mark.parametrize(
    "closed,appointment,now,expected",
    [
        (True, local(2026, 12, 5, 9), local(2026, 11, 29, 12), COMPLETED),
        (False, local(2026, 11, 29, 23, 59), local(2026, 11, 29, 0, 1), IN_PROGRESS),
        (False, local(2026, 11, 28, 9), local(2026, 11, 29, 12), IN_PROGRESS),
        (False, local(2026, 11, 30, 0, 0), local(2026, 11, 29, 23, 59), UPCOMING),
        (False, None, local(2026, 11, 29, 12), IN_PROGRESS),
    ],
)
def test_computed_status(closed, appointment, now, expected):
    assert computed_status(closed, appointment, now, TZ) == expected


def test_the_day_is_the_shops_day_not_utc():
    # 21:00 in Toronto is already the next day in UTC: still "today" for the shop.
    appointment = local(2026, 11, 30, 8)
    evening = datetime(2026, 11, 30, 2, 0, tzinfo=ZoneInfo("UTC"))  # 21:00 on the 29th in Toronto
    assert computed_status(False, appointment, evening, TZ) == UPCOMING


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        computed_status(False, datetime(2026, 11, 29, 9), local(2026, 11, 29, 9), TZ)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("in-progress", IN_PROGRESS),
        ("In Progress", IN_PROGRESS),
        ("en-cours", IN_PROGRESS),
        ("upcoming", UPCOMING),
        ("à-venir", UPCOMING),
        ("completed", COMPLETED),
        ("terminé", COMPLETED),
        ("", None),
        ("soon", None),
    ],
)
def test_parse_status(text, expected):
    assert parse_status(text) == expected
