"""Intake: every file shared in an RO channel is recorded and copied into our own storage.

The listeners call `file_shared()` (fast: it only notes where the file was shared and queues
the work); the task "files.ingest" then asks Slack for the file (files.info), records it
(media.intake_rules), and downloads `url_private_download` with the bot token into the
content-addressed store (media.file_download). A file over MAX_FILE_MB is recorded but not
copied, and the channel is told in the file's thread. A failed copy is retried by
`retry_pending()`, which the scheduler queues every ten minutes; it also takes over rows whose
copy attempt was lost (process killed) or whose claim went stale.
"""

from __future__ import annotations

import logging
from datetime import datetime

import requests

from blocks.files_view import file_note
from media import intake_rules as rules
from media.blob_store import TooLarge, open_store
from media.file_download import CopyFailed, download
from media.file_kinds import normalise_mimetype
from slackapi.errors import SlackError
from slackapi.services import Services
from storage.db import database
from storage.models import RepairOrder, RoFile, utcnow
from taskqueue.queue import task

log = logging.getLogger(__name__)


class FileGone(Exception):
    """files.info: the file was deleted (or never existed)."""


class InfoUnavailable(Exception):
    """files.info failed for another reason (`code`); the copy is retried later."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


def file_shared(services: Services, ro: RepairOrder, file_id: str, *, user_id: str | None, ts: str | None) -> None:
    """A file was shared in the RO's channel (Slack says so twice: `file_shared` and a `message`
    with `files`, in either order, and retries both): note the share's message, queue its intake once."""
    with database.atomic():
        rules.note_share_ts(ro, file_id, ts)
        services.tasks.enqueue("files.ingest", ro.id, file_id, user_id, ts, key=f"ingest:{ro.id}:{file_id}")


def _ingest_gave_up(
    services: Services, ro_id: int, file_id: str, user_id: str | None = None, ts: str | None = None, *, error: str
) -> None:
    """Every attempt failed (Slack or the database down for long): the file is recorded all the
    same, as far as the event told, so Files lists it and the copy retry job fetches it later."""
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is not None and RoFile.get_or_none((RoFile.ro == ro) & (RoFile.slack_file_id == file_id)) is None:
        rules.record(ro, file_id, None, user_id, ts, bot_user_id=_known_bot_id(services))
        log.warning("file %s in RO %s recorded without its details after: %s", file_id, ro.ro_number, error)


@task("files.ingest", on_give_up=_ingest_gave_up)
def ingest(services: Services, ro_id: int, file_id: str, user_id: str | None = None, ts: str | None = None) -> RoFile | None:
    """Record the Slack file `file_id` shared in the RO's channel, then copy it.

    Returns the new row, or None when the file was already recorded in this RO or no longer exists.
    """
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is None:
        return None
    existing = RoFile.get_or_none((RoFile.ro == ro) & (RoFile.slack_file_id == file_id))
    if existing is not None:
        rules.note_share_ts(ro, file_id, ts)
        if existing.copy_status == "pending":
            copy(services, existing)  # a resumed task: recorded before the crash, not copied yet
        return None
    info: dict | None
    try:
        info = file_info(services, file_id)
    except FileGone:
        return None
    except InfoUnavailable as exc:
        log.warning("files.info %s failed (%s): recorded, copy retried later", file_id, exc.code)
        info = None
    if info and info.get("user") == services.slack.bot_user_id:
        return None  # our own upload (a customer's MMS media): recorded by the flow that made it
    row = rules.record(ro, file_id, info, user_id, ts, bot_user_id=_known_bot_id(services))
    if row is None:
        return None
    if row.copy_status == "pending":
        copy(services, row, info)  # also decides "too large", before any download
    return row


def _known_bot_id(services: Services) -> str | None:
    """Our own Slack user id (asked once per process), or None while Slack cannot say: a file
    recorded without its details must still be recorded."""
    try:
        return services.slack.bot_user_id
    except SlackError:
        return None


def file_info(services: Services, file_id: str) -> dict:
    try:
        return services.slack.file_info(file_id)
    except SlackError as exc:
        if exc.raw_code in ("file_not_found", "file_deleted"):
            raise FileGone(file_id) from None
        raise InfoUnavailable(exc.raw_code) from None


def announce(services: Services, row: RoFile, what: str) -> None:
    """A one-line note about a file (too large, copies given up), in the uploader's language, in its thread."""
    ro = RepairOrder.get_or_none(RepairOrder.id == row.ro_id)
    if ro is None or not ro.channel_id:
        return
    locale = services.directory.locale(row.uploader_user_id or None)
    text = file_note(
        what,
        row.name,
        row.size,
        locale,
        limit_bytes=services.settings.max_file_mb * 1024 * 1024,
        attempts=rules.MAX_COPY_ATTEMPTS,
    )
    try:
        services.slack.post(ro.channel_id, text, thread_ts=row.share_ts)
    except SlackError as exc:
        log.warning("could not post the file note in RO %s: %s", ro.ro_number, exc.raw_code)


# -- copying --------------------------------------------------------------------------------------


