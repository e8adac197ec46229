"""Metrics, the Slack side: a workbook for whoever asked (a DM), and last week's for REPORT_CHANNEL.

`request_workbook` checks the permission and queues "metrics.send" before Slack gets its answer;
the task counts (reports.metrics_rules), writes the .xlsx in a temporary folder
(reports.workbook), uploads it with the top lines as its comment, and removes the folder. Each
upload has its own file name, so an attempt that follows a crash first looks for the file its
predecessor uploaded (files.list) and never sends it twice.

`weekly_report` queues each week's "metrics.weekly" once per channel (a task key per week, and the
WeeklyReport row: the last week queued), catching up weeks missed while no scheduler ran.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from blocks import metrics_view as views
from core.config import DEFAULT_REPORT_CRON, Settings
from core.cron import crontab_trigger
from core.i18n import t
from customers.permission_rules import can_see_metrics
from reports import metrics_rules as rules
from reports.workbook import MetricsBook, write_csv
from slackapi.errors import SlackError
from slackapi.services import Services
from storage.models import WeeklyReport, utcnow
from taskqueue.queue import task

log = logging.getLogger(__name__)


def today(services: Services) -> date:
    return datetime.now(services.settings.shop_timezone).date()


def check_allowed(services: Services, user_id: str) -> None:
    if not can_see_metrics(user_id, services.settings):
        raise rules.MetricsRefused("not_allowed")


def request_workbook(services: Services, user_id: str, words: list[str], *, key: str | None = None) -> rules.Period:
    """Queue the requester's workbook. Raises MetricsRefused (nothing is queued)."""
    check_allowed(services, user_id)
    period = rules.parse_period(words, today(services), services.settings.metrics_max_days)
    name = f"metrics-{period.start.isoformat()}-{period.end.isoformat()}-{secrets.token_hex(3)}.xlsx"
    services.tasks.enqueue(
        "metrics.send", user_id, period.start.isoformat(), period.end.isoformat(), name, key=key or f"metrics:{name}"
    )
    return period


def month_so_far(services: Services) -> rules.Metrics:
    """This month's counts per person (the admins' Home section; no per-day or per-RO rows needed)."""
    period = rules.this_month(today(services))
    learn_names(services, period)
    return rules.collect(period, services.settings.shop_timezone, by_day=False, by_ro=False)


def write_period(
    settings: Settings, period: rules.Period, path: Path, locale: str | None, progress: Callable[[float], None] | None = None
) -> rules.Metrics:
    """Count the period and write its workbook to `path` (the command line's `report` too: no Slack).
    The Repair orders sheet, most of a big period's cells, is written while the database still
    counts people and days."""
    book = MetricsBook(locale)
    metrics = rules.collect(
        period, settings.shop_timezone, progress=_share(progress, 0.0, 0.8), on_repair_orders=book.repair_orders
    )
    book.save(metrics, path, _share(progress, 0.8, 1.0))
    return metrics


def write_period_csv(
    settings: Settings, period: rules.Period, stem: Path, locale: str | None, progress: Callable[[float], None] | None = None
) -> tuple[rules.Metrics, list[Path]]:
    """The same tables as one CSV per sheet, `<stem>-<sheet>.csv` (see reports.workbook.write_csv)."""
    metrics = rules.collect(period, settings.shop_timezone, progress=_share(progress, 0.0, 0.8))
    return metrics, write_csv(metrics, stem, locale, _share(progress, 0.8, 1.0))


def _share(progress: Callable[[float], None] | None, low: float, high: float) -> Callable[[float], None]:
    """A step's own 0..1 progress as its share of the whole."""

    def report(fraction: float) -> None:
        if progress:
            progress(low + fraction * (high - low))

    return report


def _gave_up_send(services: Services, user_id: str, start: str, end: str, name: str, *, error: str) -> None:
    error_id = secrets.token_hex(4)
    log.error("metrics workbook %s for %s not made [error id %s]: %s", name, user_id, error_id, error)
    services.slack.tell(user_id, None, t("metrics.failed", services.directory.locale(user_id), error_id=error_id))


@task("metrics.send", max_attempts=3, on_give_up=_gave_up_send)
def send_workbook(services: Services, user_id: str, start: str, end: str, name: str) -> None:
    if not can_see_metrics(user_id, services.settings):  # taken away while it waited: nothing is sent
        log.info("metrics workbook %s not sent: %s may no longer see metrics", name, user_id)
        return
    channel = services.slack.open_dm(user_id)
    if _uploaded_before(services, channel, name):
        return
    locale = services.directory.locale(user_id)
    period = rules.Period(date.fromisoformat(start), date.fromisoformat(end))
    _upload(services, channel, period, name, locale, weekly=False)


# How far back the weekly post catches up after downtime: older weeks are left to `/ro metrics`.
CATCH_UP_WEEKS = 8


