"""Intake: every file shared in an RO channel is recorded and copied into our own storage.

`ingest()` runs in the background (never in Slack's 3-second ack path): it records the file
(uploader, kind, size, time) once per RO and Slack file id, records an Activity row, then downloads
`url_private_download` with the bot token and stores it content-addressed under MEDIA_DIR. The
same Slack file shared into a second RO channel gets its own row there; the copy is shared
(same sha256), so it is downloaded once.

No Slack here: the caller hands in an `Intake` with Slack's `files.info` and a way to post a note
about a file (handlers/files.py builds it from the Slack client).

Download rules (the bot token is a key to the whole workspace's files):
- the token goes only to Slack's file host (https://files.slack.com) or to the host of
  SLACK_API_URL (a test or proxy set-up); a redirect elsewhere is followed without it;
- Slack answers a wrong or missing token with its HTML sign-in page and status 200: an HTML
  answer for a file that is not HTML, or a body whose size is not the file's, is a failed
  download, never stored;
- a file over MAX_FILE_MB is recorded but not copied, and the channel is told.

Each copy attempt claims its row first ("pending" or "failed" -> "copying", with the claim's time,
in one conditional UPDATE): only the claimer downloads, and it writes the outcome only while it
still holds that claim. A failed copy is retried by `retry_pending()`, which the scheduler calls;
it also takes over rows whose copy job was lost (process restart) or whose claim went stale.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.parse import urljoin, urlsplit

import requests
from peewee import IntegrityError

from core.config import Settings
from media.kinds import kind_of, normalise_mimetype
from media.store import BlobStore, TooLarge
from people.unread import FILE, record_activity
from storage.models import RepairOrder, RoFile, utcnow

log = logging.getLogger(__name__)

MAX_COPY_ATTEMPTS = 5
# A row still "pending" this long after we recorded it lost its copy job (process restart), and a
# "copying" claim this old was interrupted: retry them. Measured from our own clock, never from
# Slack's file time (shared_at), which for an old photo shared now is already hours back.
STUCK_AFTER = timedelta(minutes=10)
SLACK_FILE_HOST = "files.slack.com"
MAX_REDIRECTS = 5
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--")
# What a note about a file says (the caller words it): over MAX_FILE_MB, or copies given up.
TOO_LARGE, GAVE_UP = "too_large", "copy_gave_up"


class CopyFailed(Exception):
    """A download that must not be stored; the message is for logs and the Files view."""


class FileGone(Exception):
    """files.info: the file was deleted (or never existed)."""


class InfoUnavailable(Exception):
    """files.info failed for another reason (`code`); the copy is retried later."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


@dataclass
class Intake:
    """What intake needs from outside: the settings, Slack's files.info (raises FileGone or
    InfoUnavailable) and `announce(row, TOO_LARGE | GAVE_UP)`, a note in the file's thread."""

    settings: Settings
    file_info: Callable[[str], dict]
    announce: Callable[[RoFile, str], None]

    @property
    def store(self) -> BlobStore:
        return BlobStore(self.settings.media_dir)


@dataclass
class RetryReport:
    retried: int = 0
    stored: int = 0
    failed: int = 0
    gave_up: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.retried} file copy(ies) retried, {self.stored} stored, {self.failed} failed"
        return text + (f", {len(self.gave_up)} given up" if self.gave_up else "")


# -- recording ------------------------------------------------------------------------------------

def ingest(intake: Intake, ro_id: int, file_id: str, *, user_id: str | None = None, ts: str | None = None) -> RoFile | None:
    """Record the Slack file `file_id` shared in the RO's channel, then copy it.

    Returns the new row, or None when the file was already recorded in this RO (Slack sends the
    same file as `file_shared` and as a `message`, and retries events) or no longer exists.
    """
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is None:
        return None
    if RoFile.select().where((RoFile.ro == ro) & (RoFile.slack_file_id == file_id)).exists():
        _note_share_ts(ro, file_id, ts)
        return None
    info: dict | None
    try:
        info = intake.file_info(file_id)
    except FileGone:
        return None
    except InfoUnavailable as exc:
        log.warning("files.info %s failed (%s): recorded, copy retried later", file_id, exc.code)
        info = None
    row = _record(ro, file_id, info, user_id, ts)
    if row is None:
        return None
    if row.copy_status == "pending":
        copy(intake, row, info)  # also decides "too large", before any download
    return row


