"""The metrics' record of what happened in the RO spaces (storage.models.MetricEvent).

`record` is called where each event is already handled (a file recorded, a message seen, a send or
a reply gone out, a page opened, a customer's text matched to its RO); it writes at most one row
per (kind, ref), so a retried task or a redelivered event counts once. Nothing here talks to
Slack. `backfill` fills the record from what earlier versions kept, when upgrading.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from peewee import JOIN, fn

from storage.models import Activity, CustomerSend, CustomerSendFile, MetricEvent, RoFile, SmsMessage, to_utc_naive, utcnow

log = logging.getLogger(__name__)

PICTURE, VIDEO, MESSAGE, REPLY, SEND, VIEW, CUSTOMER_TEXT = (
    "picture",
    "video",
    "message",
    "reply",
    "send",
    "view",
    "customer_text",
)
KINDS = (PICTURE, VIDEO, MESSAGE, REPLY, SEND, VIEW, CUSTOMER_TEXT)


def record(
    kind: str,
    ref: str,
    *,
    at: datetime | None = None,
    user_id: str | None = None,
    ro_id: int | None = None,
    amount: int = 1,
) -> bool:
    """Write the event once; True if this call wrote it. `at` is when it happened (default now)."""
    if kind not in KINDS:
        raise ValueError(f"unknown metric event kind {kind!r}")
    written = (
        MetricEvent.insert(
            kind=kind,
            ref=str(ref)[: MetricEvent.ref.max_length],
            at=to_utc_naive(at) if at is not None else utcnow(),
            user_id=user_id,
            ro=ro_id,
            amount=amount,
        )
        .on_conflict_ignore()
        .execute()
    )
    return bool(written)


def reassign(kind: str, ref: str, ro_id: int) -> None:
    """The event belongs to another RO now (an admin attached a text that was waiting to another one)."""
    MetricEvent.update(ro=ro_id).where((MetricEvent.kind == kind) & (MetricEvent.ref == str(ref))).execute()


def slack_time(ts: str | None) -> datetime | None:
    """A Slack message ts ("1790000000.000100") as the naive UTC time it names; None when it is not one."""
    try:
        return datetime.fromtimestamp(float(ts or ""), UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return None


def message_ref(ro_id: int, ts: str) -> str:
    return f"{ro_id}:{ts}"


def file_ref(ro_id: int, slack_file_id: str) -> str:
    return f"{ro_id}:{slack_file_id}"


def backfill() -> int:
    """Events for what the database already holds (an upgrade from before metrics): staff pictures
    and videos, messages, sends and replies that went out, customers' texts in an RO. Page views
    were never kept: they start at the upgrade. Returns how many rows were written."""
    before = MetricEvent.select().count()
    files = RoFile.select(
        RoFile.id, RoFile.kind, RoFile.slack_file_id, RoFile.uploader_user_id, RoFile.ro, RoFile.shared_at
    ).where((RoFile.origin == "staff") & RoFile.kind.in_((PICTURE, VIDEO)))
    for f in files.iterator():
        record(f.kind, file_ref(f.ro_id, f.slack_file_id), at=f.shared_at, user_id=f.uploader_user_id, ro_id=f.ro_id)
    messages = Activity.select().where(Activity.kind == "message")
    for a in messages.iterator():
        record(MESSAGE, message_ref(a.ro_id, a.ts), at=slack_time(a.ts) or a.at, user_id=a.user_id, ro_id=a.ro_id)
    sends = (
        CustomerSend.select(CustomerSend, fn.COUNT(CustomerSendFile.id).alias("files"))
        .join(CustomerSendFile, JOIN.LEFT_OUTER)
        .where(CustomerSend.status.in_(("sent", "delivered")))
        .group_by(CustomerSend.id)
    )
    for s in sends.iterator():
        record(SEND, str(s.id), at=s.status_at or s.created_at, user_id=s.sent_by, ro_id=s.ro_id, amount=s.files)
    texts = SmsMessage.select().where(SmsMessage.ro.is_null(False))
    for m in texts.iterator():
        if m.direction == "in":
            record(CUSTOMER_TEXT, str(m.id), at=m.created_at, ro_id=m.ro_id)
        elif m.status in ("sent", "delivered"):
            record(REPLY, str(m.id), at=m.created_at, user_id=m.author_user_id, ro_id=m.ro_id)
    written = MetricEvent.select().count() - before
    log.info("metrics: %d events recorded from earlier data", written)
    return written
