"""Who takes part in an RO: the Participant table kept true with the RO's channel.

Adding someone means inviting them to the channel and recording them; a person the workspace
will not take (deactivated, a bot, unknown, or refused) is reported back and nothing is
recorded. The owner (the RO's DMS advisor) is never removed here: the DMS decides who the
advisor is, and the channel publisher would invite them back anyway.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

from peewee import IntegrityError

from storage.db import database
from storage.models import Participant, RepairOrder, utcnow
from storage.search import copy_activity

# Why someone could not be added or removed (i18n: people.reason.<code>).
DEACTIVATED, BOT, NOT_FOUND, REFUSED, UNAVAILABLE, NO_CHANNEL = (
    "deactivated", "bot", "not_found", "refused", "unavailable", "no_channel")


@dataclass(frozen=True)
class Person:
    user_id: str
    known: bool = True
    deleted: bool = False
    is_bot: bool = False


class Refused(Exception):
    """The workspace would not do it; `reason` is one of the codes above, `detail` the raw answer."""

    def __init__(self, user_id: str, reason: str, detail: str = ""):
        super().__init__(f"{user_id}: {reason} {detail}".strip())
        self.user_id = user_id
        self.reason = reason
        self.detail = detail


class Workspace(Protocol):
    """What participants need from the chat workspace (Slack adapter: handlers.participants)."""

    def person(self, user_id: str) -> Person:
        """Who this is. Raises Refused (UNAVAILABLE…) when the workspace cannot say right now."""

    def invite(self, channel_id: str, user_id: str) -> None:
        """Add to the channel; being a member already is success. Raises Refused."""

    def remove(self, channel_id: str, user_id: str) -> None:
        """Take out of the channel; not being a member is success. Raises Refused."""

    def group_members(self, group_id: str) -> list[str]:
        """Members of a user group. Raises Refused."""


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (user id, reason)
    kept_owner: str | None = None  # the owner was unticked and stays

    @property
    def nothing(self) -> bool:
        return not (self.added or self.removed or self.refused or self.kept_owner)


def active_participants(ro_id: int) -> list[str]:
    rows = (Participant.select(Participant.user_id)
            .where((Participant.ro == ro_id) & (Participant.active == True))  # noqa: E712
            .order_by(Participant.added_at, Participant.id))
    return [row.user_id for row in rows]


def record_joined(ro: RepairOrder, user_id: str, added_by: str | None = None) -> bool:
    """The user is in the RO's channel now; True when that is news. The owner keeps role "owner"."""
    now = utcnow()
    reactivated = (Participant.update(active=True, removed_at=None, added_at=now, added_by=added_by)
                   .where((Participant.ro == ro.id) & (Participant.user_id == user_id) & (Participant.active == False))  # noqa: E712
                   .execute())
    news = bool(reactivated)
    if not reactivated:
        role = "owner" if user_id == ro.owner_user_id else "participant"
        try:
            with database.atomic():
                Participant.create(ro=ro.id, user_id=user_id, role=role, added_by=added_by, added_at=now)
            news = True
        except IntegrityError:  # already there and active (or another thread recorded it first)
            pass
    copy_activity([ro.id], user_id)  # "mine" lists it by the RO's activity (also a row the publisher wrote)
    return news


def record_left(ro: RepairOrder, user_id: str) -> bool:
    """The user is out of the RO's channel; True when that is news. The row stays for history."""
    return bool(Participant.update(active=False, removed_at=utcnow())
                .where((Participant.ro == ro.id) & (Participant.user_id == user_id) & (Participant.active == True))  # noqa: E712
                .execute())


def expand_groups(group_ids: Iterable[str], workspace: Workspace) -> tuple[list[str], list[tuple[str, str]]]:
    """(members of all the groups, [(group id, reason)] for groups that could not be read)."""
    members: list[str] = []
    refused: list[tuple[str, str]] = []
    for group_id in dict.fromkeys(group_ids):
        try:
            members.extend(workspace.group_members(group_id))
        except Refused as exc:
            refused.append((group_id, exc.reason))
    return list(dict.fromkeys(members)), refused


def add_people(ro: RepairOrder, user_ids: Iterable[str], by: str | None, workspace: Workspace) -> Changes:
    """Invite and record each user not already an active participant."""
    changes = Changes()
    current = set(active_participants(ro.id))
    for user_id in dict.fromkeys(user_ids):
        if user_id in current:
            continue
        reason = _add_one(ro, user_id, by, workspace)
        if reason:
            changes.refused.append((user_id, reason))
        else:
            changes.added.append(user_id)
    return changes


def _add_one(ro: RepairOrder, user_id: str, by: str | None, workspace: Workspace) -> str | None:
    """None when added, else the reason."""
    if not ro.channel_id:
        return NO_CHANNEL
    try:
        person = workspace.person(user_id)
    except Refused as exc:
        return exc.reason
    if not person.known:
        return NOT_FOUND
    if person.deleted:
        return DEACTIVATED
    if person.is_bot:
        return BOT
    try:
        workspace.invite(ro.channel_id, user_id)
    except Refused as exc:
        return exc.reason
    record_joined(ro, user_id, added_by=by)
    return None


def set_participants(ro: RepairOrder, wanted: Iterable[str], by: str, workspace: Workspace,
                     shown: Iterable[str] | None = None) -> Changes:
    """Apply the Participants modal's Update: `shown` is who the modal listed when it opened,
    `wanted` who was ticked when Update was pressed. Only the difference is applied: invite the
    ticked who were not shown, remove the shown who were unticked, keep the owner. Whoever
    joined or left meanwhile (an @mention, leaving by hand) and was left alone in the modal
    stays as they are now. `shown` None = the current participants (the modal's list is not known)."""
    wanted = set(wanted)
    current = set(active_participants(ro.id))
    shown = current if shown is None else set(shown)
    changes = add_people(ro, [u for u in wanted - shown if u not in current], by, workspace)
    for user_id in sorted((shown - wanted) & current):
        if user_id == ro.owner_user_id:
            changes.kept_owner = user_id
            continue
        if not ro.channel_id:
            changes.refused.append((user_id, NO_CHANNEL))
            continue
        try:
            workspace.remove(ro.channel_id, user_id)
        except Refused as exc:
            changes.refused.append((user_id, exc.reason))
            continue
        record_left(ro, user_id)
        changes.removed.append(user_id)
    return changes
