"""People on an RO, the Slack side: @mentions that add people, the Participants modal's Update,
membership events, and "Request an invitation" (email + DM to the admins).

Whoever cannot be added (deactivated, a bot, unknown to Slack, refused by Slack) is reported
back with the reason and nothing is recorded for them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict

from blocks import participants_view as views
from blocks.kit import escape
from core.i18n import t
from customers.mail_gateway import MailError, send_mail
from people import invitation_rules as invitations
from people.mention_rules import new_mentions
from people.participant_rules import (
    BOT,
    DEACTIVATED,
    NO_CHANNEL,
    NOT_FOUND,
    REFUSED,
    UNAVAILABLE,
    Changes,
    Person,
    active_participants,
    event_micros,
    record_joined,
    record_left,
    update_plan,
)
from slackapi.directory import PROFILE_TTL
from slackapi.errors import SlackError, SlackErrorCode
from slackapi.service import INVITE_BATCH
from slackapi.services import Services
from storage.models import RepairOrder, StaffUser, utcnow
from taskqueue.queue import task

log = logging.getLogger(__name__)

_REASONS = {
    SlackErrorCode.USER_NOT_FOUND: NOT_FOUND,
    SlackErrorCode.USERS_NOT_FOUND: NOT_FOUND,
    SlackErrorCode.USER_IS_BOT: BOT,
    SlackErrorCode.USER_IS_DEACTIVATED: DEACTIVATED,
}
# Slack could not answer (as opposed to answering no): worth trying again later.
_UNAVAILABLE = {"ratelimited", "other", "internal_error", "service_unavailable", "fatal_error", "request_timeout"}


class Refused(Exception):
    """Slack would not do it; `reason` is one of people.participant_rules' codes."""

    def __init__(self, who: str, reason: str, detail: str = ""):
        super().__init__(f"{who}: {reason} {detail}".strip())
        self.who, self.reason, self.detail = who, reason, detail


def failure_reason(exc: SlackError) -> str:
    if exc.raw_code in _UNAVAILABLE or exc.raw_code.startswith("http_"):
        return UNAVAILABLE
    return _REASONS.get(exc.code, REFUSED)  # cant_invite, restricted_action, …: Slack said no


# -- who someone is, and the channel ------------------------------------------------------------


def person(services: Services, user_id: str) -> Person:
    """From the directory's fresh profile, else from users.info now, so the reason given is the
    true one: Slack does not know them, or did not answer (Refused UNAVAILABLE), or a bot /
    deactivated account (known from users.info even when it carries no locale)."""
    cached = StaffUser.get_or_none(StaffUser.slack_user_id == user_id)
    if cached is not None and cached.profile_fetched_at and utcnow() - cached.profile_fetched_at < PROFILE_TTL:
        return _person(cached)
    try:
        profile = services.slack.user_info(user_id)
    except SlackError as exc:
        reason = failure_reason(exc)
        if reason == NOT_FOUND:
            return Person(user_id, known=False)
        if cached is not None and cached.profile_fetched_at:
            return _person(cached)  # known before; a stale profile beats no answer
        raise Refused(user_id, reason, exc.raw_code) from None
    return _person(services.directory.remember(profile))


def _person(user: StaffUser) -> Person:
    return Person(user.slack_user_id, deleted=bool(user.deleted), is_bot=bool(user.is_bot))


def _invite(services: Services, channel_id: str, user_id: str) -> bool:
    """True when Slack added them now, False when they were in the channel already. Raises Refused."""
    try:
        services.slack.invite(channel_id, [user_id])
        return True
    except SlackError as exc:
        if exc.code is SlackErrorCode.ALREADY_IN_CHANNEL:
            return False
        raise Refused(user_id, failure_reason(exc), exc.raw_code) from None


def _remove(services: Services, channel_id: str, user_id: str) -> None:
    try:
        services.slack.kick(channel_id, user_id)
    except SlackError as exc:
        if exc.code is not SlackErrorCode.NOT_IN_CHANNEL:
            raise Refused(user_id, failure_reason(exc), exc.raw_code) from None