def copy(services: Services, row: RoFile, info: dict | None = None) -> str:
    """One copy attempt of `row`; returns its copy_status afterwards. Never raises for a bad download.

    Only the attempt that claims the row downloads: while it copies, any other attempt (a retry
    pass, another process) finds it "copying" and leaves it alone.
    """
    claim = rules.claim(row)
    if claim is None:
        return RoFile.get_by_id(row.id).copy_status  # another attempt holds it, or it is done
    try:
        outcome, note = _attempt(services, row, info)
    except Exception as exc:  # a bug, not a bad download: free the row for the next retry pass now
        rules.finish(row, claim, copy_status="failed", last_error=f"unexpected error: {type(exc).__name__}")
        raise
    if not rules.finish(row, claim, **outcome):
        # Our claim went stale and another attempt took the row over: its outcome stands.
        log.warning(
            "copy of file %s (attempt %s) finished after losing its claim: outcome dropped", row.slack_file_id, claim.attempts
        )
        return RoFile.get_by_id(row.id).copy_status
    if note:
        announce(services, row, note)
    return str(row.copy_status)


def _attempt(services: Services, row: RoFile, info: dict | None) -> tuple[dict, str | None]:
    """Fetch the file (no database write about the copy): the row's new fields and what to announce."""
    settings = services.settings
    limit = settings.max_file_mb * 1024 * 1024
    store = open_store(settings)
    try:
        if info is None:
            info = file_info(services, row.slack_file_id)
            rules.refresh(row, info, bot_user_id=_known_bot_id(services))
        size = int(info.get("size") or 0)
        if size > limit:
            return dict(copy_status="too_large", last_error=None), rules.TOO_LARGE
        twin = rules.stored_twin(row, store, size)
        if twin is not None:  # the same Slack file, already copied for another RO
            return dict(copy_status="stored", sha256=twin.sha256, size=twin.size or row.size, last_error=None), None
        url = rules.download_url(info)
        if not url:
            raise CopyFailed(f"Slack offers no download for this file (mode {info.get('mode') or 'unknown'})")
        sha, stored = download(
            url,
            settings.slack_bot_token or "",
            settings.slack_api_url,
            store,
            max_bytes=limit,
            expected_size=size,
            expected_type=normalise_mimetype(info.get("mimetype"), row.name),
        )
    except TooLarge:
        return dict(copy_status="too_large", last_error=None), rules.TOO_LARGE
    except (CopyFailed, FileGone, InfoUnavailable, requests.RequestException, OSError) as exc:
        attempts = row.copy_attempts
        reason = str(exc) if isinstance(exc, CopyFailed) else _describe(exc)
        if isinstance(exc, FileGone):
            attempts = rules.MAX_COPY_ATTEMPTS
            reason = "deleted from Slack before it could be copied"
        log.warning("copy of file %s failed (attempt %s): %s", row.slack_file_id, row.copy_attempts, reason)
        return (
            dict(copy_status="failed", last_error=reason[:255], copy_attempts=attempts),
            rules.GAVE_UP if attempts >= rules.MAX_COPY_ATTEMPTS else None,
        )
    return dict(copy_status="stored", sha256=sha, size=stored or row.size, last_error=None), None


def _describe(exc: Exception) -> str:
    if isinstance(exc, InfoUnavailable):
        return f"Slack files.info failed: {exc.code}"
    if isinstance(exc, requests.RequestException):
        return f"download failed: {type(exc).__name__}"
    if isinstance(exc, OSError):
        return f"storage error: {exc.strerror or type(exc).__name__}"
    return f"storage error: {type(exc).__name__}"


# -- retries (scheduler) ---------------------------------------------------------------------------


@task("files.retry_copies", max_attempts=1)
def retry_copies_task(services: Services) -> None:
    retry_pending(services)


def retry_pending(services: Services, now: datetime | None = None) -> rules.RetryReport:
    """Retry every failed copy with attempts left, pending ones whose job was lost, and copies
    whose claim went stale (counted as a failed attempt first).

    Safe to run from several processes, and while copies are under way: each attempt claims its
    row atomically, and a row being copied is left to its claimer until the claim is STUCK_AFTER old.
    """
    now = now or utcnow()
    cutoff = now - rules.STUCK_AFTER
    report = rules.RetryReport()
    stale = RoFile.select().where((RoFile.copy_status == "copying") & (RoFile.copy_claimed_at < cutoff)).order_by(RoFile.id)
    for row in list(stale):
        _release_stale(services, row, report)
    rows = (
        RoFile.select()
        .where(
            ((RoFile.copy_status == "failed") & (RoFile.copy_attempts < rules.MAX_COPY_ATTEMPTS))
            | ((RoFile.copy_status == "pending") & (RoFile.recorded_at < cutoff))
        )
        .order_by(RoFile.id)
    )
    # Read all first: a SQLite cursor still open while we write would hold an old snapshot.
    for row in list(rows):
        report.retried += 1
        status = copy(services, row)
        if status == "stored":
            report.stored += 1
        elif status == "failed":
            report.failed += 1
            if row.copy_attempts >= rules.MAX_COPY_ATTEMPTS:
                report.gave_up.append(row.slack_file_id)
    if report.retried or report.gave_up:
        log.info("file copies: %s", report.summary())
    return report


def _release_stale(services: Services, row: RoFile, report: rules.RetryReport) -> None:
    """A claim STUCK_AFTER old was interrupted (process restart, hung download): its attempt
    failed, so the row is retried like any failed copy, or given up when it was the last one."""
    claim = rules.Claim(row.copy_claimed_at, row.copy_attempts)
    if not rules.finish(row, claim, copy_status="failed", last_error="copy interrupted before it finished"):
        return  # finished, or released by another process, since we read it
    log.warning("copy of file %s (attempt %s) was interrupted", row.slack_file_id, claim.attempts)
    if row.copy_attempts >= rules.MAX_COPY_ATTEMPTS:
        report.gave_up.append(row.slack_file_id)
        announce(services, row, rules.GAVE_UP)
