"""Activity in RO channels and what each person has not seen yet.

Every human message (and, from the files feature, every file) in an RO channel is an Activity
row and moves the RO's last activity. A person has read an RO up to their ReadMark: their own
last post there, opening it from Home, or "Mark as read". Unread = others' activity after it.
Times are the server's receipt times, so marks and activity compare on one clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from peewee import JOIN, IntegrityError, fn

from storage import metric_events
from storage.db import database
from storage.models import Activity, ReadMark, utcnow
from storage.search_index import touch
from storage.values import CUSTOMER, MESSAGE


def record_activity(ro_id: int, user_id: str, kind: str, ts: str, at: datetime | None = None) -> bool:
    """Record a message/file by `user_id` in the RO; False when it was already recorded (a retry).

    The author has, by posting, read everything before: their mark moves too (a staff member's;
    the customer has no mark: what they send is new for everyone). A message is also the
    metrics' event, written with it, dated by its Slack ts (a redelivered event keeps its time).
    """
    at = at or utcnow()
    try:
        with database.atomic():
            Activity.create(ro=ro_id, user_id=user_id, kind=kind, ts=ts, at=at)
            if kind == MESSAGE:
                ref = metric_events.message_ref(ro_id, ts)
                metric_events.record(MESSAGE, ref, at=metric_events.slack_time(ts) or at, user_id=user_id, ro_id=ro_id)
    except IntegrityError:
        return False
    touch(ro_id, at)
    if user_id != CUSTOMER:
        mark_read(ro_id, user_id, at)
    return True


def mark_read(ro_id: int, user_id: str, at: datetime | None = None) -> None:
    """The user has seen the RO up to `at` (now); a mark never moves back."""
    at = at or utcnow()
    (
        ReadMark.insert(ro=ro_id, user_id=user_id, last_read_at=at)
        .on_conflict(
            conflict_target=[ReadMark.ro, ReadMark.user_id],
            update={ReadMark.last_read_at: at},
            where=(ReadMark.last_read_at < at),
        )
        .execute()
    )


def unread_counts(user_id: str, ro_ids: Iterable[int]) -> dict[int, int]:
    """{ro id: others' messages and files after the user's mark}, for a page of ROs, in one query."""
    ro_ids = list(ro_ids)
    if not ro_ids:
        return {}
    mark = ReadMark.alias()
    rows = (
        Activity.select(Activity.ro, fn.COUNT(Activity.id).alias("n"))
        .join(mark, JOIN.LEFT_OUTER, on=((mark.ro == Activity.ro) & (mark.user_id == user_id)))
        .where(Activity.ro.in_(ro_ids) & (Activity.user_id != user_id) & (mark.id.is_null() | (Activity.at > mark.last_read_at)))
        .group_by(Activity.ro)
        .tuples()
    )
    return {ro_id: count for ro_id, count in rows}
