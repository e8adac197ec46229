"""Each week's workbook in REPORT_CHANNEL: scheduled on REPORT_CRON in shop time and hourly from the
scheduler's start; posted once per week even when two scheduler processes tick together; weeks
missed while no scheduler ran are caught up in order (at most CATCH_UP_WEEKS); a channel newly set
starts with last week; a channel the app is not in stops it cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger

import bot
from core.config import load_settings
from reports.metrics_flow import CATCH_UP_WEEKS, weekly_report
from slackapi.services import build_services
from storage.db import database
from storage.models import TaskRecord, WeeklyReport
from tests.support.harness import make_env, wait_until
from tests.support.metrics import read_workbook

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("America/Toronto")


def shop_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


# Mondays: REPORT_CRON (default Mondays 07:00) posts the week that ended the day before.
NOV_30 = shop_time("2026-11-30 08:00")  # posts the week of 23 Nov
DEC_21 = shop_time("2026-12-21 08:00")  # three weeks later: 30 Nov, 7 Dec and 14 Dec are due

# What a scheduler process does when its weekly-report job comes due, started by a shared signal
# so the two processes tick at the same moment; NOW is the time the tick believes it is.
TICK = textwrap.dedent(
    """
    import os, sys, time
    from datetime import datetime
    from pathlib import Path
    sys.path.insert(0, os.environ["ROOT"])
    import bot
    from core.config import load_settings
    from reports.metrics_flow import weekly_report
    from storage.db import database

    settings = load_settings(os.environ, require_slack=True)
    bot.open_storage(settings)
    services = bot.build_services(settings)
    go = Path(os.environ["GO"])
    Path(os.environ["READY"]).touch()
    while not go.exists():
        time.sleep(0.005)
    with database.connection_context():
        weekly_report(services, datetime.fromisoformat(os.environ["NOW"]))
    """
)


@pytest.fixture
def report_channel(fake_slack) -> str:
    return fake_slack.add_channel("service-managers", members=(fake_slack.bot_user_id, "UADVISOR"))["id"]


def _services(fake_slack, database_url, tmp_path, **env):
    settings = load_settings(
        make_env(fake_slack, database_url, tmp_path, ADMIN_SLACK_USER_IDS="UADVISOR", **env), require_slack=True
    )
    bot.open_storage(settings)
    return build_services(settings)


def _tick(services, now: datetime) -> list[str]:
    with database.connection_context():
        return [week.start.isoformat() for week in weekly_report(services, now)]


def _queued(channel: str) -> list[tuple[str, str]]:
    """(week, key) of every weekly record, in the order they were queued."""
    with database.connection_context():
        records = TaskRecord.select().where(TaskRecord.name == "metrics.weekly").order_by(TaskRecord.id)
        return [(record.key.rsplit(":", 1)[1], record.key) for record in records]


def _run_tasks(services) -> None:
    services.tasks.start_workers(2)
    try:
        services.tasks.wait_idle()
    finally:
        services.tasks.stop_workers()


def _weekly_uploads(fake_slack) -> list[dict]:
    return [u for u in fake_slack.uploads if u["filename"].startswith("metrics-week-")]


def test_the_weekly_job_is_scheduled_mondays_at_seven_shop_time_only_with_a_channel(
    fake_slack, sqlite_url, tmp_path, report_channel
):
    without = _services(fake_slack, sqlite_url, tmp_path)
    assert not {"weekly-report", "weekly-report-catch-up"} & {job.name for job in bot.feature_jobs(without)}
    services = _services(fake_slack, sqlite_url, tmp_path, REPORT_CHANNEL=report_channel)
    jobs = {job.name: job for job in bot.feature_jobs(services)}
    after = datetime(2026, 12, 4, 12, 0, tzinfo=TZ)
    first = jobs["weekly-report"].trigger.get_next_fire_time(None, after)
    assert (first.weekday(), first.hour, first.minute, first.date().isoformat()) == (0, 7, 0, "2026-12-07")
    assert first.utcoffset().total_seconds() == -5 * 3600  # 07:00 in Toronto, not in UTC
    # The catch-up: its first run is its start (the scheduler's start, half a minute in), then every hour.
    catch_up = jobs["weekly-report-catch-up"].trigger
    assert isinstance(catch_up, IntervalTrigger) and catch_up.interval == timedelta(hours=1)
    assert catch_up.get_next_fire_time(None, catch_up.start_date) == catch_up.start_date


def test_a_channel_newly_set_starts_with_last_week_and_a_week_is_due_at_report_cron(
    fake_slack, sqlite_url, tmp_path, report_channel
):
    services = _services(fake_slack, sqlite_url, tmp_path, REPORT_CHANNEL=report_channel)
    # The first tick for a channel posts the week just due, none before it (the weeks before the
    # channel was set are not "missed").
    assert _tick(services, shop_time("2026-11-30 07:00")) == ["2026-11-23"]
    assert _tick(services, shop_time("2026-11-30 07:00")) == []  # the same tick again
    assert _tick(services, shop_time("2026-12-06 23:59")) == []  # the rest of the week
    assert _tick(services, shop_time("2026-12-07 06:59")) == []  # Monday before 07:00: not due yet
    assert _tick(services, shop_time("2026-12-07 09:45")) == ["2026-11-30"]  # 07:00 missed: the hourly tick
    assert [week for week, _ in _queued(report_channel)] == ["2026-11-23", "2026-11-30"]
    with database.connection_context():
        assert WeeklyReport.get_by_id(report_channel).last_week == "2026-11-30"


def test_a_scheduler_down_three_weeks_posts_each_missed_week_once_in_order_even_with_two_racing(
    fake_slack, database_url, tmp_path, report_channel
):
    services = _services(fake_slack, database_url, tmp_path, REPORT_CHANNEL=report_channel)
    assert _tick(services, NOV_30) == ["2026-11-23"]
    _run_tasks(services)
    # Down from 30 Nov to 21 Dec; two scheduler processes come back and tick at the same moment.
    env = {
        **os.environ,
        **make_env(fake_slack, database_url, tmp_path, ADMIN_SLACK_USER_IDS="UADVISOR", REPORT_CHANNEL=report_channel),
        "ROOT": str(ROOT),
        "GO": str(tmp_path / "go"),
        "NOW": DEC_21.isoformat(),
    }
    ticks = []
    for n in range(2):
        ready = tmp_path / f"ready-{n}"
        ticks.append(subprocess.Popen([sys.executable, "-c", TICK], env={**env, "READY": str(ready)}, cwd=ROOT))
    wait_until(lambda: all((tmp_path / f"ready-{n}").exists() for n in range(2)), timeout=60, message="both schedulers up")
    (tmp_path / "go").touch()
    assert [tick.wait(timeout=60) for tick in ticks] == [0, 0]
    weeks = ["2026-11-23", "2026-11-30", "2026-12-07", "2026-12-14"]
    assert _queued(report_channel) == [(week, f"weekly-report:{report_channel}:{week}") for week in weeks]
    # A third tick in the same week (a scheduler restarted on Monday morning) adds nothing.
    assert _tick(services, DEC_21 + timedelta(hours=3)) == []
    _run_tasks(services)
    uploads = _weekly_uploads(fake_slack)
    assert [u["filename"] for u in uploads] == [f"metrics-week-{week}.xlsx" for week in weeks]  # once each, in order
    for week, upload in zip(weeks, uploads, strict=True):
        assert upload["channels"] == [report_channel]
        assert week in upload["initial_comment"]
        assert (date.fromisoformat(week) + timedelta(days=6)).isoformat() in upload["initial_comment"]
    assert read_workbook(uploads[-1]["content"])["header"][1] == "Photos internes"  # the first admin reads French
    with database.connection_context():
        assert [r.status for r in TaskRecord.select().where(TaskRecord.name == "metrics.weekly")] == ["done"] * 4


def test_the_catch_up_goes_back_at_most_eight_weeks(fake_slack, sqlite_url, tmp_path, report_channel):
    services = _services(fake_slack, sqlite_url, tmp_path, REPORT_CHANNEL=report_channel)
    assert _tick(services, shop_time("2026-08-10 07:30")) == ["2026-08-03"]
    # Down until 21 Dec: 19 weeks missed, the 8 latest are posted.
    queued = _tick(services, DEC_21)
    assert len(queued) == CATCH_UP_WEEKS == 8
    assert queued == [(date(2026, 10, 26) + timedelta(days=7 * n)).isoformat() for n in range(8)]
    assert queued[-1] == "2026-12-14"


def test_a_new_report_channel_starts_afresh(fake_slack, sqlite_url, tmp_path, report_channel):
    services = _services(fake_slack, sqlite_url, tmp_path, REPORT_CHANNEL=report_channel)
    assert _tick(services, NOV_30) == ["2026-11-23"]
    other = fake_slack.add_channel("gerants", members=(fake_slack.bot_user_id,))["id"]
    moved = _services(fake_slack, sqlite_url, tmp_path, REPORT_CHANNEL=other)
    assert _tick(moved, DEC_21) == ["2026-12-14"]


def test_a_channel_the_app_is_not_in_stops_the_report_without_retries(fake_slack, sqlite_url, tmp_path):
    outside = fake_slack.add_channel("managers-private", members=("UADVISOR",))["id"]
    services = _services(fake_slack, sqlite_url, tmp_path, REPORT_CHANNEL=outside)
    assert len(_tick(services, NOV_30)) == 1
    _run_tasks(services)
    with database.connection_context():
        record = TaskRecord.get(TaskRecord.name == "metrics.weekly")
        assert (record.status, record.attempts) == ("done", 1)
    assert not _weekly_uploads(fake_slack)
