"""The one Block Kit kit: text objects, escaping, mentions, links, common elements, and Slack's limits.

Every view builds its blocks from these, so two rules hold everywhere:
- text from outside (DMS fields, customer SMS, file names, what users typed) goes through
  `escape()` before it reaches mrkdwn, in blocks and in the `text` fallback; only the helpers
  here (`user`, `channel`, `link`, `group`) write live Slack markup, from ids and URLs we hold;
- Slack's limits are enforced here, once: a plain text object holds 75 (option, button), 150
  (header, placeholder) or 24 (modal title) characters, a section 3000, a checkbox group 10
  options, a message 50 blocks, a modal or Home tab 100.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from blocks.codec import PageRef
from core.formats import phone_display
from core.i18n import t
from core.refusals import Refusal

# Slack's limits (https://docs.slack.dev/reference/block-kit).
BUTTON_TEXT, OPTION_TEXT, HEADER_TEXT, PLACEHOLDER_TEXT, TITLE_TEXT = 75, 75, 150, 150, 24
SECTION_TEXT, FIELD_TEXT, CONTEXT_TEXT, LABEL_TEXT, ERROR_TEXT = 3000, 2000, 3000, 2000, 150
MAX_OPTIONS, MAX_CHECKBOXES = 100, 10
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100
METADATA_CHARS, BUTTON_VALUE_CHARS, OPTION_VALUE_CHARS = 3000, 2000, 150
FALLBACK_TEXT = 4000  # chat.postMessage's text is cut by Slack past 40,000; keep notes readable

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


class BlockLimit(ValueError):
    """A view would break one of Slack's limits: a bug in the view, caught before Slack answers invalid_blocks."""


