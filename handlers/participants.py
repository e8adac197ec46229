"""Participants: the card's Participants button and `/ro participants` (modal, Update), channel
membership events, and "Request an invitation" (email + DM to the admins).

Also the Slack side of people.participants.Workspace, used by mentions too.
"""
from __future__ import annotations

import logging

from slack_bolt import App

from core.i18n import t
from core.services import Services
from customers.mailer import MailError, send_mail
from handlers.commands import CommandContext, CommandRouter
from handlers.views import participants as views
from handlers.views.ro_card import PARTICIPANTS_ACTION
from handlers.middleware import repair_order_from
from people import invitations
from people.participants import (
    BOT,
    DEACTIVATED,
    NOT_FOUND,
    REFUSED,
    UNAVAILABLE,
    Person,
    Refused,
    active_participants,
    record_joined,
    record_left,
    set_participants,
)
from slackapi.directory import PROFILE_TTL
from slackapi.errors import SlackError, SlackErrorCode
from storage.models import RepairOrder, StaffUser, utcnow

log = logging.getLogger(__name__)

_REASONS = {
    SlackErrorCode.USER_NOT_FOUND: NOT_FOUND, SlackErrorCode.USERS_NOT_FOUND: NOT_FOUND,
    SlackErrorCode.USER_IS_BOT: BOT, SlackErrorCode.USER_IS_DEACTIVATED: DEACTIVATED,
}
# Slack could not answer (as opposed to answering no): worth trying again later.
_UNAVAILABLE = {"ratelimited", "other", "internal_error", "service_unavailable", "fatal_error", "request_timeout"}


def failure_reason(exc: SlackError) -> str:
    if exc.raw_code in _UNAVAILABLE or exc.raw_code.startswith("http_"):
        return UNAVAILABLE
    return _REASONS.get(exc.code, REFUSED)  # cant_invite, restricted_action, …: Slack said no


class SlackWorkspace:
    """people.participants.Workspace on Slack: users.info (cached), conversations.invite/kick, usergroups."""

    def __init__(self, services: Services):
        self.slack = services.slack
        self.directory = services.directory

    def person(self, user_id: str) -> Person:
        """From the directory's fresh profile, else from users.info now, so the reason given is
        the true one: Slack does not know them, or did not answer (Refused UNAVAILABLE), or a
        bot / deactivated account (known from users.info even when it carries no locale)."""
        cached = StaffUser.get_or_none(StaffUser.slack_user_id == user_id)
        if cached is not None and cached.profile_fetched_at and utcnow() - cached.profile_fetched_at < PROFILE_TTL:
            return _person(cached)
        try:
            profile = self.slack.user_info(user_id)
        except SlackError as exc:
            reason = failure_reason(exc)
            if reason == NOT_FOUND:
                return Person(user_id, known=False)
            if cached is not None and cached.profile_fetched_at:
                return _person(cached)  # known before; a stale profile beats no answer
            raise Refused(user_id, reason, exc.raw_code) from None
        return _person(self.directory.remember(profile))

    def invite(self, channel_id: str, user_id: str) -> None:
        try:
            self.slack.invite(channel_id, [user_id])
        except SlackError as exc:
            if exc.code is not SlackErrorCode.ALREADY_IN_CHANNEL:
                raise Refused(user_id, failure_reason(exc), exc.raw_code) from None

    def remove(self, channel_id: str, user_id: str) -> None:
        try:
            self.slack.kick(channel_id, user_id)
        except SlackError as exc:
            if exc.code is not SlackErrorCode.NOT_IN_CHANNEL:
                raise Refused(user_id, failure_reason(exc), exc.raw_code) from None

    def group_members(self, group_id: str) -> list[str]:
        try:
            return self.slack.usergroup_members(group_id)
        except SlackError as exc:
            raise Refused(group_id, failure_reason(exc), exc.raw_code) from None


def _person(user: StaffUser) -> Person:
    return Person(user.slack_user_id, deleted=bool(user.deleted), is_bot=bool(user.is_bot))


def tell(services: Services, user_id: str, channel_id: str | None, text: str, thread_ts: str | None = None) -> None:
    """A note only `user_id` sees: ephemeral in the channel, else (not a member, no channel) a DM."""
    if channel_id:
        try:
            extra = {"thread_ts": thread_ts} if thread_ts else {}
            services.slack.call("chat.postEphemeral", channel=channel_id, user=user_id, text=text, **extra)
            return
        except SlackError as exc:
            log.info("ephemeral note failed (%s); sending it as a DM", exc.raw_code)
    try:
        services.slack.post(user_id, text)
    except SlackError as exc:
        log.warning("could not tell %s: %s", user_id, exc.raw_code)


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


