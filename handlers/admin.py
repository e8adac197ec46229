"""`/ro admin`: admins manage who may message customers and who is an admin.

Only admins get the modal (others are told so, ephemerally). Every tick is re-checked on the
server: a person who stopped being an admin while the modal was open changes nothing. A tick
changes only the box that was ticked or unticked (compared with what the row showed), and the
modal is then drawn again with what each person may now do (an admin may always message customers).
"""
from __future__ import annotations

import logging

from slack_bolt import App

from core.i18n import t
from core.services import Services
from customers.permissions import NotAllowed, is_admin, permissions_for, set_permissions, staff_page
from handlers.commands import CommandContext, CommandRouter
from handlers.views import admin as views
from slackapi.errors import SlackError

log = logging.getLogger(__name__)


def register(app: App, services: Services, router: CommandRouter) -> None:
    settings = services.settings

    def render(page: int, locale: str, notice: str | None = None, revision: int = 0) -> dict:
        people, pages = staff_page(settings, page, views.PER_PAGE)
        return views.admin_modal(people, min(page, pages - 1), pages, default_can_message=settings.default_can_message_customers,
                                 locale=locale, notice=notice, revision=revision)

    def redraw(view: dict, locale: str, notice: str | None = None, page: int | None = None) -> None:
        """Draw the modal again (new revision, so Slack shows the new ticks)."""
        meta = view.get("private_metadata", "")
        if not view.get("id"):
            return
        try:
            services.slack.update_view(view["id"], render(views.page_of(meta) if page is None else page, locale,
                                                          notice and "⚠️ " + notice, views.revision_of(meta) + 1))
        except SlackError as exc:
            log.info("admin modal refresh failed: %s", exc.raw_code)

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
                services.slack.update_view(opened["id"], render(0, ctx.locale, revision=1))
            except SlackError as exc:
                log.info("admin modal refresh failed: %s", exc.raw_code)

    router.add("admin", admin_command)

    @app.action(views.TOGGLE_ACTION)
    def toggled(ack, body, action):
        ack()
        actor = body["user"]["id"]
        locale = services.directory.locale(actor)
        view = body.get("view") or {}
        block_id = action.get("block_id", "")
        target = views.user_of_block(block_id)
        if not target:
            return
        ticked = {o.get("value") for o in action.get("selected_options") or []}
        shown = views.shown_in_block(block_id)
        if shown is None:  # not a row we drew: compare with what is stored
            now = permissions_for(target, settings)
            shown = {v for v, on in ((views.MESSAGE, now.can_message_customers), (views.ADMIN, now.is_admin)) if on}
        changed = {v: v in ticked for v in (views.MESSAGE, views.ADMIN) if (v in ticked) != (v in shown)}
        notice = None
        try:
            result = set_permissions(actor, target, can_message=changed.get(views.MESSAGE), admin=changed.get(views.ADMIN),
                                     settings=settings)
            if result.admin_from_config and changed.get(views.ADMIN) is False:
                notice = t("admin.refused.config_admin", locale)
        except NotAllowed as refused:
            notice = t(f"admin.refused.{refused.reason}", locale)
        redraw(view, locale, notice)  # what each person may do now, and why a tick did not hold

    def change_page(ack, body, action):
        ack()
        actor = body["user"]["id"]
        locale = services.directory.locale(actor)
        notice = None if is_admin(actor, settings) else t("admin.refused.not_admin", locale)
        redraw(body.get("view") or {}, locale, notice, page=int(action.get("value") or 0))

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