def _record(ro: RepairOrder, file_id: str, info: dict | None, user_id: str | None, ts: str | None) -> RoFile | None:
    info = info or {}
    name = info.get("name") or info.get("title") or file_id
    mimetype = normalise_mimetype(info.get("mimetype"), name)
    size = int(info.get("size") or 0)
    created = info.get("created") or info.get("timestamp")
    shared_at = datetime.fromtimestamp(int(created), timezone.utc).replace(tzinfo=None) if created else utcnow()
    share_ts = _share_ts(info, ro.channel_id) or ts
    fields = dict(
        ro=ro, slack_file_id=file_id, uploader_user_id=info.get("user") or user_id or "",
        kind=kind_of(mimetype, name), name=name[:255], mimetype=mimetype[:255], size=size, shared_at=shared_at,
        permalink=(info.get("permalink") or None) and info["permalink"][:512], share_ts=share_ts,
    )
    status, error, attempts = "pending", None, 0
    if not info:
        status, error, attempts = "failed", "Slack files.info failed", 1
    elif not _download_url(info):
        # External links (Google Drive…), deleted or plan-hidden files: nothing to copy, ever.
        status, error, attempts = "failed", f"Slack offers no download for this file (mode {info.get('mode') or 'unknown'})", MAX_COPY_ATTEMPTS
    try:
        row = RoFile.create(copy_status=status, last_error=error, copy_attempts=attempts, **fields)
    except IntegrityError:  # the other delivery of the same file won the race
        _note_share_ts(ro, file_id, ts)
        return None
    # Through people.unread so the RO also moves up the lists and counts as read for the uploader.
    # Dated when we received it in this channel (people.unread's one clock: read marks and
    # messages are receipt times too): a file taken earlier, or shared into a second RO later,
    # is still new in this RO. RoFile.shared_at keeps Slack's own time.
    record_activity(ro.id, row.uploader_user_id, FILE, (share_ts or file_id)[:32])
    return row


def _note_share_ts(ro: RepairOrder, file_id: str, ts: str | None) -> None:
    """The message event knows where the file was shared; `file_shared` may have recorded the row
    first without it (Slack's files.info does not always list the share yet). Notes about the file
    go in that message's thread."""
    if ts:
        (RoFile.update(share_ts=ts[:32])
         .where((RoFile.ro == ro) & (RoFile.slack_file_id == file_id) & RoFile.share_ts.is_null()).execute())


def _share_ts(info: dict, channel_id: str | None) -> str | None:
    for visibility in ("public", "private"):
        shares = ((info.get("shares") or {}).get(visibility) or {}).get(channel_id or "") or []
        for share in shares:
            if share.get("ts"):
                return str(share["ts"])
    return None


def _download_url(info: dict) -> str | None:
    if info.get("mode") in ("external", "tombstone", "hidden_by_limit"):
        return None
    return info.get("url_private_download") or info.get("url_private")


# -- copying --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Claim:
    """One attempt's hold on a row: the attempt number it took and when (both identify it)."""

    at: datetime
    attempts: int


def copy(intake: Intake, row: RoFile, info: dict | None = None) -> str:
    """One copy attempt of `row`; returns its copy_status afterwards. Never raises for a bad download.

    Only the attempt that claims the row downloads: while it copies, any other attempt (a retry
    pass, another process) finds it "copying" and leaves it alone.
    """
    claim = _claim(row)
    if claim is None:
        return RoFile.get_by_id(row.id).copy_status  # another attempt holds it, or it is done
    try:
        outcome, note = _attempt(intake, row, info)
    except Exception as exc:  # a bug, not a bad download: free the row for the next retry pass now
        _finish(row, claim, copy_status="failed", last_error=f"unexpected error: {type(exc).__name__}")
        raise
    if not _finish(row, claim, **outcome):
        # Our claim went stale and another attempt took the row over: its outcome stands.
        log.warning("copy of file %s (attempt %s) finished after losing its claim: outcome dropped",
                    row.slack_file_id, claim.attempts)
        return RoFile.get_by_id(row.id).copy_status
    if note:
        intake.announce(row, note)
    return str(row.copy_status)


