"""RO space listeners: `/ro status`, `/ro info`, `/ro reopen <number>`, the card's status select and Customer info button,
and `channel_deleted` (an RO whose channel was deleted is recorded without one)."""

from __future__ import annotations

import logging

from slack_bolt import App

from blocks import ids, kit, ro_card_view
from blocks.customer_info_view import conversation_fields, customer_info_modal
from core.i18n import t
from customers import conversation_flow
from customers.consent_rules import is_opted_out
from dms.status_rules import parse_status
from handlers.command_router import CommandContext, CommandRouter
from slackapi.errors import SlackError
from slackapi.services import Services
from spaces.publish_flow import forget_channel
from spaces.status_flow import change_status
from storage.models import RepairOrder
from storage.values import COMPLETED, IN_PROGRESS

log = logging.getLogger(__name__)


def register(app: App, services: Services, router: CommandRouter) -> None:
    tz = services.settings.shop_timezone

    def status_command(ctx: CommandContext) -> None:
        status = parse_status(ctx.args)
        if status is None:
            ctx.say("status.usage")
            return
        label = ro_card_view.status_label(status, ctx.locale)
        ctx.say(
            "status.changed_pending" if change_status(services, ctx.ro, status, ctx.user_id) else "status.unchanged", status=label
        )

    def info_command(ctx: CommandContext) -> None:
        text, blocks = ro_card_view.card(ctx.ro, tz, ctx.locale)
        extras = conversation_fields(
            ctx.ro,
            ctx.locale,
            opted_out=is_opted_out(ctx.ro.mobile_phone),
            conversation_url=conversation_flow.thread_url(services, ctx.ro),
        )
        ctx.reply(text, [*blocks, extras])

    def reopen_command(ctx: CommandContext) -> None:
        """Reopen a completed RO (any channel): status In progress, set by hand; publishing it
        unarchives a channel the archive job archived and updates its card. Members only, not guests."""
        number = ctx.args.strip().lstrip("#")
        if not number or " " in number:
            ctx.say("reopen.usage")
            return
        if services.directory.listing_scope(ctx.user_id) is not None:
            ctx.say("reopen.not_allowed")
            return
        ro = RepairOrder.select().where(RepairOrder.ro_number == number).order_by(RepairOrder.id.desc()).first()
        if ro is None:
            ctx.say("reopen.not_found", number=number)
            return
        if ro.status != COMPLETED:
            ctx.say("reopen.not_completed", number=number, status=ro_card_view.status_label(ro.status, ctx.locale))
            return
        # Archived by the app: Slack lets no app unarchive, so the publish gives it a new channel.
        key = "reopen.done_new_channel" if ro.archived_by_app and ro.channel_id else "reopen.done"
        change_status(services, ro, IN_PROGRESS, ctx.user_id)
        channel = f"<#{ro.channel_id}>" if ro.channel_id else "—"
        ctx.reply(t(key, ctx.locale, number=kit.escape(number), channel=channel))

    router.add("status", status_command, needs_ro=True, aliases=("statut",))
    router.add("reopen", reopen_command, aliases=("rouvrir",))
    router.add("info", info_command, needs_ro=True)

    @app.action(ids.RO_STATUS)
    def status_selected(ack, body, action, context, respond):
        ro, user_id = context.get("ro"), body["user"]["id"]
        status = parse_status((action.get("selected_option") or {}).get("value", ""))
        if ro is None or status is None:
            ack()
            respond(text=t("ro.not_found", services.directory.locale(user_id)), response_type="ephemeral", replace_original=False)
            return
        change_status(services, ro, status, user_id)
        ack()  # once the status is saved and its redraw queued: a choice Slack saw answered is kept

    @app.action(ids.RO_INFO)
    def customer_info(ack, body, context):
        ack()
        locale = services.directory.locale(body["user"]["id"])
        try:
            ro = context["ro"]
            modal = customer_info_modal(
                ro,
                tz,
                locale,
                opted_out=is_opted_out(ro.mobile_phone),
                conversation_url=conversation_flow.thread_url(services, ro),
            )
            services.slack.open_view(body["trigger_id"], modal)
        except SlackError as exc:  # an expired trigger: the person just presses again
            log.info("could not open Customer info: %s", exc.raw_code)

    @app.event("channel_deleted")
    def channel_deleted(event, context):
        ro = context.get("ro")
        if ro is not None and forget_channel(ro.id, event.get("channel")):
            log.info("RO %s: its channel was deleted; recorded without channel", ro.ro_number)

    @app.action(ids.RO_CONVERSATION)
    def conversation_link(ack):
        ack()  # a link button: Slack opens the URL, we only acknowledge