def expand_groups(services: Services, group_ids: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(members of all the groups, [(group id, reason)] for groups that could not be read)."""
    members: list[str] = []
    refused: list[tuple[str, str]] = []
    for group_id in dict.fromkeys(group_ids):
        try:
            members.extend(services.slack.usergroup_members(group_id))
        except SlackError as exc:
            refused.append((group_id, failure_reason(exc)))
    return list(dict.fromkeys(members)), refused


def add_people(services: Services, ro: RepairOrder, user_ids: list[str], by: str | None) -> Changes:
    """Invite and record each user. Someone the table calls active is invited too: the table may be
    behind Slack (a leave we have not heard of yet), and Slack answers "already in channel" if not."""
    changes = Changes()
    current = set(active_participants(ro.id))
    for user_id in dict.fromkeys(user_ids):
        believed_present = user_id in current
        reason, invited = _add_one(services, ro, user_id, by, believed_present)
        if reason:
            changes.refused.append((user_id, reason))
        elif invited or not believed_present:
            changes.added.append(user_id)
    return changes


def _add_one(
    services: Services, ro: RepairOrder, user_id: str, by: str | None, believed_present: bool
) -> tuple[str | None, bool]:
    """(None, invited now?) when they are in the channel, else (the reason they are not, False)."""
    if not ro.channel_id:
        return NO_CHANNEL, False
    try:
        if not believed_present:
            refusal = person(services, user_id).refusal
            if refusal:
                return refusal, False
        invited = _invite(services, ro.channel_id, user_id)
    except Refused as exc:
        return exc.reason, False
    if invited or not believed_present:
        record_joined(ro, user_id, added_by=by)
    return None, invited


def set_participants(services: Services, ro: RepairOrder, wanted: set[str], by: str, shown: tuple[str, ...] | None) -> Changes:
    """Apply the Participants modal's Update (people.participant_rules.update_plan)."""
    invite, remove, kept = update_plan(
        wanted, set(shown) if shown is not None else None, set(active_participants(ro.id)), ro.owner_user_id
    )
    changes = add_people(services, ro, invite, by)
    changes.kept_owner = kept
    for user_id in remove:
        if not ro.channel_id:
            changes.refused.append((user_id, NO_CHANNEL))
            continue
        try:
            _remove(services, ro.channel_id, user_id)
        except Refused as exc:
            changes.refused.append((user_id, exc.reason))
            continue
        record_left(ro, user_id)
        changes.removed.append(user_id)
    return changes


def update_from_modal(
    services: Services, ro: RepairOrder, selected: list[str], by: str, shown: tuple[str, ...] | None, *, key: str | None = None
) -> None:
    """Queue the modal's Update: inviting and removing people takes more Slack calls than its
    3 seconds allow, and a click answered must not be lost. `key`: the submission (a retried
    request is the same Update)."""
    services.tasks.enqueue(
        "participants.update",
        ro.id,
        sorted(set(selected)),
        by,
        list(shown) if shown is not None else None,
        key=key,
        lane=f"participants:{ro.id}",
    )


@task("participants.update", max_attempts=4)
def _update_participants(services: Services, ro_id: int, selected: list[str], by: str, shown: list[str] | None) -> None:
    """The Update, then a note to whoever pressed it saying what changed (a retry finds what is
    already done and changes only the rest)."""
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is None:
        return
    wanted = {u for u in selected if u != services.slack.bot_user_id}
    changes = set_participants(services, ro, wanted, by, tuple(shown) if shown is not None else None)
    services.slack.tell(by, ro.channel_id, views.changes_text(ro, changes, services.directory.locale(by)))


def open_modal(services: Services, trigger_id: str, ro: RepairOrder, user_id: str, locale: str) -> None:
    bot = services.slack.bot_user_id
    users = [u for u in active_participants(ro.id) if u != bot]
    services.slack.open_view(trigger_id, views.participants_modal(ro, users, locale))


# -- messages and membership events -------------------------------------------------------------


def on_message(services: Services, event: dict, ro: RepairOrder | None) -> None:
    """A written message (or an edit) in an RO channel: everyone it newly mentions takes part.
    People mentioned by name are added now; user groups (hundreds of people, many Slack calls)
    are a task (participants.groups)."""
    if ro is None:
        return
    found = new_mentions(event)
    if found is None or not (found.users or found.groups):
        return
    bot = services.slack.bot_user_id
    author = found.author(bot)
    if author is None:
        return
    if found.groups:
        groups = list(dict.fromkeys(found.groups))
        # One task per message and groups: Slack's retry of the event, or a worker's, adds no second one.
        digest = hashlib.sha256(",".join(sorted(groups)).encode()).hexdigest()[:16]
        services.tasks.enqueue(
            "participants.groups",
            ro.id,
            groups,
            author,
            found.thread_ts,
            key=f"mention-groups:{ro.id}:{found.message.get('ts')}:{digest}",
            lane=f"participants:{ro.id}",
        )
    people = [u for u in found.users if u != bot]
    if not people:
        return
    changes = add_people(services, ro, people, author)
    lines = views.refusal_lines(changes.refused, services.directory.locale(author))
    if lines:
        services.slack.tell(author, ro.channel_id, "\n".join(lines), found.thread_ts)


@task("participants.groups", max_attempts=5)
def _add_groups(services: Services, ro_id: int, group_ids: list[str], author: str, thread_ts: str | None) -> None:
    """Invite the members of mentioned user groups, INVITE_BATCH a call, and record them; then a
    note to the author about whoever could not be added. Resumable: members recorded as
    participants by an interrupted run are not invited again, and a batch Slack carried out
    before the crash answers "already in channel" for each, which records them."""
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is None:
        return
    members, unreadable = expand_groups(services, group_ids)
    refused: list[tuple[str, str]] = []
    if ro.channel_id:
        refused = _invite_members(services, ro, members, author)
    else:
        refused = [(u, NO_CHANNEL) for u in members]
    locale = services.directory.locale(author)
    lines = views.refusal_lines(refused, locale) + views.refusal_lines(unreadable, locale, group=True)
    if lines:
        services.slack.tell(author, ro.channel_id, "\n".join(lines), thread_ts)


def _invite_members(services: Services, ro: RepairOrder, members: list[str], author: str) -> list[tuple[str, str]]:
    """Invite and record group members not in the RO yet; [(user, reason)] for those refused."""
    bot = services.slack.bot_user_id
    present = set(active_participants(ro.id))
    todo = [u for u in dict.fromkeys(members) if u != bot and u not in present]
    refused = [(u, reason) for u, reason in _known_refusals(todo).items()]
    todo = [u for u in todo if u not in dict(refused)]
    for start in range(0, len(todo), INVITE_BATCH):
        batch = todo[start : start + INVITE_BATCH]
        try:
            errors = services.slack.invite_many(ro.channel_id, batch)
        except SlackError as exc:
            reason = failure_reason(exc)
            if reason == UNAVAILABLE:
                raise  # Slack did not answer: the task tries again, from what is recorded
            refused.extend((u, reason) for u in todo[start:])
            break
        not_added = {}
        for error in errors:
            code = str(error.get("error") or "")
            if code != SlackErrorCode.ALREADY_IN_CHANNEL.value:
                not_added[str(error.get("user"))] = failure_reason(SlackError("conversations.invite", code))
        for user_id in batch:
            if user_id in not_added:
                refused.append((user_id, not_added[user_id]))
            else:
                record_joined(ro, user_id, added_by=author)
    return refused


def _known_refusals(user_ids: list[str]) -> dict[str, str]:
    """Bots and deactivated accounts the directory already knows (no Slack call per member)."""
    found: dict[str, str] = {}
    for start in range(0, len(user_ids), 500):
        rows = StaffUser.select(StaffUser.slack_user_id, StaffUser.deleted, StaffUser.is_bot).where(
            StaffUser.slack_user_id.in_(user_ids[start : start + 500])
            & ((StaffUser.deleted == True) | (StaffUser.is_bot == True))
        )
        for row in rows:
            found[row.slack_user_id] = DEACTIVATED if row.deleted else BOT
    return found


def member_joined(services: Services, ro: RepairOrder, user_id: str, inviter: str | None, event_ts: object) -> None:
    if user_id != services.slack.bot_user_id:
        record_joined(ro, user_id, added_by=inviter, at_us=event_micros(event_ts))


def member_left(services: Services, ro: RepairOrder, user_id: str, event_ts: object) -> None:
    if user_id != services.slack.bot_user_id:
        record_left(ro, user_id, at_us=event_micros(event_ts))


# -- invitation requests --------------------------------------------------------------------------


def invite_url(services: Services) -> str | None:
    """SLACK_INVITE_URL, else the workspace's own admin invite page (team.info)."""
    if services.settings.slack_invite_url:
        return services.settings.slack_invite_url
    try:
        domain = (services.slack.call("team.info").get("team") or {}).get("domain")
    except SlackError as exc:
        log.warning("team.info failed: %s", exc.raw_code)
        return None
    return f"https://{domain}.slack.com/admin/invites" if domain else None


def request_invitation(
    services: Services, form: invitations.InvitationForm, requester: str, ro: RepairOrder | None, *, key: str | None = None
) -> None:
    """Queue the request (mail and DMs take longer than Slack waits). `key`: the submission."""
    services.tasks.enqueue("invitations.request", asdict(form), requester, ro.id if ro else None, key=key)


@task("invitations.request", max_attempts=1)  # once: a retry would mail the admins twice
def _request_invitation(services: Services, form: dict, requester: str, ro_id: int | None) -> None:
    """Save the request, email and DM the admins (people.invitation_rules), then tell the requester."""
    form = invitations.InvitationForm(**form)
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id) if ro_id else None
    settings = services.settings
    admins = invitations.admin_ids(settings.admin_slack_user_ids)
    url = invite_url(services) if admins else None
    requester_profile = services.directory.get(requester)
    requester_name = requester_profile.real_name or requester_profile.name or requester

    def email(admin_id: str) -> bool:
        admin = services.directory.get(admin_id)
        if not admin.email:
            return False
        subject, body = views.invitation_email(form, requester_name, ro, url, admin.locale)
        try:
            send_mail(settings, admin.email, subject, body, from_name=settings.shop_name)
        except MailError as exc:
            raise invitations.NotDelivered(exc.code) from None
        return True

    def message(admin_id: str) -> None:
        try:
            services.slack.post(
                admin_id, views.invitation_for_admin(form, requester, ro, url, services.directory.locale(admin_id))
            )
        except SlackError as exc:
            raise invitations.NotDelivered(exc.raw_code) from None

    def failed(channel: str, admin_id: str, code: str) -> None:
        log.warning("invitation request: %s to admin %s failed: %s", channel, admin_id, code)

    outcome = invitations.request_invitation(
        form,
        requester,
        ro.id if ro else None,
        admins,
        email=email if settings.email_enabled else None,
        message=message,
        on_failure=failed,
    )
    note = t(f"people.invite.{outcome.note}", services.directory.locale(requester), name=escape(form.name), count=outcome.admins)
    services.slack.tell(requester, ro.channel_id if ro else None, note)
