"""The app's Home tab ("My repair orders" / "All repair orders", search, status filter, paging,
unread counts, notification settings) and the notification DM.

The tab's state (list, status, search text, page) travels in the view's private_metadata, so
every button knows what the person was looking at.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from core.i18n import t
from dms.status import STATUSES
from handlers.views.ro_card import STATUS_EMOJI, status_label
from handlers.views.search import channel_url, escape, ro_line, ro_number
from people.notifications import Digest, Preferences
from storage.models import RepairOrder
from storage.search import MAX_CHARS, Page

PAGE_SIZE = 20  # two blocks per row at most: 20 rows + the frame stay well under Slack's 100
MAX_BLOCKS = 100
SEARCH, MINE, ALL, STATUS = "home_search", "home_tab_mine", "home_tab_all", "home_status"
PREVIOUS, NEXT, CLEAR = "home_page_prev", "home_page_next", "home_clear_search"
OPEN, MARK_READ, NOTIFY = "home_open", "home_mark_read", "home_notify"
ANY_STATUS = "any"
NOTIFY_MESSAGES, NOTIFY_FILES = "messages", "files"


@dataclass
class HomeState:
    tab: str = "mine"  # mine | all
    status: str | None = None
    query: str = ""
    page: int = 0

    def to_metadata(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_metadata(cls, text: str | None) -> "HomeState":
        """The state a Home view carries; anything unreadable is the default view."""
        try:
            data = json.loads(text or "{}")
            return cls(tab="all" if data.get("tab") == "all" else "mine",
                       status=data.get("status") if data.get("status") in STATUSES else None,
                       query=str(data.get("query") or "")[:MAX_CHARS], page=max(0, int(data.get("page") or 0)))
        except (ValueError, TypeError, AttributeError):
            return cls()


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text[:75], "emoji": True}


def _status_option(status: str | None, locale: str | None) -> dict:
    if status is None:
        return {"text": _plain(t("people.home.any_status", locale)), "value": ANY_STATUS}
    return {"text": _plain(f"{STATUS_EMOJI.get(status, '')} {status_label(status, locale)}"), "value": status}


def _controls(state: HomeState, locale: str | None) -> list[dict]:
    search_input = {
        "type": "plain_text_input", "action_id": SEARCH,
        "placeholder": _plain(t("people.home.search_placeholder", locale)),
        "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
    }
    if state.query:
        search_input["initial_value"] = state.query
    tab_buttons = []
    for tab, action, key in (("mine", MINE, "people.list.mine"), ("all", ALL, "people.list.all")):
        button = {"type": "button", "action_id": action, "text": _plain(t(key, locale)), "value": tab}
        if state.tab == tab:
            button["style"] = "primary"
        tab_buttons.append(button)
    options = [_status_option(None, locale)] + [_status_option(s, locale) for s in STATUSES]
    tab_buttons.append({"type": "static_select", "action_id": STATUS, "options": options,
                        "initial_option": _status_option(state.status, locale),
                        "placeholder": _plain(t("people.home.status_placeholder", locale))})
    if state.query:
        tab_buttons.append({"type": "button", "action_id": CLEAR, "text": _plain(t("people.home.clear", locale)), "value": "clear"})
    return [
        # A new block_id when the text changes, or Slack keeps showing what was typed before.
        {"type": "input", "block_id": f"home_search_{len(state.query)}", "dispatch_action": True, "optional": True,
         "label": _plain(t("people.home.search_label", locale)), "element": search_input},
        {"type": "actions", "block_id": "home_controls", "elements": tab_buttons},
    ]


def _rows(page: Page, unread: dict[int, int], locale: str | None) -> list[dict]:
    blocks: list[dict] = []
    for ro in page.items:
        count = unread.get(ro.id, 0)
        row: dict = {"type": "section", "block_id": f"ro_{ro.id}", "text": {"type": "mrkdwn", "text": ro_line(ro, locale, count)}}
        url = channel_url(ro)
        if url:
            row["accessory"] = {"type": "button", "action_id": OPEN, "text": _plain(t("people.home.open", locale)),
                                "url": url, "value": str(ro.id)}
        blocks.append(row)
        if count:
            blocks.append({"type": "actions", "block_id": f"ro_{ro.id}_read", "elements": [
                {"type": "button", "action_id": MARK_READ, "text": _plain(t("people.home.mark_read", locale)), "value": str(ro.id)}]})
    return blocks


def _paging(state: HomeState, page: Page, locale: str | None) -> list[dict]:
    first = page.offset + 1
    summary = t("people.home.range", locale, first=first, last=page.offset + len(page.items))
    blocks: list[dict] = [{"type": "context", "block_id": "home_range", "elements": [{"type": "mrkdwn", "text": summary}]}]
    buttons = []
    if state.page > 0:
        buttons.append({"type": "button", "action_id": PREVIOUS, "text": _plain(t("people.home.previous", locale)), "value": str(state.page - 1)})
    if page.has_more:
        buttons.append({"type": "button", "action_id": NEXT, "text": _plain(t("people.home.next", locale)), "value": str(state.page + 1)})
    if buttons:
        blocks.append({"type": "actions", "block_id": "home_paging", "elements": buttons})
    return blocks


def _settings(prefs: Preferences, locale: str | None) -> list[dict]:
    options = [
        {"text": _plain(t("people.home.notify_messages", locale)), "value": NOTIFY_MESSAGES},
        {"text": _plain(t("people.home.notify_files", locale)), "value": NOTIFY_FILES},
    ]
    element: dict = {"type": "checkboxes", "action_id": NOTIFY, "options": options}
    chosen = [o for o in options if (o["value"] == NOTIFY_MESSAGES and prefs.messages) or (o["value"] == NOTIFY_FILES and prefs.files)]
    if chosen:
        element["initial_options"] = chosen
    return [
        {"type": "divider"},
        {"type": "section", "block_id": "home_notify_title", "text": {"type": "mrkdwn", "text": f"*{t('people.home.notify_title', locale)}*"}},
        {"type": "actions", "block_id": "home_notify", "elements": [element]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": t("people.home.notify_help", locale)}]},
    ]


def home_view(state: HomeState, page: Page | None, unread: dict[int, int], prefs: Preferences,
              locale: str | None) -> dict:
    """`page` is None when the search text is too short to search (the hint replaces the list)."""
    blocks: list[dict] = [{"type": "header", "text": _plain(t("people.home.title", locale))}]
    blocks += _controls(state, locale)
    blocks.append({"type": "divider"})
    if page is None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": t("people.search.hint", locale)}})
    elif not page.items:
        key = "people.search.none" if state.query else ("people.home.empty_mine" if state.tab == "mine" else "people.home.empty_all")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": t(key, locale, query=escape(state.query))}})
    else:
        if state.query:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t("people.search.title", locale, query=escape(state.query))}]})
        blocks += _rows(page, unread, locale)
        blocks += _paging(state, page, locale)
    blocks += _settings(prefs, locale)
    assert len(blocks) <= MAX_BLOCKS, len(blocks)
    return {"type": "home", "private_metadata": state.to_metadata(), "blocks": blocks}


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
    authors = ", ".join(f"<@{a}>" for a in digest.authors[:5])
    where = f"<#{ro.channel_id}>" if ro.channel_id else ro_number(ro, locale)
    return t("people.notify.text", locale, number=escape(ro.ro_number), customer=escape(ro.customer_name or "—"),
             what=", ".join(what), authors=authors, channel=where)