def send_invitation_request(services: Services, form: invitations.InvitationForm, requester: str,
                            ro: RepairOrder | None) -> str:
    """Save the request, email and DM the admins (people.invitations); returns the note for the
    requester (in their language)."""
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
            services.slack.post(admin_id, views.invitation_for_admin(form, requester, ro, url, services.directory.locale(admin_id)))
        except SlackError as exc:
            raise invitations.NotDelivered(exc.raw_code) from None

    def failed(channel: str, admin_id: str, code: str) -> None:
        log.warning("invitation request: %s to admin %s failed: %s", channel, admin_id, code)

    outcome = invitations.request_invitation(form, requester, ro.id if ro else None, admins,
                                             email=email if settings.email_enabled else None, message=message,
                                             on_failure=failed)
    return t(f"people.invite.{outcome.note}", services.directory.locale(requester), name=views.escape(form.name),
             count=outcome.admins)


def register(app: App, services: Services, router: CommandRouter) -> None:
    workspace = SlackWorkspace(services)

    def open_modal(trigger_id: str, ro: RepairOrder, user_id: str) -> None:
        locale = services.directory.locale(user_id)
        bot = services.slack.bot_user_id
        users = [u for u in active_participants(ro.id) if u != bot]
        services.slack.open_view(trigger_id, views.participants_modal(ro, users, locale))

    def participants_command(ctx: CommandContext) -> None:
        if not ctx.trigger_id:
            ctx.say("error.generic")
            return
        open_modal(ctx.trigger_id, ctx.ro, ctx.user_id)

    router.add("participants", participants_command, needs_ro=True)

    @app.action(PARTICIPANTS_ACTION)
    def participants_button(ack, body, action, respond):
        ack()
        user_id = body["user"]["id"]
        ro = repair_order_from(action.get("value"))
        if ro is None:
            respond(text=t("ro.not_found", services.directory.locale(user_id)), response_type="ephemeral", replace_original=False)
            return
        open_modal(body["trigger_id"], ro, user_id)

    @app.view(views.UPDATE_CALLBACK)
    def update_participants(ack, body, view, context):
        user_id = body["user"]["id"]
        ro = context.get("ro")
        if ro is None:
            ack(response_action="errors", errors={views.USERS_BLOCK: t("ro.not_found", services.directory.locale(user_id))})
            return
        ack()  # close the modal now; inviting may take longer than Slack waits
        selected = ((view["state"]["values"].get(views.USERS_BLOCK) or {}).get(views.USERS_ACTION) or {}).get("selected_users") or []
        wanted = {u for u in selected if u != services.slack.bot_user_id}
        changes = set_participants(ro, wanted, user_id, workspace, shown=views.shown_participants(view.get("private_metadata")))
        tell(services, user_id, ro.channel_id, views.changes_text(ro, changes, services.directory.locale(user_id)))

    @app.action(views.REQUEST_ACTION)
    def request_invitation(ack, body, action):
        ack()
        locale = services.directory.locale(body["user"]["id"])
        services.slack.push_view(body["trigger_id"], views.invitation_modal(repair_order_from(action.get("value")), locale))

    @app.view(views.INVITE_CALLBACK)
    def invitation_submitted(ack, body, view, context):
        user_id = body["user"]["id"]
        form = views.read_invitation(view["state"]["values"])
        problems = invitations.validate(form)
        if problems:
            ack(response_action="errors", errors=views.invitation_errors(problems, services.directory.locale(user_id)))
            return
        ack()  # back to the Participants modal; mail and DMs go out after
        ro = context.get("ro")
        note = send_invitation_request(services, form, user_id, ro)
        tell(services, user_id, ro.channel_id if ro else None, note)

    @app.event("member_joined_channel")
    def member_joined(event, context):
        ro, user_id = context.get("ro"), event.get("user")
        if ro is not None and user_id and user_id != services.slack.bot_user_id:
            record_joined(ro, user_id, added_by=event.get("inviter"))

    @app.event("member_left_channel")
    def member_left(event, context):
        ro, user_id = context.get("ro"), event.get("user")
        if ro is not None and user_id and user_id != services.slack.bot_user_id:
            record_left(ro, user_id)
