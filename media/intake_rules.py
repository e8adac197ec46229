"""Intake rules: how a shared file is recorded and claimed for copying. No Slack here.

A file is recorded once per RO and Slack file id (the same Slack file shared into a second RO
channel gets its own row there; the copy is shared, same sha256). Each copy attempt claims its
row first ("pending" or "failed" -> "copying", with the claim's time, in one conditional
UPDATE): only the claimer downloads, and it writes the outcome only while it still holds that
claim. media.intake_flow does the Slack side (files.info, notes) and the download.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from peewee import IntegrityError

from media.blob_store import BlobStore
from media.file_kinds import kind_of, normalise_mimetype
from people.unread_rules import record_activity
from storage import metric_events
from storage.db import database
from storage.models import RepairOrder, RoFile, utcnow
from storage.values import FILE, PICTURE, STAFF_FILE, VIDEO

MAX_COPY_ATTEMPTS = 5
# A row still "pending" this long after we recorded it lost its copy job (process restart), and a
# "copying" claim this old was interrupted: retry them. Measured from our own clock, never from
# Slack's file time (shared_at), which for an old photo shared now is already hours back.
STUCK_AFTER = timedelta(minutes=10)
# What a note about a file says (the caller words it): over MAX_FILE_MB, or copies given up.
TOO_LARGE, GAVE_UP = "too_large", "copy_gave_up"


@dataclass
class RetryReport:
    retried: int = 0
    stored: int = 0
    failed: int = 0
    gave_up: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.retried} file copy(ies) retried, {self.stored} stored, {self.failed} failed"
        return text + (f", {len(self.gave_up)} given up" if self.gave_up else "")


def record(
    ro: RepairOrder, file_id: str, info: dict | None, user_id: str | None, ts: str | None, *, bot_user_id: str | None = None
) -> RoFile | None:
    """The file's row in this RO (from Slack's files.info `info`, None when it could not be read),
    or None when another delivery of the same file recorded it first. `bot_user_id`: our own
    uploads (known only by the event when files.info failed) are no one's internal file."""
    info = info or {}
    name = info.get("name") or info.get("title") or file_id
    mimetype = normalise_mimetype(info.get("mimetype"), name)
    size = int(info.get("size") or 0)
    created = info.get("created") or info.get("timestamp")
    shared_at = datetime.fromtimestamp(int(created), UTC).replace(tzinfo=None) if created else utcnow()
    share_ts = _share_ts(info, ro.channel_id) or ts
    fields = dict(
        ro=ro,
        slack_file_id=file_id,
        uploader_user_id=info.get("user") or user_id or "",
        kind=kind_of(mimetype, name),
        name=name[:255],
        mimetype=mimetype[:255],
        size=size,
        shared_at=shared_at,
        permalink=(info.get("permalink") or None) and info["permalink"][:512],
        share_ts=share_ts,
    )
    status, error, attempts = "pending", None, 0
    if not info:
        status, error, attempts = "failed", "Slack files.info failed", 1
    elif not download_url(info):
        # External links (Google Drive…), deleted or plan-hidden files: nothing to copy, ever.
        status, error, attempts = (
            "failed",
            f"Slack offers no download for this file (mode {info.get('mode') or 'unknown'})",
            MAX_COPY_ATTEMPTS,
        )
    try:
        # The row and its metrics event together: a crash cannot count a file that was not recorded.
        with database.atomic():
            row = RoFile.create(copy_status=status, last_error=error, copy_attempts=attempts, **fields)
            count(row, bot_user_id)
    except IntegrityError:  # the other delivery of the same file won the race
        note_share_ts(ro, file_id, ts)
        return None
    # Through people.unread_rules so the RO also moves up the lists and counts as read for the uploader.
    # Dated when we received it in this channel (people.unread_rules's one clock: read marks and
    # messages are receipt times too): a file taken earlier, or shared into a second RO later,
    # is still new in this RO. RoFile.shared_at keeps Slack's own time.
    record_activity(ro.id, row.uploader_user_id, FILE, (share_ts or file_id)[:32])
    return row


