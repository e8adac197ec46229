"""Notification digests: "new message / new file in my repair orders", as batched DMs.

A person who turned a setting on hears about others' activity in the ROs they own or take part
in, at most once per RO per interval: the first activity after a quiet spell goes out at the
next flush (every minute), what follows within the interval waits and goes out as one digest.
Never about their own posts, nor about what they have already read, nor about activity of a
kind from before they turned that kind on.

NotifyMark holds, per person and RO, the newest activity announced and when. A digest is
claimed before it is delivered: one conditional UPDATE that succeeds only while the mark is
still what the digest was computed from and the interval has passed, so two flushes running at
once (two scheduler processes, a slow minute) send it once, and a mark only ever moves forward.
A delivery that fails for a reason worth retrying (Slack down) gives the claim back, so the
next flush tries again; one that can never succeed (user deactivated) keeps it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import fn

from storage.models import (
    Activity,
    NotifyCursor,
    NotifyMark,
    Participant,
    ReadMark,
    RepairOrder,
    StaffUser,
    utcnow,
)
from storage.values import FILE, MESSAGE

# Older activity is not worth a DM any more (and bounds what each flush reads).
HORIZON = timedelta(hours=24)
# The sent_at of a mark claimed for the first time and given back: "never sent".
NEVER = datetime(2000, 1, 1)


@dataclass(frozen=True)
class Preferences:
    messages: bool
    files: bool
    customer: bool = False  # a DM at once for each customer text (not batched)


@dataclass(frozen=True)
class Digest:
    user_id: str
    ro_id: int
    messages: int
    files: int
    authors: tuple[str, ...]
    last_activity_id: int
    # The mark this digest was computed from: what the claim expects to find.
    previous_activity_id: int | None = None
    previous_sent_at: datetime | None = None


def preferences(user_id: str) -> Preferences:
    user = StaffUser.get_or_none(StaffUser.slack_user_id == user_id)
    return Preferences(
        bool(user and user.notify_messages), bool(user and user.notify_files), bool(user and user.notify_customer_messages)
    )


def set_preferences(user_id: str, *, messages: bool, files: bool, customer: bool = False) -> Preferences:
    """Save the settings. Turning a kind on starts it from now: nothing of that kind that happened
    before is announced (turning files on later does not announce old files)."""
    before = preferences(user_id)
    StaffUser.insert(slack_user_id=user_id).on_conflict_ignore().execute()  # Slack may not have answered yet
    StaffUser.update(notify_messages=messages, notify_files=files, notify_customer_messages=customer).where(
        StaffUser.slack_user_id == user_id
    ).execute()
    starts = {}
    if messages and not before.messages:
        starts[NotifyCursor.since_message_id] = None
    if files and not before.files:
        starts[NotifyCursor.since_file_id] = None
    if starts:
        since = Activity.select(fn.COALESCE(fn.MAX(Activity.id), 0)).scalar() or 0
        starts = {field: since for field in starts}
        (
            NotifyCursor.insert(user_id=user_id, **{field.name: value for field, value in starts.items()})
            .on_conflict(conflict_target=[NotifyCursor.user_id], update=starts)
            .execute()
        )
    return Preferences(messages, files, customer)


def pending(now: datetime | None = None, interval: timedelta = timedelta(minutes=5)) -> list[Digest]:
    """The digests due now: one per (person, RO) with unannounced activity whose last DM about
    that RO is at least `interval` old. Nothing is claimed here: `claim` does that."""
    now = now or utcnow()
    subscribers = {
        u.slack_user_id: u
        for u in StaffUser.select().where(
            (StaffUser.notify_messages | StaffUser.notify_files) & ~StaffUser.deleted & ~StaffUser.is_bot
        )
    }
    if not subscribers:
        return []
    ids = list(subscribers)
    since = {c.user_id: c for c in NotifyCursor.select().where(NotifyCursor.user_id.in_(ids))}
    horizon = now - HORIZON

    # (member, activity) pairs: participants, and owners (who may have no participant row).
    columns = (Activity.id, Activity.ro, Activity.user_id, Activity.kind, Activity.at)
    taking_part = (
        Activity.select(*columns, Participant.user_id.alias("member"))
        .join(Participant, on=((Participant.ro == Activity.ro) & (Participant.active == True)))
        .where((Activity.at >= horizon) & Participant.user_id.in_(ids) & (Participant.user_id != Activity.user_id))
        .tuples()
    )
    owning = (
        Activity.select(*columns, RepairOrder.owner_user_id.alias("member"))
        .join(RepairOrder, on=(RepairOrder.id == Activity.ro))
        .where((Activity.at >= horizon) & RepairOrder.owner_user_id.in_(ids) & (RepairOrder.owner_user_id != Activity.user_id))
        .tuples()
    )
    news: dict[tuple[str, int], dict[int, tuple[str, str, datetime]]] = defaultdict(dict)
    for activity_id, ro_id, author, kind, at, member in list(taking_part) + list(owning):
        user, cursor = subscribers[member], since.get(member)
        if kind == MESSAGE:
            wanted, start = user.notify_messages, cursor.since_message_id if cursor else 0
        elif kind == FILE:
            wanted, start = user.notify_files, cursor.since_file_id if cursor else 0
        else:
            continue  # a customer's text is announced at once, on its own (customers.conversation_flow)
        if wanted and activity_id > start:
            news[(member, ro_id)][activity_id] = (author, kind, at)
    if not news:
        return []

    ro_ids = {ro_id for _, ro_id in news}
    marks = {(m.user_id, m.ro_id): m for m in NotifyMark.select().where(NotifyMark.user_id.in_(ids) & NotifyMark.ro.in_(ro_ids))}
    reads = {
        (r.user_id, r.ro_id): r.last_read_at for r in ReadMark.select().where(ReadMark.user_id.in_(ids) & ReadMark.ro.in_(ro_ids))
    }
    digests = []
    for key, items in sorted(news.items()):
        mark, read_at = marks.get(key), reads.get(key)
        if mark and mark.sent_at > now - interval:
            continue  # batched: this RO was announced to them a moment ago
        fresh = {
            aid: item
            for aid, item in items.items()
            if (not mark or aid > mark.last_activity_id) and (read_at is None or item[2] > read_at)
        }
        if not fresh:
            continue
        kinds = [kind for _, kind, _ in fresh.values()]
        authors = tuple(dict.fromkeys(author for author, _, _ in sorted(fresh.values(), key=lambda i: i[2])))
        digests.append(
            Digest(
                user_id=key[0],
                ro_id=key[1],
                messages=kinds.count("message"),
                files=kinds.count("file"),
                authors=authors,
                last_activity_id=max(fresh),
                previous_activity_id=mark.last_activity_id if mark else None,
                previous_sent_at=mark.sent_at if mark else None,
            )
        )
    return digests


def _mark(digest: Digest):
    return (NotifyMark.user_id == digest.user_id) & (NotifyMark.ro == digest.ro_id)


def claim(digest: Digest, now: datetime, interval: timedelta) -> bool:
    """Take the right to deliver `digest`: True for exactly one caller while the mark is still
    what `pending` read and the interval has passed. The mark moves to the digest (forward only)."""
    if digest.previous_activity_id is None:
        NotifyMark.insert(
            user_id=digest.user_id, ro=digest.ro_id, last_activity_id=0, sent_at=NEVER
        ).on_conflict_ignore().execute()
    previous = digest.previous_activity_id or 0
    return bool(
        NotifyMark.update(last_activity_id=digest.last_activity_id, sent_at=now)
        .where(
            _mark(digest)
            & (NotifyMark.last_activity_id == previous)
            & (NotifyMark.last_activity_id < digest.last_activity_id)
            & (NotifyMark.sent_at <= now - interval)
        )
        .execute()
    )


def release(digest: Digest, now: datetime) -> None:
    """Give a claim back (delivery failed, worth retrying): the mark is as it was before, unless
    someone moved it since."""
    ours = _mark(digest) & (NotifyMark.last_activity_id == digest.last_activity_id) & (NotifyMark.sent_at == now)
    if digest.previous_activity_id is None:
        NotifyMark.delete().where(ours).execute()
    else:
        (NotifyMark.update(last_activity_id=digest.previous_activity_id, sent_at=digest.previous_sent_at).where(ours).execute())


def flush(deliver: Callable[[Digest], bool], *, interval: timedelta = timedelta(minutes=5), now: datetime | None = None) -> int:
    """Claim and send every due digest with `deliver` (True = done, including "can never be
    delivered"; False = give the claim back and try again at the next flush). Returns how many
    were done by this call."""
    now = now or utcnow()
    done = 0
    for digest in pending(now, interval):
        if not claim(digest, now, interval):
            continue  # another flush has it, or has already sent it
        if deliver(digest):
            done += 1
        else:
            release(digest, now)
    return done
