"""RO space listeners: `/ro status`, `/ro info`, the card's status select and Customer info button."""
from __future__ import annotations

import logging

from slack_bolt import App

from core.i18n import t
from core.services import Services
from dms.status import parse_status
from handlers.commands import CommandContext, CommandRouter
from handlers.views import ro_card
from handlers.views.customer_info import customer_info_modal
from handlers.middleware import repair_order_from
from slackapi.errors import SlackError
from spaces.publisher import Publisher
from spaces.status import set_status
from storage.models import RepairOrder

log = logging.getLogger(__name__)


def change_status(services: Services, ro: RepairOrder, status: str, user_id: str) -> tuple[bool, bool]:
    """(changed, shown in Slack). The change is saved even when Slack fails; the next sync shows it."""
    if not set_status(ro, status, user_id):
        return False, True
    try:
        # Reads the RO afresh; if the scheduler is publishing it right now, that publisher shows this change.
        Publisher(services.slack, services.directory, services.settings.shop_timezone).publish(ro)
        return True, True
    except SlackError as exc:
        log.warning("RO %s: status saved, Slack update failed: %s", ro.ro_number, exc.raw_code)
        return True, False


def register(app: App, services: Services, router: CommandRouter) -> None:
    tz = services.settings.shop_timezone

    def status_command(ctx: CommandContext) -> None:
        status = parse_status(ctx.args)
        if status is None:
            ctx.say("status.usage")
            return
        changed, shown = change_status(services, ctx.ro, status, ctx.user_id)
        label = ro_card.status_label(status, ctx.locale)
        if not changed:
            ctx.say("status.unchanged", status=label)
        else:
            ctx.say("status.changed" if shown else "status.slack_failed", status=label)

    def info_command(ctx: CommandContext) -> None:
        text, blocks = ro_card.card(ctx.ro, tz, ctx.locale)
        ctx.reply(text, blocks)

    router.add("status", status_command, needs_ro=True, aliases=("statut",))
    router.add("info", info_command, needs_ro=True)

    @app.action(ro_card.STATUS_ACTION)
    def status_selected(ack, body, action, context, respond):
        ack()
        ro, user_id = context.get("ro"), body["user"]["id"]
        locale = services.directory.locale(user_id)
        status = parse_status((action.get("selected_option") or {}).get("value", ""))
        if ro is None or status is None:
            respond(text=t("ro.not_found", locale), response_type="ephemeral", replace_original=False)
            return
        changed, shown = change_status(services, ro, status, user_id)
        if changed and not shown:
            respond(text=t("status.slack_failed", locale), response_type="ephemeral", replace_original=False)

    @app.action(ro_card.INFO_ACTION)
    def customer_info(ack, body, action):
        ack()
        locale = services.directory.locale(body["user"]["id"])
        ro = repair_order_from(action.get("value"))
        if ro is None:
            return
        services.slack.open_view(body["trigger_id"], customer_info_modal(ro, tz, locale))

    @app.action(ro_card.CONVERSATION_ACTION)
    def conversation_link(ack):
        ack()  # a link button: Slack opens the URL, we only acknowledge
