"""The app's Home tab ("My repair orders" / "All repair orders", search, status filter, paging,
unread counts, notification settings) and the notification DM.

The tab's state (list, status, search text, page) travels in the view's private_metadata
(codec.HomeState), so every button knows what the person was looking at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from blocks import ids, kit
from blocks.codec import HomeState, PageRef, RoRef
from blocks.conversation_view import unmatched_section
from blocks.ro_card_view import STATUS_EMOJI, status_label
from blocks.search_view import channel_url, ro_line, ro_number
from core.i18n import t
from storage.models import RepairOrder
from storage.search_index import Page
from storage.values import STATUSES

if TYPE_CHECKING:  # type names only (erased at run time): the view reads their attributes
    from people.notification_rules import Digest, Preferences

PAGE_SIZE = 20  # two blocks per row at most: 20 rows + the frame stay well under Slack's 100
ANY_STATUS = "any"
NOTIFY_MESSAGES, NOTIFY_FILES, NOTIFY_CUSTOMER = "messages", "files", "customer"


def _status_option(status: str | None, locale: str | None) -> dict:
    if status is None:
        return kit.option(t("people.home.any_status", locale), ANY_STATUS)
    return kit.option(f"{STATUS_EMOJI.get(status, '')} {status_label(status, locale)}", status)


def _controls(state: HomeState, locale: str | None) -> list[dict]:
    search_input = {
        "type": "plain_text_input",
        "action_id": ids.HOME_SEARCH,
        "placeholder": kit.plain(t("people.home.search_placeholder", locale), kit.PLACEHOLDER_TEXT),
        "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
    }
    if state.query:
        search_input["initial_value"] = state.query
    controls = []
    for tab, action, key in (("mine", ids.HOME_MINE, "people.list.mine"), ("all", ids.HOME_ALL, "people.list.all")):
        controls.append(kit.button(t(key, locale), action, style="primary" if state.tab == tab else None))
    options = [_status_option(None, locale)] + [_status_option(s, locale) for s in STATUSES]
    controls.append(
        kit.static_select(ids.HOME_STATUS, options, state.status or ANY_STATUS, t("people.home.status_placeholder", locale))
    )
    if state.query:
        controls.append(kit.button(t("people.home.clear", locale), ids.HOME_CLEAR))
    return [
        # A new block_id when the text changes, or Slack keeps showing what was typed before.
        {
            "type": "input",
            "block_id": f"home_search_{len(state.query)}",
            "dispatch_action": True,
            "optional": True,
            "label": kit.plain(t("people.home.search_label", locale), kit.LABEL_TEXT),
            "element": search_input,
        },
        *kit.actions(controls, block_id="home_controls"),
    ]


def _rows(page: Page, unread: dict[int, int], locale: str | None) -> list[dict]:
    blocks: list[dict] = []
    for ro in page.items:
        count = unread.get(ro.id, 0)
        url = channel_url(ro)
        ref = RoRef(ro.id).encode()
        accessory = kit.button(t("people.home.open", locale), ids.HOME_OPEN, ref, url=url) if url else None
        blocks.append(kit.section(ro_line(ro, locale, count), block_id=f"ro_{ro.id}", accessory=accessory))
        if count:
            blocks += kit.actions(
                [kit.button(t("people.home.mark_read", locale), ids.HOME_MARK_READ, ref)], block_id=f"ro_{ro.id}_read"
            )
    return blocks


def _paging(state: HomeState, page: Page, locale: str | None) -> list[dict]:
    summary = t("people.home.range", locale, first=page.offset + 1, last=page.offset + len(page.items))
    buttons = []
    if state.page > 0:
        buttons.append(kit.button(t("people.home.previous", locale), ids.HOME_PREV, PageRef(state.page - 1).encode()))
    if page.has_more:
        buttons.append(kit.button(t("people.home.next", locale), ids.HOME_NEXT, PageRef(state.page + 1).encode()))
    return [kit.context(summary, block_id="home_range"), *kit.actions(buttons, block_id="home_paging")]


def _settings(prefs: Preferences, locale: str | None) -> list[dict]:
    options = [
        kit.option(t("people.home.notify_messages", locale), NOTIFY_MESSAGES),
        kit.option(t("people.home.notify_files", locale), NOTIFY_FILES),
        kit.option(t("people.home.notify_customer", locale), NOTIFY_CUSTOMER),
    ]
    chosen = [
        value
        for value, on in ((NOTIFY_MESSAGES, prefs.messages), (NOTIFY_FILES, prefs.files), (NOTIFY_CUSTOMER, prefs.customer))
        if on
    ]
    return [
        {"type": "divider"},
        kit.section(f"*{t('people.home.notify_title', locale)}*", block_id="home_notify_title"),
        *kit.actions([kit.checkboxes(ids.HOME_NOTIFY, options, chosen)], block_id="home_notify"),
        kit.context(t("people.home.notify_help", locale)),
    ]


def home_view(
    state: HomeState,
    page: Page | None,
    unread: dict[int, int],
    prefs: Preferences,
    locale: str | None,
    *,
    unmatched: tuple[list, int, int] | None = None,
    tz: ZoneInfo | None = None,
    metrics: list[dict] | None = None,
) -> dict:
    """`page` is None when the search text is too short to search (the hint replaces the list).
    `unmatched` (admins only): (a page of unmatched texts, the page, the page count).
    `metrics`: the Metrics section's blocks, for those who may see metrics."""
    blocks: list[dict] = [kit.header(t("people.home.title", locale))]
    blocks += _controls(state, locale)
    blocks.append({"type": "divider"})
    query = kit.escape(state.query)
    if page is None:
        blocks.append(kit.section(t("people.search.hint", locale)))
    elif not page.items:
        key = (
            "people.search.none"
            if state.query
            else ("people.home.empty_mine" if state.tab == "mine" else "people.home.empty_all")
        )
        blocks.append(kit.section(t(key, locale, query=query)))
    else:
        if state.query:
            blocks.append(kit.context(t("people.search.title", locale, query=query)))
        blocks += _rows(page, unread, locale)
        blocks += _paging(state, page, locale)
    if unmatched is not None:
        messages, unmatched_page, pages = unmatched
        blocks += unmatched_section(messages, unmatched_page, pages, locale=locale, tz=tz or ZoneInfo("UTC"))
    blocks += metrics or []
    blocks += _settings(prefs, locale)
    return kit.home(blocks, state.encode())


def counted(key: str, count: int, locale: str | None) -> str:
    """`key.one` for exactly one, else `key.other` (counts here are never 0)."""
    return t(f"{key}.one" if count == 1 else f"{key}.other", locale, count=count)


def notification_text(digest: Digest, ro: RepairOrder, locale: str | None) -> str:
    """The DM: "🔵 RO 48213 · Jean Tremblay: 3 new messages, 1 new file from @Luc — #ro-48213-tremblay"."""
    what = []
    if digest.messages:
        what.append(counted("people.notify.messages", digest.messages, locale))
    if digest.files:
        what.append(counted("people.notify.files", digest.files, locale))
    authors = ", ".join(kit.user(a) for a in digest.authors[:5])
    where = kit.channel(ro.channel_id) if ro.channel_id else ro_number(ro, locale)
    return t(
        "people.notify.text",
        locale,
        number=kit.escape(ro.ro_number),
        customer=kit.escape(ro.customer_name or "—"),
        what=", ".join(what),
        authors=authors,
        channel=where,
    )
