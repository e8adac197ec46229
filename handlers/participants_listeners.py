"""Participants listeners: the card's Participants button and `/ro participants` (modal, Update),
channel membership events, and "Request an invitation"."""

from __future__ import annotations

import logging

from slack_bolt import App

from blocks import ids
from blocks import participants_view as views
from handlers.command_router import CommandContext, CommandRouter
from people import participants_flow
from people.invitation_rules import InvitationForm, validate
from slackapi.errors import SlackError
from slackapi.services import Services

log = logging.getLogger(__name__)


def read_invitation(values: dict) -> InvitationForm:
    """The form's fields from a view_submission's state.values."""

    def value(block: str) -> str:
        state = (values.get(block) or {}).get(views.INPUT_ACTION) or {}
        if not isinstance(state, dict):
            return ""
        chosen = state.get("selected_option") if isinstance(state.get("selected_option"), dict) else {}
        return str(state.get("value") or chosen.get("value") or "")

    # One line for the name: it goes into an email subject, where a line break would be a new header.
    return InvitationForm(
        name=" ".join(value(views.NAME_BLOCK).split()),
        email=value(views.EMAIL_BLOCK).strip(),
        role=value(views.ROLE_BLOCK),
        note=value(views.NOTE_BLOCK),
    )


def register(app: App, services: Services, router: CommandRouter) -> None:
    def open_modal(trigger_id: str, ro, user_id: str) -> None:
        try:
            participants_flow.open_modal(services, trigger_id, ro, user_id, services.directory.locale(user_id))
        except SlackError as exc:  # an expired trigger: the person just presses again
            log.info("could not open the Participants modal: %s", exc.raw_code)

    def participants_command(ctx: CommandContext) -> None:
        if not ctx.trigger_id:
            ctx.say("error.generic")
            return
        open_modal(ctx.trigger_id, ctx.ro, ctx.user_id)

    router.add("participants", participants_command, needs_ro=True)

    @app.action(ids.PARTICIPANTS_OPEN)
    def participants_button(ack, body, context):
        ack()
        open_modal(body["trigger_id"], context["ro"], body["user"]["id"])

    @app.view(ids.PARTICIPANTS_MODAL)
    def update_participants(ack, body, view, context):
        values = ((view.get("state") or {}).get("values") or {}).get(views.USERS_BLOCK) or {}
        selected = (values.get(ids.PARTICIPANTS_USERS) or {}).get("selected_users") or []
        selected = [u for u in selected if isinstance(u, str)]
        key = f"participants:{view['id']}:{view.get('hash')}" if view.get("id") else None
        participants_flow.update_from_modal(
            services, context["ro"], selected, body["user"]["id"], context["state"].shown, key=key
        )
        ack()  # the modal closes once the Update is queued

    @app.action(ids.PARTICIPANTS_REQUEST_INVITE)
    def request_invitation(ack, body, context):
        ack()
        locale = services.directory.locale(body["user"]["id"])
        try:
            services.slack.push_view(body["trigger_id"], views.invitation_modal(context.get("ro"), locale))
        except SlackError as exc:
            log.info("could not open the invitation form: %s", exc.raw_code)

    @app.view(ids.PARTICIPANTS_INVITE_MODAL)
    def invitation_submitted(ack, body, view, context):
        user_id = body["user"]["id"]
        form = read_invitation((view.get("state") or {}).get("values") or {})
        problems = validate(form)
        if problems:
            ack(response_action="errors", errors=views.invitation_errors(problems, services.directory.locale(user_id)))
            return
        key = f"invitation:{view['id']}:{view.get('hash')}" if view.get("id") else None
        participants_flow.request_invitation(services, form, user_id, context.get("ro"), key=key)
        ack()  # back to the Participants modal once the request is queued

    @app.event("member_joined_channel")
    def member_joined(event, context):
        ro, user_id = context.get("ro"), event.get("user")
        if ro is not None and isinstance(user_id, str):
            participants_flow.member_joined(services, ro, user_id, event.get("inviter"), event.get("event_ts"))

    @app.event("member_left_channel")
    def member_left(event, context):
        ro, user_id = context.get("ro"), event.get("user")
        if ro is not None and isinstance(user_id, str):
            participants_flow.member_left(services, ro, user_id, event.get("event_ts"))
