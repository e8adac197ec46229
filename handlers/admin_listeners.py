"""`/ro admin` listeners: the command (admins only), each tick, paging (customers.admin_flow)."""

from __future__ import annotations

import logging

from slack_bolt import App

from blocks import ids, kit
from customers import admin_flow
from customers.permission_rules import NotAllowed, is_admin
from handlers.command_router import CommandContext, CommandRouter
from slackapi.errors import SlackError
from slackapi.services import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services, router: CommandRouter) -> None:
    def admin_command(ctx: CommandContext) -> None:
        if not ctx.trigger_id:
            return
        try:
            admin_flow.open_admin(services, ctx.trigger_id, ctx.user_id, ctx.locale)
        except SlackError as exc:
            log.warning("could not open the admin modal: %s", exc.raw_code)
            ctx.say("error.generic")

    router.add("admin", admin_command)

    @app.action(ids.ADMIN_TOGGLE)
    def toggled(ack, body, action, context):
        actor = body["user"]["id"]
        locale = services.directory.locale(actor)
        ticked = {o.get("value") for o in action.get("selected_options") or [] if isinstance(o, dict)}
        notice = admin_flow.toggle(services, actor, context["value"], ticked, locale)
        ack()  # once the permission is saved
        # What each person may do now, and why a tick did not hold.
        admin_flow.redraw(services, (body.get("view") or {}).get("id"), context["state"], locale, notice)

    def change_page(ack, body, context):
        ack()
        actor = body["user"]["id"]
        locale = services.directory.locale(actor)
        notice = None if is_admin(actor, services.settings) else kit.refusal_text(NotAllowed("not_admin"), locale)
        admin_flow.redraw(
            services, (body.get("view") or {}).get("id"), context["state"], locale, notice, page=context["value"].page
        )

    app.action(ids.ADMIN_PREV)(change_page)
    app.action(ids.ADMIN_NEXT)(change_page)
