"""Block Kit for `/ro admin`: a paged modal, one row per person with two checkboxes
(may message customers, admin). Each tick is saved at once (block_actions), so paging loses nothing,
and the modal is drawn again after each tick, showing what each person may now do.

A row's block id is a codec.AdminRow (the person, the modal's revision, what the row showed):
every redraw gets new block ids, so Slack shows the new ticks rather than keeping the old ones,
and a tick is compared with what that person saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks import ids, kit
from blocks.codec import AdminRow, AdminState
from core.i18n import t

if TYPE_CHECKING:  # type names only (erased at run time): the view reads their attributes
    from customers.permission_rules import StaffPermissions

PER_PAGE = 20  # one block per person; a modal holds 100 blocks
MESSAGE, ADMIN, METRICS = "message", "admin", "metrics"


def admin_modal(
    people: list[StaffPermissions],
    page: int,
    pages: int,
    *,
    default_can_message: bool,
    locale: str,
    notice: str | None = None,
    revision: int = 0,
) -> dict:
    """`notice`: mrkdwn the caller wrote (a refusal), shown above the rows."""
    default = t("admin.default.yes" if default_can_message else "admin.default.no", locale)
    blocks: list[dict] = [kit.context(t("admin.modal.intro", locale, default=default), block_id="admin_intro")]
    if notice:
        blocks.append(kit.section(notice, block_id="admin_notice"))
    if not people:
        blocks.append(kit.section(t("admin.empty", locale), block_id="admin_empty"))
    for person in people:
        options = [
            kit.option(t("admin.option.message", locale), MESSAGE, t("admin.included", locale) if person.is_admin else None),
            kit.option(t("admin.option.metrics", locale), METRICS, t("admin.included", locale) if person.is_admin else None),
            kit.option(
                t("admin.option.admin", locale), ADMIN, t("admin.config_admin", locale) if person.admin_from_config else None
            ),
        ]
        flags = ((MESSAGE, person.can_message_customers), (METRICS, person.can_see_metrics), (ADMIN, person.is_admin))
        shown = {value for value, on in flags if on}
        row = AdminRow(person.user_id, revision, frozenset(shown)).encode()
        blocks.append(
            kit.section(
                f"*{kit.escape(person.name)}*\n{kit.user(person.user_id)}",
                block_id=row,
                accessory=kit.checkboxes(ids.ADMIN_TOGGLE, options, shown),
            )
        )
    blocks.append(kit.context(t("admin.page", locale, page=page + 1, pages=pages), block_id="admin_page"))
    blocks += kit.pager(
        "admin_nav",
        ids.ADMIN_PREV,
        ids.ADMIN_NEXT,
        page,
        pages,
        locale,
    )
    return kit.modal(
        ids.ADMIN_MODAL,
        t("admin.modal.title", locale),
        blocks,
        close=t("admin.modal.close", locale),
        metadata=AdminState(page, revision).encode(),
    )