def escape(text: object) -> str:
    """Text shown as text in mrkdwn: `&`, `<` and `>` escaped, so no mention, link or broadcast
    (`<!channel>`, `<https://…|…>`, `<@U…>`) written by someone else comes alive."""
    return str(text if text is not None else "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def phone(value: str | None) -> str:
    """A phone number to show: "(514) 555-0142" for North American numbers, others as stored,
    escaped (a number from the DMS or an SMS is outside text)."""
    return escape(phone_display(value))


def cut(text: str, limit: int) -> str:
    """Plain `text` shortened to `limit` characters with an ellipsis (cut before escaping it)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cut_markup(text: str, limit: int) -> str:
    """Escaped mrkdwn shortened to `limit` characters; never cuts an escape sequence ("&amp;") in two."""
    if len(text) <= limit:
        return text
    shortened = text[: limit - 1]
    amp = shortened.rfind("&")
    if amp != -1 and ";" not in shortened[amp:] and len(shortened) - amp < 6:
        shortened = shortened[:amp]  # "&am" would show as text
    return shortened + "…"


def plain(text: str, limit: int = BUTTON_TEXT) -> dict:
    """A plain_text object (never interpreted as markup), cut to `limit`; Slack refuses an empty one."""
    return {"type": "plain_text", "text": cut(str(text or " "), limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> dict:
    """A mrkdwn object from text the caller built with `escape` and the markup helpers below."""
    return {"type": "mrkdwn", "text": cut_markup(text or " ", limit) or " "}


def verbatim(text: str, limit: int = SECTION_TEXT) -> dict:
    """A mrkdwn object Slack does not preprocess: a URL, a channel name or an address in the text is
    not turned into a link (our own markup, written with the helpers below, still works). For text
    from outside (a customer's SMS), escaped with `escape` like any other."""
    return {**mrkdwn(text, limit), "verbatim": True}


def verbatim_section(text: str, *, block_id: str | None = None) -> dict:
    """A section whose text is `verbatim`: outside text shown as written, never auto-linked."""
    block = section(text, block_id=block_id)
    block["text"] = verbatim(text)
    return block


def user(user_id: str | None) -> str:
    """A live mention of a Slack user we hold the id of; anything that is not an id is shown escaped."""
    if user_id and _USER_ID.match(user_id):
        return f"<@{user_id}>"
    return escape(user_id or "—")


def channel(channel_id: str | None) -> str:
    if channel_id and _CHANNEL_ID.match(channel_id):
        return f"<#{channel_id}>"
    return escape(channel_id or "—")


def group(group_id: str) -> str:
    if _GROUP_ID.match(group_id or ""):
        return f"<!subteam^{group_id}>"
    return escape(group_id)


def safe_url(url: str) -> str:
    """A URL that cannot break out of Slack's `<url|label>` markup (`<`, `>`, `|`, spaces encoded)."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def link(url: str | None, label: str) -> str:
    """`<url|label>` with the label escaped; just the escaped label when there is no URL, or the
    URL is not http(s)/mailto (a `javascript:` or Slack-command URL never becomes a link)."""
    if not url or not re.match(r"^(https?://|mailto:)", url):
        return escape(label)
    return f"<{safe_url(url)}|{escape(label).replace('|', '¦')}>"


def section(text: str, *, block_id: str | None = None, accessory: dict | None = None) -> dict:
    block: dict = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = block_id
    if accessory:
        block["accessory"] = accessory
    return block


def fields(pairs: Iterable[tuple[str, str]], *, block_id: str | None = None) -> dict:
    """A section of up to 10 "*label*\nvalue" fields; labels are ours, values already escaped."""
    items = [mrkdwn(f"*{label}*\n{value}", FIELD_TEXT) for label, value in pairs]
    if len(items) > 10:
        raise BlockLimit("a section holds at most 10 fields")
    block: dict = {"type": "section", "fields": items}
    if block_id:
        block["block_id"] = block_id
    return block


def context(*texts: str, block_id: str | None = None) -> dict:
    block: dict = {"type": "context", "elements": [mrkdwn(text, CONTEXT_TEXT) for text in texts[:10]]}
    if block_id:
        block["block_id"] = block_id
    return block


def header(text: str) -> dict:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def actions(elements: list[dict], *, block_id: str | None = None) -> list[dict]:
    """An actions block, or nothing when there is no element (Slack refuses an empty one)."""
    if not elements:
        return []
    block: dict = {"type": "actions", "elements": elements[:25]}
    if block_id:
        block["block_id"] = block_id
    return [block]


def button(
    label: str,
    action_id: str,
    value: str | None = None,
    *,
    url: str | None = None,
    style: str | None = None,
    confirm: dict | None = None,
) -> dict:
    element: dict = {"type": "button", "action_id": action_id, "text": plain(label, BUTTON_TEXT)}
    if value is not None:
        if len(value) > BUTTON_VALUE_CHARS:
            raise BlockLimit(f"button value over {BUTTON_VALUE_CHARS} characters")
        element["value"] = value
    if url:
        element["url"] = url
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm(title: str, text: str, yes: str, no: str) -> dict:
    return {"title": plain(title, 100), "text": mrkdwn(text, 300), "confirm": plain(yes, 30), "deny": plain(no, 30)}


def option(label: str, value: str, description: str | None = None) -> dict:
    if len(value) > OPTION_VALUE_CHARS:
        raise BlockLimit(f"option value over {OPTION_VALUE_CHARS} characters")
    item: dict = {"text": plain(label, OPTION_TEXT), "value": value}
    if description:
        item["description"] = plain(description, OPTION_TEXT)
    return item


def checkboxes(action_id: str, options: list[dict], selected: Iterable[str] = ()) -> dict:
    """A checkbox group (at most 10 options, Slack's limit); `selected` values start ticked,
    given as the very option objects, as Slack requires."""
    if not 1 <= len(options) <= MAX_CHECKBOXES:
        raise BlockLimit(f"a checkbox group holds 1 to {MAX_CHECKBOXES} options, not {len(options)}")
    chosen = set(selected)
    element: dict = {"type": "checkboxes", "action_id": action_id, "options": options}
    initial = [o for o in options if o["value"] in chosen]
    if initial:
        element["initial_options"] = initial
    return element


def static_select(action_id: str, options: list[dict], selected: str | None, placeholder: str) -> dict:
    if not 1 <= len(options) <= MAX_OPTIONS:
        raise BlockLimit(f"a select holds 1 to {MAX_OPTIONS} options")
    element: dict = {
        "type": "static_select",
        "action_id": action_id,
        "options": options,
        "placeholder": plain(placeholder, PLACEHOLDER_TEXT),
    }
    initial = next((o for o in options if o["value"] == selected), None)
    if initial is not None:
        element["initial_option"] = initial
    return element


def pager(block_id: str, prev_action: str, next_action: str, page: int, pages: int, locale: str | None) -> list[dict]:
    """Previous / Next buttons (each carrying the page it goes to, as a codec.PageRef), or nothing on one page."""
    nav = []
    if page > 0:
        nav.append(button(t("files.modal.previous", locale), prev_action, PageRef(page - 1).encode()))
    if page < pages - 1:
        nav.append(button(t("files.modal.next", locale), next_action, PageRef(page + 1).encode()))
    return actions(nav, block_id=block_id)


def pages_of(count: int, per_page: int) -> int:
    return max(1, -(-count // per_page))


def pack(lines: list[str], limit: int = SECTION_TEXT) -> list[str]:
    """Lines joined into as few texts of at most `limit` characters as they fit in (never cut mid-line)."""
    texts: list[str] = []
    for line in lines:
        line = cut_markup(line, limit)
        if texts and len(texts[-1]) + 1 + len(line) <= limit:
            texts[-1] += "\n" + line
        else:
            texts.append(line)
    return texts


def chunks(text: str, limit: int = SECTION_TEXT) -> list[str]:
    """Escaped mrkdwn in pieces of at most `limit` characters, cut at line ends, else spaces, never
    inside an escape sequence: a long text from a customer stays whole across several sections."""
    pieces: list[str] = []
    while len(text) > limit:
        cut_at = text.rfind("\n", 0, limit)
        if cut_at <= 0:
            cut_at = text.rfind(" ", 0, limit)
        if cut_at <= 0:
            cut_at = limit
            amp = text.rfind("&", 0, cut_at)
            if amp != -1 and ";" not in text[amp:cut_at]:
                cut_at = amp
        pieces.append(text[:cut_at])
        text = text[cut_at:].lstrip("\n")
    return [*pieces, text] if text or not pieces else pieces


def message(text: str, blocks: list[dict]) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of a message, checked against the 50-block limit."""
    if len(blocks) > MESSAGE_BLOCKS:
        raise BlockLimit(f"a message holds at most {MESSAGE_BLOCKS} blocks, not {len(blocks)}")
    return cut_markup(text, FALLBACK_TEXT), blocks


def modal(callback_id: str, title: str, blocks: list[dict], *, close: str, submit: str | None = None, metadata: str = "") -> dict:
    """A modal view, checked against Slack's limits (100 blocks, 3000 characters of metadata)."""
    if len(blocks) > VIEW_BLOCKS:
        raise BlockLimit(f"a modal holds at most {VIEW_BLOCKS} blocks, not {len(blocks)}")
    if len(metadata) > METADATA_CHARS:
        raise BlockLimit(f"private_metadata over {METADATA_CHARS} characters")
    view: dict = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, TITLE_TEXT),
        "close": plain(close, TITLE_TEXT),
        "blocks": blocks,
    }
    if metadata:
        view["private_metadata"] = metadata
    if submit:
        view["submit"] = plain(submit, TITLE_TEXT)
    return view


def home(blocks: list[dict], metadata: str = "") -> dict:
    if len(blocks) > VIEW_BLOCKS:
        raise BlockLimit(f"a Home tab holds at most {VIEW_BLOCKS} blocks, not {len(blocks)}")
    if len(metadata) > METADATA_CHARS:
        raise BlockLimit(f"private_metadata over {METADATA_CHARS} characters")
    return {"type": "home", "private_metadata": metadata, "blocks": blocks}


def refusal_text(refusal: Refusal, locale: str | None) -> str:
    """A refusal's explanation in the user's language, its values (file names, what they typed) escaped."""
    values = {k: escape(v) if isinstance(v, str) else v for k, v in refusal.detail.items()}
    return t(refusal.key, locale, **values)
