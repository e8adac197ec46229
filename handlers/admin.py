"""`/ro admin`: admins manage who may message customers and who is an admin.

Only admins get the modal (others are told so, ephemerally). Every tick is re-checked on the
server: a person who stopped being an admin while the modal was open changes nothing.
"""
from __future__ import annotations

import logging

from slack_bolt import App

from core.i18n import t
from core.services import Services
from customers.permissions import NotAllowed, is_admin, set_permissions, staff_page
from handlers.commands import CommandContext, CommandRouter
from handlers.views import admin as views
from slackapi.errors import SlackError

log = logging.getLogger(__name__)


def register(app: App, services: Services, router: CommandRouter) -> None:
    settings = services.settings

    def render(page: int, locale: str, notice: str | None = None) -> dict:
        people, pages = staff_page(settings, page, views.PER_PAGE)
        return views.admin_modal(people, min(page, pages - 1), pages, default_can_message=settings.default_can_message_customers,
                                 locale=locale, notice=notice)

    def admin_command(ctx: CommandContext) -> None:
        if not is_admin(ctx.user_id, settings):
            ctx.say("admin.only_admins")
            return
        if not ctx.trigger_id:
            return
        try:
            opened = services.slack.open_view(ctx.trigger_id, render(0, ctx.locale))
        except SlackError as exc:
            log.warning("could not open the admin modal: %s", exc.raw_code)
            ctx.say("error.generic")
            return
        # The modal opens at once with the people we know; then everyone in the workspace is added.
        if discover_people(services):
            try:
                services.slack.update_view(opened["id"], render(0, ctx.locale))
            except SlackError as exc:
                log.info("admin modal refresh failed: %s", exc.raw_code)

    router.add("admin", admin_command)

    @app.action(views.TOGGLE_ACTION)
    def toggled(ack, body, action):
        ack()
        actor = body["user"]["id"]
        locale = services.directory.locale(actor)
        view = body.get("view") or {}
        target = views.user_of_block(action.get("block_id", ""))
        if not target:
            return
        ticked = {o.get("value") for o in action.get("selected_options") or []}
        notice = None
        try:
            result = set_permissions(actor, target, can_message=views.MESSAGE in ticked, admin=views.ADMIN in ticked, settings=settings)
            if result.admin_from_config and views.ADMIN not in ticked:
                notice = t("admin.refused.config_admin", locale)
        except NotAllowed as refused:
            notice = t(f"admin.refused.{refused.reason}", locale)
        if notice and view.get("id"):
            # Show the stored truth again, with why the tick did not hold.
            services.slack.update_view(view["id"], render(views.page_of(view.get("private_metadata", "")), locale, "⚠️ " + notice))

    def change_page(ack, body, action):
        ack()
        actor = body["user"]["id"]
        locale = services.directory.locale(actor)
        view = body.get("view") or {}
        notice = None if is_admin(actor, settings) else "⚠️ " + t("admin.refused.not_admin", locale)
        services.slack.update_view(view["id"], render(int(action.get("value") or 0), locale, notice))

    app.action(views.PREV_ACTION)(change_page)
    app.action(views.NEXT_ACTION)(change_page)


def discover_people(services: Services) -> int:
    """Remember every active person of the workspace (users.list); how many were seen."""
    seen = 0
    try:
        for member in services.slack.iter_users():
            if member.get("deleted") or member.get("is_bot") or member.get("id") == "USLACKBOT":
                continue
            services.directory.remember(member)
            seen += 1
    except SlackError as exc:
        log.warning("users.list failed: %s (the modal shows the people already known)", exc.raw_code)
    return seen
