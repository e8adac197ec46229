"""Who takes part in an RO: the Participant table, kept true with the RO's channel. No Slack here.

Membership facts arrive out of order (Slack does not promise event order, and a retried
delivery can come minutes late), so each row remembers the Slack time (`event_ts`) of the fact
it shows, and a fact older than that changes nothing: a `member_joined_channel` for our own
invite that arrives after the person's `member_left_channel` does not bring them back.
Facts we make ourselves (an invite, a removal) are dated now.

The owner (the RO's DMS advisor) is never removed here: the DMS decides who the advisor is.
people.participants_flow does the Slack side (invites, removals, who someone is).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from peewee import IntegrityError

from storage.db import database
from storage.models import Participant, RepairOrder, utcnow
from storage.search_index import copy_activity

# Why someone could not be added or removed (i18n: people.reason.<code>).
DEACTIVATED, BOT, NOT_FOUND, REFUSED, UNAVAILABLE, NO_CHANNEL = (
    "deactivated",
    "bot",
    "not_found",
    "refused",
    "unavailable",
    "no_channel",
)


@dataclass(frozen=True)
class Person:
    user_id: str
    known: bool = True
    deleted: bool = False
    is_bot: bool = False

    @property
    def refusal(self) -> str | None:
        """Why this person cannot take part, or None."""
        if not self.known:
            return NOT_FOUND
        if self.deleted:
            return DEACTIVATED
        if self.is_bot:
            return BOT
        return None


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (user id, reason)
    kept_owner: str | None = None  # the owner was unticked and stays

    @property
    def nothing(self) -> bool:
        return not (self.added or self.removed or self.refused or self.kept_owner)


def event_micros(event_ts: object) -> int:
    """Slack's "1700000000.000100" as whole microseconds (exact: no float rounding); now when absent."""
    try:
        return int(Decimal(str(event_ts)) * 1_000_000)
    except (InvalidOperation, ValueError, TypeError):
        return now_micros()


def now_micros() -> int:
    return time.time_ns() // 1000


def active_participants(ro_id: int) -> list[str]:
    rows = (
        Participant.select(Participant.user_id)
        .where((Participant.ro == ro_id) & (Participant.active == True))
        .order_by(Participant.added_at, Participant.id)
    )
    return [row.user_id for row in rows]


def _newer(at_us: int):
    """Rows whose membership fact is older than `at_us` (or undated): a fact at `at_us` may change them."""
    return Participant.membership_us.is_null() | (Participant.membership_us < at_us)


def record_joined(ro: RepairOrder, user_id: str, added_by: str | None = None, at_us: int | None = None) -> bool:
    """The user is in the RO's channel as of `at_us` (Slack's event time; now by default); True
    when that is news. The owner keeps role "owner"."""
    at_us = now_micros() if at_us is None else at_us
    news = bool(
        Participant.update(active=True, removed_at=None, added_at=utcnow(), added_by=added_by, membership_us=at_us)
        .where((Participant.ro == ro.id) & (Participant.user_id == user_id) & (Participant.active == False) & _newer(at_us))
        .execute()
    )
    if not news:
        # Already active: only the fact's time moves forward.
        Participant.update(membership_us=at_us).where(
            (Participant.ro == ro.id) & (Participant.user_id == user_id) & (Participant.active == True) & _newer(at_us)
        ).execute()
        if not Participant.select().where((Participant.ro == ro.id) & (Participant.user_id == user_id)).exists():
            role = "owner" if user_id == ro.owner_user_id else "participant"
            try:
                with database.atomic():
                    Participant.create(
                        ro=ro.id, user_id=user_id, role=role, added_by=added_by, added_at=utcnow(), membership_us=at_us
                    )
                news = True
            except IntegrityError:  # another thread recorded it first
                pass
    copy_activity([ro.id], user_id)  # "mine" lists it by the RO's activity (also a row the publisher wrote)
    return news


def record_left(ro: RepairOrder, user_id: str, at_us: int | None = None) -> bool:
    """The user is out of the RO's channel as of `at_us`; True when that is news. The row stays
    (history), dated, so an older "joined" arriving late cannot undo it."""
    at_us = now_micros() if at_us is None else at_us
    news = bool(
        Participant.update(active=False, removed_at=utcnow(), membership_us=at_us)
        .where((Participant.ro == ro.id) & (Participant.user_id == user_id) & (Participant.active == True) & _newer(at_us))
        .execute()
    )
    if not news:
        Participant.update(membership_us=at_us).where(
            (Participant.ro == ro.id) & (Participant.user_id == user_id) & (Participant.active == False) & _newer(at_us)
        ).execute()
        if not Participant.select().where((Participant.ro == ro.id) & (Participant.user_id == user_id)).exists():
            # Left before we heard they joined: remember when, so that late "joined" stays ignored.
            Participant.insert(
                ro=ro.id, user_id=user_id, role="participant", active=False, removed_at=utcnow(), membership_us=at_us
            ).on_conflict_ignore().execute()
    return news


def update_plan(
    wanted: set[str], shown: set[str] | None, current: set[str], owner: str | None
) -> tuple[list[str], list[str], str | None]:
    """The Participants modal's Update: (to invite, to remove, owner kept). `shown` is who the modal
    listed when it opened (None: not known, the participants of now), `wanted` who was ticked.
    Only the difference is applied: whoever joined or left meanwhile and was left alone in the
    modal stays as they are now."""
    shown = current if shown is None else shown
    invite = sorted(u for u in wanted - shown if u not in current)
    remove = sorted((shown - wanted) & current)
    kept = owner if owner in remove else None
    return invite, [u for u in remove if u != owner], kept
