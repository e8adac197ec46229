"""RO lists as Slack shows them: one line per RO (shared with the Home tab) and the ephemeral
answers of `/ro search`, `/ro mine` and `/ro all`."""

from __future__ import annotations

from blocks import kit
from blocks.ro_card_view import status_label
from core.i18n import t
from storage.models import RepairOrder
from storage.search_index import Page

LIST_LIMIT = 15  # lines in an ephemeral answer: enough to pick from, short enough to read
_LINE_MAX = 280


def channel_url(ro: RepairOrder) -> str | None:
    return f"https://slack.com/app_redirect?channel={ro.channel_id}" if ro.channel_id else None


def ro_number(ro: RepairOrder, locale: str | None) -> str:
    """ "RO 48213" ("BT 48213" in French), escaped for mrkdwn."""
    return t("people.list.number", locale, number=kit.escape(ro.ro_number))


def ro_line(ro: RepairOrder, locale: str | None, unread: int = 0) -> str:
    """ "*RO 48213* · Jean Tremblay · 2021 Honda Civic · In progress · #ro-48213-tremblay · 🔵 3 new"."""
    parts = [f"*{ro_number(ro, locale)}*", kit.escape(ro.customer_name or "—")]
    if ro.vehicle:
        parts.append(kit.escape(ro.vehicle))
    parts.append(status_label(ro.status, locale))
    parts.append(kit.channel(ro.channel_id) if ro.channel_id else t("people.list.no_channel", locale))
    if unread:
        parts.append(f"🔵 {t('people.list.unread', locale, count=unread)}")
    return kit.cut_markup(" · ".join(parts), _LINE_MAX)


def ro_list(title: str, page: Page, locale: str | None, more_key: str, empty: str) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of a compact list with channel links, saying how to narrow it.
    `title` and `empty` are mrkdwn the caller escaped."""
    blocks: list[dict] = [kit.section(f"*{title}*")]
    if not page.items:
        blocks.append(kit.section(empty))
        return kit.message(f"{title}\n{empty}", blocks)
    blocks += [kit.section(ro_line(ro, locale)) for ro in page.items]
    if page.has_more:
        blocks.append(kit.context(t(more_key, locale, count=len(page.items))))
    return kit.message(title, blocks)


def search_title(query: str, locale: str | None) -> str:
    return t("people.search.title", locale, query=kit.escape(query[:100]))


def list_title(mine: bool, status: str | None, locale: str | None) -> str:
    title = t("people.list.mine" if mine else "people.list.all", locale)
    return f"{title} · {status_label(status, locale)}" if status else title
