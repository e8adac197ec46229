"""Intake: every file shared in an RO channel is recorded and copied into our own storage.

`ingest()` runs in the background (never in Slack's 3-second ack path): it records the file
(uploader, kind, size, time) once per Slack file id, records an Activity row, then downloads
`url_private_download` with the bot token and stores it content-addressed under MEDIA_DIR.

Download rules (the bot token is a key to the whole workspace's files):
- the token goes only to Slack's file host (https://files.slack.com) or to the host of
  SLACK_API_URL (a test or proxy set-up); a redirect elsewhere is followed without it;
- Slack answers a wrong or missing token with its HTML sign-in page and status 200: an HTML
  answer for a file that is not HTML, or a body whose size is not the file's, is a failed
  download, never stored;
- a file over MAX_FILE_MB is recorded but not copied, and the channel is told.

A failed copy is retried by `retry_pending()`, which the scheduler calls.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin, urlsplit

import requests
from peewee import IntegrityError

from core.i18n import t
from core.services import Services
from media.kinds import human_size, kind_of, normalise_mimetype
from media.store import BlobStore, TooLarge
from slackapi.errors import SlackError
from people.unread import FILE, record_activity
from storage.models import RepairOrder, RoFile, utcnow

log = logging.getLogger(__name__)

MAX_COPY_ATTEMPTS = 5
# A row still "pending" this long after it was shared lost its copy job (process restart): retry it.
STUCK_AFTER = timedelta(minutes=10)
SLACK_FILE_HOST = "files.slack.com"
MAX_REDIRECTS = 5
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--")


class CopyFailed(Exception):
    """A download that must not be stored; the message is for logs and the Files view."""


@dataclass
class RetryReport:
    retried: int = 0
    stored: int = 0
    failed: int = 0
    gave_up: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.retried} file copy(ies) retried, {self.stored} stored, {self.failed} failed"
        return text + (f", {len(self.gave_up)} given up" if self.gave_up else "")


def store_for(services: Services) -> BlobStore:
    return BlobStore(services.settings.media_dir)


# -- recording ------------------------------------------------------------------------------------

def ingest(services: Services, ro_id: int, file_id: str, *, user_id: str | None = None, ts: str | None = None) -> RoFile | None:
    """Record the Slack file `file_id` shared in the RO's channel, then copy it.

    Returns the new row, or None when the file was already recorded (Slack sends the same file
    as `file_shared` and as a `message`, and retries events) or no longer exists.
    """
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is None or RoFile.select().where(RoFile.slack_file_id == file_id).exists():
        return None
    info: dict | None
    try:
        info = services.slack.file_info(file_id)
    except SlackError as exc:
        if exc.raw_code in ("file_not_found", "file_deleted"):
            return None
        log.warning("files.info %s failed (%s): recorded, copy retried later", file_id, exc.raw_code)
        info = None
    row = _record(ro, file_id, info, user_id, ts)
    if row is None:
        return None
    if row.copy_status == "pending":
        copy(services, row, info)  # also decides "too large", before any download
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
    except IntegrityError:
        return None  # the other delivery of the same file won the race
    # Through people.unread so the RO also moves up the lists and counts as read for the uploader.
    record_activity(ro.id, row.uploader_user_id, FILE, (share_ts or file_id)[:32], at=shared_at)
    return row


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

def copy(services: Services, row: RoFile, info: dict | None = None) -> str:
    """One copy attempt of `row`; returns the new copy_status. Never raises for a bad download."""
    claimed = (RoFile.update(copy_attempts=RoFile.copy_attempts + 1)
               .where((RoFile.id == row.id) & (RoFile.copy_attempts == row.copy_attempts)
                      & (RoFile.copy_status.in_(("pending", "failed")))).execute())
    if not claimed:
        return RoFile.get_by_id(row.id).copy_status  # another worker is on it, or it is done
    attempts = row.copy_attempts + 1
    settings = services.settings
    limit = settings.max_file_mb * 1024 * 1024
    try:
        if info is None:
            info = services.slack.file_info(row.slack_file_id)
            _refresh(row, info)
        size = int(info.get("size") or 0)
        if size > limit:
            _set(row, copy_status="too_large", last_error=None)
            _announce(services, row, "files.note.too_large")
            return "too_large"
        url = _download_url(info)
        if not url:
            raise CopyFailed(f"Slack offers no download for this file (mode {info.get('mode') or 'unknown'})")
        sha, stored = download(url, settings.slack_bot_token or "", settings.slack_api_url, store_for(services),
                               max_bytes=limit, expected_size=size, expected_type=normalise_mimetype(info.get("mimetype"), row.name))
    except TooLarge:
        _set(row, copy_status="too_large", last_error=None)
        _announce(services, row, "files.note.too_large")
        return "too_large"
    except (CopyFailed, SlackError, requests.RequestException, OSError) as exc:
        reason = str(exc) if isinstance(exc, CopyFailed) else _describe(exc)
        if isinstance(exc, SlackError) and exc.raw_code in ("file_not_found", "file_deleted"):
            attempts = MAX_COPY_ATTEMPTS
            reason = "deleted from Slack before it could be copied"
        _set(row, copy_status="failed", last_error=reason[:255], copy_attempts=attempts)
        log.warning("copy of file %s failed (attempt %s): %s", row.slack_file_id, attempts, reason)
        if attempts >= MAX_COPY_ATTEMPTS:
            _announce(services, row, "files.note.copy_gave_up")
        return "failed"
    _set(row, copy_status="stored", sha256=sha, size=stored or row.size, last_error=None)
    return "stored"


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
    if isinstance(exc, SlackError):
        return f"Slack files.info failed: {exc.raw_code}"
    if isinstance(exc, requests.RequestException):
        return f"download failed: {type(exc).__name__}"
    return f"storage error: {type(exc).__name__}"


def token_allowed(url: str, slack_api_url: str) -> bool:
    """May the bot token be sent to `url`? Only Slack's file host over https, or SLACK_API_URL's host."""
    parts, api = urlsplit(url), urlsplit(slack_api_url)
    host = (parts.hostname or "").lower()
    if host == SLACK_FILE_HOST and parts.scheme == "https":
        return True
    return bool(host) and host == (api.hostname or "").lower() and parts.scheme == api.scheme


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

def retry_pending(services: Services, now: datetime | None = None) -> RetryReport:
    """Retry every failed copy with attempts left, and pending ones whose job was lost.

    Safe to run from several processes: each attempt is claimed atomically.
    """
    now = now or utcnow()
    report = RetryReport()
    rows = (RoFile.select()
            .where(((RoFile.copy_status == "failed") & (RoFile.copy_attempts < MAX_COPY_ATTEMPTS))
                   | ((RoFile.copy_status == "pending") & (RoFile.shared_at < now - STUCK_AFTER)))
            .order_by(RoFile.id))
    for row in rows:
        report.retried += 1
        status = copy(services, row)
        if status == "stored":
            report.stored += 1
        elif status == "failed":
            report.failed += 1
            if row.copy_attempts >= MAX_COPY_ATTEMPTS:
                report.gave_up.append(row.slack_file_id)
    if report.retried:
        log.info("file copies: %s", report.summary())
    return report


# -- notes in the channel -------------------------------------------------------------------------

def _announce(services: Services, row: RoFile, key: str) -> None:
    """A one-line note, in the uploader's language, in the thread of the file's message."""
    ro = RepairOrder.get_or_none(RepairOrder.id == row.ro_id)
    if ro is None or not ro.channel_id:
        return
    locale = services.directory.locale(row.uploader_user_id or None)
    text = t(key, locale, name=row.name, size=human_size(row.size, locale),
             limit=human_size(services.settings.max_file_mb * 1024 * 1024, locale), attempts=MAX_COPY_ATTEMPTS)
    try:
        services.slack.post(ro.channel_id, text, thread_ts=row.share_ts)
    except SlackError as exc:
        log.warning("could not post the file note in RO %s: %s", ro.ro_number, exc.raw_code)