def weekly_report(services: Services, now: datetime | None = None) -> list[rules.Period]:
    """The scheduler's tick (on REPORT_CRON, and hourly from the scheduler's start): queue every week
    whose post is due and not queued yet, oldest first. A week is due at the first REPORT_CRON time
    after it ends; the weeks after the last one queued for this channel (WeeklyReport) are queued,
    at most CATCH_UP_WEEKS of them; a channel with none queued yet starts with the week just due.
    Each week has its own task key (queued once however many schedulers tick, in whatever order)
    and they share a lane (posted one at a time, oldest first). Returns the weeks this call queued."""
    settings = services.settings
    channel = settings.report_channel
    if not channel:
        return []
    tz = settings.shop_timezone
    now = now.astimezone(tz) if now is not None else datetime.now(tz)
    due = _due_week(settings.report_cron or DEFAULT_REPORT_CRON, tz, now)
    if due is None:
        return []
    mark = WeeklyReport.get_or_none(WeeklyReport.channel == channel)
    first = due.start
    if mark is not None:
        after_last = date.fromisoformat(mark.last_week) + timedelta(days=7)
        first = max(after_last, due.start - timedelta(days=7 * (CATCH_UP_WEEKS - 1)))
    queued = []
    monday = first
    while monday <= due.start:
        week = rules.Period(monday, monday + timedelta(days=6))
        _record, stored = services.tasks.enqueue_once(
            "metrics.weekly",
            week.start.isoformat(),
            week.end.isoformat(),
            channel,
            key=f"weekly-report:{channel}:{week.start.isoformat()}",
            lane=f"weekly-report:{channel}",
        )
        if stored:
            queued.append(week)
        monday += timedelta(days=7)
    _remember_week(channel, due.start)
    if queued:
        log.info("weekly metrics queued for %s: %s", channel, ", ".join(w.start.isoformat() for w in queued))
    return queued


def _due_week(cron: str, tz: tzinfo, now: datetime) -> rules.Period | None:
    """The newest week whose post is due at `now`: the week before the day of REPORT_CRON's latest
    time at or before `now` (looked for day by day, as far back as the catch-up goes)."""
    trigger = crontab_trigger(cron, tz)
    day = now.date()
    for _ in range(7 * (CATCH_UP_WEEKS + 1)):
        midnight = datetime.combine(day, time(0), tz)
        fire = trigger.get_next_fire_time(None, midnight)
        if fire is not None and fire <= now and fire.astimezone(tz).date() == day:
            return rules.last_week(day)
        day -= timedelta(days=1)
    return None


def _remember_week(channel: str, monday: date) -> None:
    """WeeklyReport.last_week = `monday`, never moved back (a late tick of another scheduler)."""
    value = monday.isoformat()
    updated = (
        WeeklyReport.update(last_week=value, updated_at=utcnow())
        .where((WeeklyReport.channel == channel) & (WeeklyReport.last_week < value))
        .execute()
    )
    if not updated:  # no row yet (or already this week): insert, then move it on if another tick got in first
        WeeklyReport.insert(channel=channel, last_week=value).on_conflict_ignore().execute()
        WeeklyReport.update(last_week=value, updated_at=utcnow()).where(
            (WeeklyReport.channel == channel) & (WeeklyReport.last_week < value)
        ).execute()


@task("metrics.weekly", max_attempts=5)
def post_weekly(services: Services, start: str, end: str, channel: str | None = None) -> None:
    channel = channel or services.settings.report_channel
    if not channel or channel != services.settings.report_channel:
        log.info("weekly metrics %s not posted: REPORT_CHANNEL is no longer %s", start, channel)
        return
    name = f"metrics-week-{start}.xlsx"
    if _uploaded_before(services, channel, name):
        return
    admins = services.settings.admin_slack_user_ids
    # The report reads in the first configured admin's language (a French shop's admin: French).
    locale = services.directory.locale(admins[0]) if admins else None
    period = rules.Period(date.fromisoformat(start), date.fromisoformat(end))
    try:
        _upload(services, channel, period, name, locale, weekly=True)
    except SlackError as exc:
        if exc.raw_code in ("not_in_channel", "channel_not_found", "invalid_channel", "is_archived"):
            # Retrying cannot help until someone fixes REPORT_CHANNEL or invites the app: say so, stop.
            log.error("weekly metrics not posted to REPORT_CHANNEL=%s: %s (invite the app to it)", channel, exc.raw_code)
            return
        raise


def learn_names(services: Services, period: rules.Period) -> None:
    """Ask Slack (users.info, through the directory, which keeps the answer) for the people with
    activity in the period the app knows no name for, so the workbook names them."""
    for user_id in rules.unnamed(period, services.settings.shop_timezone):
        services.directory.get(user_id)


def _upload(services: Services, channel: str, period: rules.Period, name: str, locale: str | None, *, weekly: bool) -> None:
    learn_names(services, period)
    with tempfile.TemporaryDirectory(prefix="ro-metrics-") as folder:
        path = Path(folder) / name
        metrics = write_period(services.settings, period, path, locale)
        services.slack.upload(channel, path, name, title=name, comment=views.summary_text(metrics, locale, weekly=weekly))
    log.info("metrics workbook %s uploaded (%s to %s)", name, period.start, period.end)


def _uploaded_before(services: Services, channel: str, name: str) -> bool:
    """Our upload of this very workbook, made by an attempt that died before it could finish."""
    return any(file.get("name") == name for file in services.slack.recent_files(channel))
