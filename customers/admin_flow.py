"""`/ro admin`, the Slack side: who may message customers and who is an admin.

Only admins get the modal. Every tick is re-checked on the server (customers.permission_rules):
a person who stopped being an admin while the modal was open changes nothing. A tick changes only
the box that was ticked or unticked (compared with what the row showed), and the modal is then
drawn again with what each person may now do (an admin may always message customers).
"""

from __future__ import annotations

import logging

from blocks import admin_view as views
from blocks import kit
from blocks.codec import AdminRow, AdminState
from core.i18n import t
from core.refusals import Refusal
from customers.permission_rules import NotAllowed, is_admin, set_permissions, staff_page
from slackapi.errors import SlackError
from slackapi.services import Services

log = logging.getLogger(__name__)


class NotAdmin(Refusal):
    def __init__(self) -> None:
        super().__init__("admin.only_admins")


def render(services: Services, page: int, locale: str, notice: str | None = None, revision: int = 0) -> dict:
    settings = services.settings
    people, pages = staff_page(settings, page, views.PER_PAGE)
    return views.admin_modal(
        people,
        min(page, pages - 1),
        pages,
        default_can_message=settings.default_can_message_customers,
        locale=locale,
        notice=notice,
        revision=revision,
    )


def open_admin(services: Services, trigger_id: str, user_id: str, locale: str) -> None:
    """Open the modal with the people we know, then add everyone in the workspace. Raises NotAdmin, SlackError."""
    if not is_admin(user_id, services.settings):
        raise NotAdmin()
    opened = services.slack.open_view(trigger_id, render(services, 0, locale))
    if discover_people(services):
        try:
            services.slack.update_view(opened["id"], render(services, 0, locale, revision=1))
        except SlackError as exc:
            log.info("admin modal refresh failed: %s", exc.raw_code)


def redraw(
    services: Services, view_id: str | None, state: AdminState, locale: str, notice: str | None = None, page: int | None = None
) -> None:
    """Draw the modal again (new revision, so Slack shows the new ticks)."""
    if not view_id:
        return
    try:
        services.slack.update_view(
            view_id, render(services, state.page if page is None else page, locale, notice and "⚠️ " + notice, state.revision + 1)
        )
    except SlackError as exc:
        log.info("admin modal refresh failed: %s", exc.raw_code)


def toggle(services: Services, actor: str, row: AdminRow, ticked: set[str], locale: str) -> str | None:
    """Apply the one box that changed on `row`; the notice to show (a refusal), or None."""
    shown = set(row.shown)
    changed = {v: v in ticked for v in (views.MESSAGE, views.METRICS, views.ADMIN) if (v in ticked) != (v in shown)}
    try:
        result = set_permissions(
            actor,
            row.user,
            can_message=changed.get(views.MESSAGE),
            admin=changed.get(views.ADMIN),
            metrics=changed.get(views.METRICS),
            settings=services.settings,
        )
    except NotAllowed as refused:
        return kit.refusal_text(refused, locale)
    if result.admin_from_config and changed.get(views.ADMIN) is False:
        return t("admin.refused.config_admin", locale)
    return None


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