def _claim(row: RoFile) -> _Claim | None:
    """Take `row` for one attempt, or None when it is not ours to copy (being copied, done, or
    already retried since `row` was read: the attempt count must not have moved)."""
    claim = _Claim(utcnow(), row.copy_attempts + 1)
    taken = (RoFile.update(copy_status="copying", copy_claimed_at=claim.at, copy_attempts=claim.attempts)
             .where((RoFile.id == row.id) & (RoFile.copy_attempts == row.copy_attempts)
                    & (RoFile.copy_status.in_(("pending", "failed")))).execute())
    if not taken:
        return None
    row.copy_status, row.copy_claimed_at, row.copy_attempts = "copying", claim.at, claim.attempts
    return claim


def _finish(row: RoFile, claim: _Claim, **fields: object) -> bool:
    """Write an attempt's outcome if it still holds its claim; False when it lost it."""
    held = (RoFile.update(**fields)
            .where((RoFile.id == row.id) & (RoFile.copy_status == "copying")
                   & (RoFile.copy_claimed_at == claim.at) & (RoFile.copy_attempts == claim.attempts)).execute())
    if held:
        for key, value in fields.items():
            setattr(row, key, value)
    return bool(held)


def _attempt(intake: Intake, row: RoFile, info: dict | None) -> tuple[dict, str | None]:
    """Fetch the file (no database write about the copy): the row's new fields and what to announce."""
    settings = intake.settings
    limit = settings.max_file_mb * 1024 * 1024
    store = intake.store
    try:
        if info is None:
            info = intake.file_info(row.slack_file_id)
            _refresh(row, info)
        size = int(info.get("size") or 0)
        if size > limit:
            return dict(copy_status="too_large", last_error=None), TOO_LARGE
        twin = _stored_twin(row, store, size)
        if twin is not None:  # the same Slack file, already copied for another RO
            return dict(copy_status="stored", sha256=twin.sha256, size=twin.size or row.size, last_error=None), None
        url = _download_url(info)
        if not url:
            raise CopyFailed(f"Slack offers no download for this file (mode {info.get('mode') or 'unknown'})")
        sha, stored = download(url, settings.slack_bot_token or "", settings.slack_api_url, store,
                               max_bytes=limit, expected_size=size, expected_type=normalise_mimetype(info.get("mimetype"), row.name))
    except TooLarge:
        return dict(copy_status="too_large", last_error=None), TOO_LARGE
    except (CopyFailed, FileGone, InfoUnavailable, requests.RequestException, OSError) as exc:
        attempts = row.copy_attempts
        reason = str(exc) if isinstance(exc, CopyFailed) else _describe(exc)
        if isinstance(exc, FileGone):
            attempts = MAX_COPY_ATTEMPTS
            reason = "deleted from Slack before it could be copied"
        log.warning("copy of file %s failed (attempt %s): %s", row.slack_file_id, row.copy_attempts, reason)
        return (dict(copy_status="failed", last_error=reason[:255], copy_attempts=attempts),
                GAVE_UP if attempts >= MAX_COPY_ATTEMPTS else None)
    return dict(copy_status="stored", sha256=sha, size=stored or row.size, last_error=None), None


def _stored_twin(row: RoFile, store: BlobStore, size: int) -> RoFile | None:
    """Another RO's row of the same Slack file whose copy is in the store (and of the same size)."""
    others = (RoFile.select()
              .where((RoFile.slack_file_id == row.slack_file_id) & (RoFile.id != row.id) & (RoFile.copy_status == "stored"))
              .order_by(RoFile.id))
    return next((o for o in others if store.has(o.sha256) and (not size or o.size == size)), None)


def _refresh(row: RoFile, info: dict) -> None:
    """A row recorded while files.info was down gets its real metadata on the next attempt."""
    name = info.get("name") or row.name
    mimetype = normalise_mimetype(info.get("mimetype"), name)
    _set(row, name=name[:255], mimetype=mimetype[:255], kind=kind_of(mimetype, name), size=int(info.get("size") or row.size),
         uploader_user_id=info.get("user") or row.uploader_user_id, permalink=info.get("permalink") or row.permalink)


def _set(row: RoFile, **fields: object) -> None:
    RoFile.update(**fields).where(RoFile.id == row.id).execute()
    for key, value in fields.items():
        setattr(row, key, value)


def _describe(exc: Exception) -> str:
    if isinstance(exc, InfoUnavailable):
        return f"Slack files.info failed: {exc.code}"
    if isinstance(exc, requests.RequestException):
        return f"download failed: {type(exc).__name__}"
    return f"storage error: {type(exc).__name__}"


