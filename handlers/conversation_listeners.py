"""The customer conversation's listeners: staff replies in the conversation thread (texted to the
customer), Retry under a failed reply, and the admins' unmatched texts on App Home (Attach, Dismiss,
paging). Parse, call customers.conversation_flow, render."""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_bolt import App

from blocks import conversation_view as views
from blocks import ids, kit
from blocks.codec import HomeState
from core.refusals import Refusal
from customers import conversation_flow
from customers.permission_rules import is_admin
from handlers.command_router import CommandRouter
from handlers.message_fanout import on_message
from people import home_flow
from slackapi.errors import SlackError
from slackapi.services import Services
from storage.models import SmsMessage

log = logging.getLogger(__name__)


def register(app: App, services: Services, router: CommandRouter) -> None:
    on_message(app, lambda event, ro: conversation_flow.on_message(services, event, ro))

    @app.action(ids.CONVERSATION_RETRY)
    def retry_pressed(ack, body, context, respond):
        user_id = body["user"]["id"]
        try:
            conversation_flow.retry(services, context["value"].sms, user_id)  # queued before Slack's answer
            ack()
        except Refusal as refused:
            ack()
            respond(
                text=kit.refusal_text(refused, services.directory.locale(user_id)),
                response_type="ephemeral",
                replace_original=False,
            )

    def home_state(context) -> HomeState:
        return context.get("state") or HomeState()

    @app.action(ids.CONVERSATION_ATTACH)
    def attach_pressed(ack, body, context):
        ack()
        user_id = body["user"]["id"]
        message = SmsMessage.get_or_none(SmsMessage.id == context["value"].sms)
        if message is None or not is_admin(user_id, services.settings):
            home_flow.publish_home(services, user_id, home_state(context))
            return
        try:
            services.slack.open_view(body["trigger_id"], views.attach_modal(message, services.directory.locale(user_id)))
        except SlackError as exc:  # an expired trigger: the admin presses again
            log.info("could not open the attach form: %s", exc.raw_code)

    @app.action(ids.CONVERSATION_DISMISS)
    def dismiss_pressed(ack, body, context):
        user_id = body["user"]["id"]
        try:
            conversation_flow.dismiss(services, context["value"].sms, user_id)
        except Refusal as refused:
            log.info("dismiss refused: %s", refused.reason)
        ack()
        home_flow.publish_home(services, user_id, home_state(context))

    def change_page(ack, body, context):
        ack()
        state = replace(home_state(context), unmatched_page=context["value"].page)
        home_flow.publish_home(services, body["user"]["id"], state)

    app.action(ids.CONVERSATION_PREV)(change_page)
    app.action(ids.CONVERSATION_NEXT)(change_page)

    @app.view(ids.CONVERSATION_ATTACH_MODAL)
    def attach_submitted(ack, body, view, context):
        user_id = body["user"]["id"]
        locale = services.directory.locale(user_id)
        values = ((view.get("state") or {}).get("values") or {}).get(views.ATTACH_BLOCK) or {}
        number = str((values.get("value") or {}).get("value") or "")
        try:
            ro = conversation_flow.attach(services, context["state"].sms, number, user_id)
        except Refusal as refused:
            ack(response_action="errors", errors={views.ATTACH_BLOCK: kit.cut(kit.refusal_text(refused, locale), kit.ERROR_TEXT)})
            return
        ack()
        services.slack.tell(user_id, None, views.attached_note(ro, locale))
        home_flow.publish_home(services, user_id, HomeState())
