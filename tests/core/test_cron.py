"""Crontab lines as cron reads them: the weekday field's 0 and 7 are Sunday, 1 is Monday."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.cron import crontab_trigger

PARIS = ZoneInfo("Europe/Paris")
# A Wednesday: every trigger's next fire is looked up from here.
WEDNESDAY = datetime(2026, 12, 2, 12, 0, tzinfo=PARIS)


def next_days(line: str, count: int = 7) -> list[str]:
    """The weekday names of the next `count` fires."""
    trigger = crontab_trigger(line, PARIS)
    fires, previous, now = [], None, WEDNESDAY
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        fires.append(fire.strftime("%a"))
        previous, now = fire, fire
    return fires


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [
        ("1", ["Mon"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("5", ["Fri"]),
        ("mon", ["Mon"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0,6", ["Sat", "Sun"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("1-5/2", ["Mon", "Wed", "Fri"]),
        ("sat,1", ["Mon", "Sat"]),
    ],
)
def test_weekday_numbers_are_crons(weekday: str, expected: list[str]) -> None:
    days = next_days(f"0 7 * * {weekday}", count=14)
    assert sorted(set(days)) == sorted(expected)


def test_monday_at_seven_shop_time() -> None:
    trigger = crontab_trigger("0 7 * * 1", PARIS)
    fire = trigger.get_next_fire_time(None, WEDNESDAY)
    assert fire == datetime(2026, 12, 7, 7, 0, tzinfo=PARIS)


def test_every_day_stays_every_day() -> None:
    assert len(set(next_days("30 6 * * *"))) == 7


@pytest.mark.parametrize("line", ["0 7 * *", "0 7 * * 1 extra", "0 7 * * 8", "0 7 * * 5-2", "0 25 * * 1", "0 7 * * funday"])
def test_lines_cron_would_refuse(line: str) -> None:
    with pytest.raises(ValueError):
        crontab_trigger(line)