def token_allowed(url: str, slack_api_url: str) -> bool:
    """May the bot token be sent to `url`? Only Slack's file host over https (port 443), or the
    exact origin (scheme, host and port) of SLACK_API_URL."""
    try:
        target, api = _origin(url), _origin(slack_api_url)
    except ValueError:  # a port that is not a number
        return False
    if target == ("https", SLACK_FILE_HOST, 443):
        return True
    return bool(target[1]) and target == api


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"https": 443, "http": 80}.get(scheme)


def download(url: str, token: str, slack_api_url: str, store: BlobStore, *, max_bytes: int,
             expected_size: int = 0, expected_type: str = "") -> tuple[str, int]:
    """Fetch a Slack file into the store; (sha256, size). Raises CopyFailed or TooLarge."""
    expects_html = expected_type in ("text/html", "application/xhtml+xml")
    for _ in range(MAX_REDIRECTS + 1):
        if urlsplit(url).scheme not in ("http", "https"):
            raise CopyFailed("download URL is not http(s)")
        headers = {"Authorization": f"Bearer {token}"} if token and token_allowed(url, slack_api_url) else {}
        response = requests.get(url, headers=headers, stream=True, allow_redirects=False, timeout=(10, 120))
        if response.is_redirect and response.headers.get("Location"):
            url = urljoin(url, response.headers["Location"])
            response.close()
            continue
        break
    else:
        raise CopyFailed("too many redirects")
    with response:
        if response.status_code != 200:
            raise CopyFailed(f"Slack answered HTTP {response.status_code}")
        content_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type == "text/html" and not expects_html:
            raise CopyFailed("Slack answered an HTML page instead of the file (bot token wrong or missing files:read)")
        if expected_size > max_bytes:
            raise TooLarge(f"{expected_size} bytes")
        with store.writer(max_bytes) as out:
            first = True
            for chunk in response.iter_content(chunk_size=256 * 1024):
                if first and not expects_html and chunk.lstrip()[:16].lower().startswith(_HTML_STARTS):
                    raise CopyFailed("Slack answered an HTML page instead of the file (bot token wrong or missing files:read)")
                first = False
                out.write(chunk)
            if expected_size and out.size != expected_size:
                raise CopyFailed(f"incomplete download: {out.size} of {expected_size} bytes")
            return out.commit()


# -- retries (scheduler) ---------------------------------------------------------------------------

def retry_pending(intake: Intake, now: datetime | None = None) -> RetryReport:
    """Retry every failed copy with attempts left, pending ones whose job was lost, and copies
    whose claim went stale (counted as a failed attempt first).

    Safe to run from several processes, and while copies are under way: each attempt claims its
    row atomically, and a row being copied is left to its claimer until the claim is STUCK_AFTER old.
    """
    now = now or utcnow()
    cutoff = now - STUCK_AFTER
    report = RetryReport()
    stale = RoFile.select().where((RoFile.copy_status == "copying") & (RoFile.copy_claimed_at < cutoff)).order_by(RoFile.id)
    for row in list(stale):
        _release_stale(intake, row, report)
    rows = (RoFile.select()
            .where(((RoFile.copy_status == "failed") & (RoFile.copy_attempts < MAX_COPY_ATTEMPTS))
                   | ((RoFile.copy_status == "pending") & (RoFile.recorded_at < cutoff)))
            .order_by(RoFile.id))
    # Read all first: a SQLite cursor still open while we write would hold an old snapshot.
    for row in list(rows):
        report.retried += 1
        status = copy(intake, row)
        if status == "stored":
            report.stored += 1
        elif status == "failed":
            report.failed += 1
            if row.copy_attempts >= MAX_COPY_ATTEMPTS:
                report.gave_up.append(row.slack_file_id)
    if report.retried or report.gave_up:
        log.info("file copies: %s", report.summary())
    return report


def _release_stale(intake: Intake, row: RoFile, report: RetryReport) -> None:
    """A claim STUCK_AFTER old was interrupted (process restart, hung download): its attempt
    failed, so the row is retried like any failed copy, or given up when it was the last one."""
    claim = _Claim(row.copy_claimed_at, row.copy_attempts)
    if not _finish(row, claim, copy_status="failed", last_error="copy interrupted before it finished"):
        return  # finished, or released by another process, since we read it
    log.warning("copy of file %s (attempt %s) was interrupted", row.slack_file_id, claim.attempts)
    if row.copy_attempts >= MAX_COPY_ATTEMPTS:
        report.gave_up.append(row.slack_file_id)
        intake.announce(row, GAVE_UP)
