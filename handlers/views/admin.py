"""Block Kit for `/ro admin`: a paged modal, one row per person with two checkboxes
(may message customers, admin). Each tick is saved at once (block_actions), so paging loses nothing,
and the modal is drawn again after each tick, showing what each person may now do.

A row's block id carries the person, the modal's revision and what the row showed
(`admin_u_U123.4.ma`): every redraw gets new block ids, so Slack shows the new ticks rather than
keeping the old ones, and a tick is compared with what that person saw.
"""
from __future__ import annotations

from core.i18n import t
from customers.permissions import StaffPermissions
from handlers.views.files import md, pager, plain

CALLBACK_ID = "ro_admin_modal"
TOGGLE_ACTION = "admin_perms"
PREV_ACTION = "admin_prev"
NEXT_ACTION = "admin_next"
PER_PAGE = 20  # one block per person; a modal holds 100 blocks
ROW_PREFIX = "admin_u_"
MESSAGE, ADMIN = "message", "admin"
_FLAGS = {MESSAGE: "m", ADMIN: "a"}


def _meta(meta: str, key: str) -> int:
    for part in (meta or "").split("|"):
        name, _, value = part.partition("=")
        if name == key and value.isdigit():
            return int(value)
    return 0


def page_of(meta: str) -> int:
    return _meta(meta, "p")


def revision_of(meta: str) -> int:
    return _meta(meta, "r")


def row_block_id(user_id: str, revision: int, shown: set[str]) -> str:
    return f"{ROW_PREFIX}{user_id}.{revision}.{''.join(f for v, f in _FLAGS.items() if v in shown)}"


def user_of_block(block_id: str) -> str | None:
    if not block_id.startswith(ROW_PREFIX):
        return None
    return block_id[len(ROW_PREFIX):].split(".", 1)[0] or None


def shown_in_block(block_id: str) -> set[str] | None:
    """What the row showed ticked when it was drawn; None for a block id we did not make."""
    parts = block_id[len(ROW_PREFIX):].split(".") if block_id.startswith(ROW_PREFIX) else []
    if len(parts) != 3:
        return None
    return {v for v, f in _FLAGS.items() if f in parts[2]}


def admin_modal(people: list[StaffPermissions], page: int, pages: int, *, default_can_message: bool, locale: str,
                notice: str | None = None, revision: int = 0) -> dict:
    default = t("admin.default.yes" if default_can_message else "admin.default.no", locale)
    blocks: list[dict] = [{"type": "context", "block_id": "admin_intro", "elements": [md(t("admin.modal.intro", locale, default=default))]}]
    if notice:
        blocks.append({"type": "section", "block_id": "admin_notice", "text": md(notice)})
    if not people:
        blocks.append({"type": "section", "block_id": "admin_empty", "text": md(t("admin.empty", locale))})
    for person in people:
        options = [
            {"text": plain(t("admin.option.message", locale)), "value": MESSAGE,
             **({"description": plain(t("admin.included", locale))} if person.is_admin else {})},
            {"text": plain(t("admin.option.admin", locale)), "value": ADMIN,
             **({"description": plain(t("admin.config_admin", locale))} if person.admin_from_config else {})},
        ]
        initial = [o for o in options if (o["value"] == MESSAGE and person.can_message_customers) or (o["value"] == ADMIN and person.is_admin)]
        element: dict = {"type": "checkboxes", "action_id": TOGGLE_ACTION, "options": options}
        if initial:
            element["initial_options"] = initial
        name = person.name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        shown = {o["value"] for o in initial}
        blocks.append({"type": "section", "block_id": row_block_id(person.user_id, revision, shown),
                       "text": md(f"*{name}*\n<@{person.user_id}>"), "accessory": element})
    blocks.append({"type": "context", "block_id": "admin_page", "elements": [md(t("admin.page", locale, page=page + 1, pages=pages))]})
    blocks += pager("admin_nav", PREV_ACTION, NEXT_ACTION, page, pages, locale)
    return {"type": "modal", "callback_id": CALLBACK_ID, "private_metadata": f"admin|p={page}|r={revision}",
            "title": plain(t("admin.modal.title", locale)), "close": plain(t("admin.modal.close", locale)), "blocks": blocks}
