"""Channels do not pile up: the archive job archives completed ROs' channels `ARCHIVE_AFTER_DAYS`
after they completed (a last note first, saying so), and unarchives the ones the app archived
whose RO is open again.

Unarchiving normally happens when the reopened RO is published (spaces/publish_flow.py: the DMS
sync, `/ro reopen`, the status select); the pass here catches any whose publish has not run yet.

Slack's tier 2 (conversations.archive / unarchive, about 20 calls a minute): one pass makes at
most `archive_rules.BATCH` of those calls, oldest RO first, and the scheduler runs a pass each
minute, so a first run on a shop with years of completed ROs catches up over hours. Every step is
recorded as soon as Slack confirms it (the note, then the archive): a pass Slack still limits
after the client's own waits stops there, and the next pass carries on without posting a note or
archiving a channel twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from peewee import Case, fn

from blocks.kit import escape
from core.i18n import t
from slackapi.errors import SlackError, SlackErrorCode
from slackapi.services import Services
from spaces import archive_rules
from spaces.publish_flow import RO_CLAIM_TTL, Publisher, forget_channel
from storage import leases as lease
from storage.models import RepairOrder, utcnow
from storage.values import COMPLETED

log = logging.getLogger(__name__)
ARCHIVE_LEASE_TTL = timedelta(minutes=2)
# Answers that end the whole pass: still limited after the client's waits, or no access at all.
_STOP = (SlackErrorCode.RATELIMITED, SlackErrorCode.INVALID_AUTH, SlackErrorCode.NOT_AUTHED)
# Answers no later try would change: the channel is left as it is, and not tried again.
_LEAVE = {
    "not_in_channel",
    "restricted_action",
    "not_authorized",
    "cant_archive_general",
    "cant_archive_required",
    "method_not_supported_for_channel_type",
}


@dataclass
class ArchiveReport:
    archived: list[tuple[str, str]] = field(default_factory=list)  # (RO number, channel name)
    unarchived: list[tuple[str, str]] = field(default_factory=list)
    left_alone: list[tuple[str, str]] = field(default_factory=list)  # (RO number, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (RO number, Slack's code)
    stopped_early: str | None = None
    dry_run: bool = False


def _completed_at_sql():
    """archive_rules.completed_at, as SQL (for the query's filter and order)."""
    by_dms = (RepairOrder.dms_closed == True) & (RepairOrder.status_manual == False) & RepairOrder.closed_at.is_null(False)
    return Case(None, ((by_dms, RepairOrder.closed_at),), fn.COALESCE(RepairOrder.status_changed_at, RepairOrder.closed_at))


def due(now: datetime, days: int, limit: int) -> list[RepairOrder]:
    """The ROs whose channel is due for archiving, oldest completion first, at most `limit`."""
    limit_at = archive_rules.cutoff(now, days)
    if limit_at is None or limit <= 0:
        return []
    when = _completed_at_sql()
    query = (
        RepairOrder.select()
        .where(
            (RepairOrder.status == COMPLETED)
            & RepairOrder.channel_id.is_null(False)
            & RepairOrder.channel_archived_at.is_null()
            & (when <= limit_at)
        )
        .order_by(when, RepairOrder.id)
        .limit(limit)
    )
    return [ro for ro in query if archive_rules.is_due(ro, now, days)]


def reopened(limit: int) -> list[RepairOrder]:
    """ROs the app archived whose status is no longer completed."""
    query = (
        RepairOrder.select()
        .where((RepairOrder.archived_by_app == True) & (RepairOrder.status != COMPLETED) & RepairOrder.channel_id.is_null(False))
        .order_by(RepairOrder.id)
        .limit(limit)
    )
    return [ro for ro in query if archive_rules.needs_unarchive(ro)]


def archive_pass(
    services: Services, now: datetime | None = None, *, dry_run: bool = False, batch: int | None = None
) -> ArchiveReport:
    """One pass: unarchive reopened ROs' channels, then archive the due ones, at most `batch`
    Slack archive/unarchive calls in all. `dry_run`: say what would be done, call and write nothing."""
    now = now or utcnow()
    batch = archive_rules.BATCH if batch is None else batch
    days = services.settings.archive_after_days
    if dry_run:
        return plan(now, days, batch)
    report = ArchiveReport()
    # One pass at a time (the scheduler's and a `bot.py archive`): raises lease.LeaseBusy.
    with lease.held("archive", ARCHIVE_LEASE_TTL):
        archiver = _Archiver(services, days)
        for ro in reopened(batch):
            if not archiver.unarchive(ro, report):
                return report
        for ro in due(now, days, batch - len(report.unarchived) - len(report.failed)):
            if not archiver.archive(ro, now, report):
                return report
    return report


def plan(now: datetime, days: int, batch: int | None = None) -> ArchiveReport:
    """What a pass would do now (`--dry-run`): no Slack call, nothing written."""
    batch = archive_rules.BATCH if batch is None else batch
    back = reopened(batch)
    ahead = due(now, days, batch - len(back))
    return ArchiveReport(
        archived=[(ro.ro_number, ro.channel_name or "") for ro in ahead],
        unarchived=[(ro.ro_number, ro.channel_name or "") for ro in back],
        dry_run=True,
    )


class _Archiver:
    def __init__(self, services: Services, days: int):
        self.services = services
        self.slack = services.slack
        self.days = days

    def unarchive(self, ro: RepairOrder, report: ArchiveReport) -> bool:
        """Publish the reopened RO (which unarchives its channel and updates its card). False: stop the pass."""
        RepairOrder.update(slack_dirty=True, updated_at=utcnow()).where(RepairOrder.id == ro.id).execute()
        try:
            Publisher(self.services).publish(RepairOrder.get_by_id(ro.id))
        except SlackError as exc:
            return self._failed(ro, exc, report)
        back = RepairOrder.get_by_id(ro.id)
        if not back.archived_by_app:  # its channel, or the new one when Slack would not unarchive it
            report.unarchived.append((ro.ro_number, back.channel_name or ""))
        return True

    def archive(self, ro: RepairOrder, now: datetime, report: ArchiveReport) -> bool:
        """The last note, then conversations.archive, each recorded once Slack confirms it. False: stop the pass."""
        try:
            # The same claim as the publisher: a reopen being published is not archived under it.
            with lease.held(f"ro-{ro.id}", RO_CLAIM_TTL):
                fresh = RepairOrder.get_or_none(RepairOrder.id == ro.id)
                if fresh is None or not archive_rules.is_due(fresh, now, self.days):
                    return True
                self._archive(fresh, report)
        except lease.LeaseBusy:
            return True  # being published right now: the next pass looks again
        except SlackError as exc:
            return self._failed(ro, exc, report)
        return True

    def _archive(self, ro: RepairOrder, report: ArchiveReport) -> None:
        if not ro.archive_note_ts:
            try:
                note = self.slack.post(ro.channel_id, self._note(ro))
            except SlackError as exc:
                if exc.code in (SlackErrorCode.IS_ARCHIVED, SlackErrorCode.CHANNEL_NOT_FOUND) or exc.raw_code in _LEAVE:
                    self._leave(ro, exc, report)
                    return
                raise
            ro.archive_note_ts = note["ts"]
            RepairOrder.update(archive_note_ts=ro.archive_note_ts).where(RepairOrder.id == ro.id).execute()
        try:
            self.slack.call("conversations.archive", channel=ro.channel_id)
        except SlackError as exc:
            # already_archived after our note: our own archive whose answer was lost (or staff
            # archived it since the note said it would be): archived as announced.
            if exc.raw_code != "already_archived":
                if exc.code is SlackErrorCode.CHANNEL_NOT_FOUND or exc.raw_code in _LEAVE:
                    self._leave(ro, exc, report)
                    return
                raise
        RepairOrder.update(channel_archived_at=utcnow(), archived_by_app=True).where(
            (RepairOrder.id == ro.id) & (RepairOrder.status == COMPLETED)
        ).execute()
        log.info("RO %s: channel #%s archived", ro.ro_number, ro.channel_name)
        report.archived.append((ro.ro_number, ro.channel_name or ""))

    def _leave(self, ro: RepairOrder, exc: SlackError, report: ArchiveReport) -> None:
        """Archived by hand already, deleted, or Slack will not let us: not tried again."""
        if exc.code is SlackErrorCode.CHANNEL_NOT_FOUND:
            forget_channel(ro.id, ro.channel_id)
        else:
            RepairOrder.update(channel_archived_at=utcnow(), archived_by_app=False).where(RepairOrder.id == ro.id).execute()
        log.info("RO %s: channel left as it is (%s)", ro.ro_number, exc.raw_code)
        report.left_alone.append((ro.ro_number, exc.raw_code))

    def _failed(self, ro: RepairOrder, exc: SlackError, report: ArchiveReport) -> bool:
        report.failed.append((ro.ro_number, exc.raw_code))
        log.warning("RO %s: Slack %s failed: %s", ro.ro_number, exc.method, exc.raw_code)
        if exc.code in _STOP:
            report.stopped_early = exc.raw_code
            return False
        return True

    def _note(self, ro: RepairOrder) -> str:
        # In the card's language: the advisor's.
        locale = self.services.directory.locale(ro.owner_user_id) if ro.owner_user_id else None
        return t("archive.note", locale, days=self.days, number=escape(ro.ro_number))


def describe(report: ArchiveReport) -> list[str]:
    """What a pass did (or, dry, would do), one line each, for `bot.py archive`."""
    verb = ("would archive", "would unarchive") if report.dry_run else ("archived", "unarchived")
    lines = [f"{verb[1]} RO {number} #{name}" for number, name in report.unarchived]
    lines += [f"{verb[0]} RO {number} #{name}" for number, name in report.archived]
    lines += [f"left RO {number}'s channel as it is ({why})" for number, why in report.left_alone]
    lines += [f"failed RO {number}: {why}" for number, why in report.failed]
    summary = f"{len(report.archived)} {verb[0]}, {len(report.unarchived)} {verb[1]}"
    if report.stopped_early:
        summary += f"; stopped early ({report.stopped_early}), the next pass resumes"
    if report.dry_run:
        summary += ". Nothing was changed (dry run)."
    return [*lines, summary]