def count(row: RoFile, bot_user_id: str | None = None) -> bool:
    """The metrics' picture or video: a staff member's own file in this RO (a merged video, a
    customer's MMS media and our uploads are nobody's). Once per RO and Slack file, as backfill does."""
    uploader = row.uploader_user_id
    if row.origin != STAFF_FILE or row.kind not in (PICTURE, VIDEO) or not uploader or uploader == bot_user_id:
        return False
    ref = metric_events.file_ref(row.ro_id, row.slack_file_id)
    return metric_events.record(row.kind, ref, at=row.shared_at, user_id=uploader, ro_id=row.ro_id)


def note_share_ts(ro: RepairOrder, file_id: str, ts: str | None) -> None:
    """The message event knows where the file was shared; `file_shared` may have recorded the row
    first without it (Slack's files.info does not always list the share yet). Notes about the file
    go in that message's thread."""
    if ts:
        (
            RoFile.update(share_ts=ts[:32])
            .where((RoFile.ro == ro) & (RoFile.slack_file_id == file_id) & RoFile.share_ts.is_null())
            .execute()
        )


def _share_ts(info: dict, channel_id: str | None) -> str | None:
    for visibility in ("public", "private"):
        shares = ((info.get("shares") or {}).get(visibility) or {}).get(channel_id or "") or []
        for share in shares:
            if share.get("ts"):
                return str(share["ts"])
    return None


def download_url(info: dict) -> str | None:
    if info.get("mode") in ("external", "tombstone", "hidden_by_limit"):
        return None
    return info.get("url_private_download") or info.get("url_private")


# -- claims ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One attempt's hold on a row: the attempt number it took and when (both identify it)."""

    at: datetime
    attempts: int


def claim(row: RoFile) -> Claim | None:
    """Take `row` for one attempt, or None when it is not ours to copy (being copied, done, or
    already retried since `row` was read: the attempt count must not have moved)."""
    held = Claim(utcnow(), row.copy_attempts + 1)
    taken = (
        RoFile.update(copy_status="copying", copy_claimed_at=held.at, copy_attempts=held.attempts)
        .where(
            (RoFile.id == row.id) & (RoFile.copy_attempts == row.copy_attempts) & (RoFile.copy_status.in_(("pending", "failed")))
        )
        .execute()
    )
    if not taken:
        return None
    row.copy_status, row.copy_claimed_at, row.copy_attempts = "copying", held.at, held.attempts
    return held


def finish(row: RoFile, claim: Claim, **fields: object) -> bool:
    """Write an attempt's outcome if it still holds its claim; False when it lost it."""
    held = (
        RoFile.update(**fields)
        .where(
            (RoFile.id == row.id)
            & (RoFile.copy_status == "copying")
            & (RoFile.copy_claimed_at == claim.at)
            & (RoFile.copy_attempts == claim.attempts)
        )
        .execute()
    )
    if held:
        for key, value in fields.items():
            setattr(row, key, value)
    return bool(held)


def stored_twin(row: RoFile, store: BlobStore, size: int) -> RoFile | None:
    """Another RO's row of the same Slack file whose copy is in the store (and of the same size)."""
    others = (
        RoFile.select()
        .where((RoFile.slack_file_id == row.slack_file_id) & (RoFile.id != row.id) & (RoFile.copy_status == "stored"))
        .order_by(RoFile.id)
    )
    return next((o for o in others if store.has(o.sha256) and (not size or o.size == size)), None)


def refresh(row: RoFile, info: dict, *, bot_user_id: str | None = None) -> None:
    """A row recorded while files.info was down gets its real metadata on the next attempt (and,
    now that its kind is known, its metrics event)."""
    name = info.get("name") or row.name
    mimetype = normalise_mimetype(info.get("mimetype"), name)
    with database.atomic():
        set_fields(
            row,
            name=name[:255],
            mimetype=mimetype[:255],
            kind=kind_of(mimetype, name),
            size=int(info.get("size") or row.size),
            uploader_user_id=info.get("user") or row.uploader_user_id,
            permalink=info.get("permalink") or row.permalink,
        )
        count(row, bot_user_id)


def set_fields(row: RoFile, **fields: object) -> None:
    RoFile.update(**fields).where(RoFile.id == row.id).execute()
    for key, value in fields.items():
        setattr(row, key, value)
