"""Block Kit for files: the Files modal (paged checkboxes, Send to customer), the "sending" and
"refused" screens, the note posted in the RO channel for each send (with Revoke link / Retry
buttons), and the one-line notes about a file (too large, copy given up).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote
from zoneinfo import ZoneInfo

from core.i18n import t
from customers.texts import long_date
from handlers.views.ro_card import when
from media.intake import TOO_LARGE
from media.kinds import DOCUMENT, PICTURE, VIDEO, human_size
from storage.models import CustomerSend, RepairOrder, RoFile

CALLBACK_ID = "ro_files_modal"
PICK_ACTION = "files_pick"
PREV_ACTION = "files_prev"
NEXT_ACTION = "files_next"
REVOKE_ACTION = "send_revoke"
RETRY_ACTION = "send_retry"
PAGE_SIZE = 10  # Slack's limit of options in one checkbox group
KIND_EMOJI = {PICTURE: "📷", VIDEO: "🎬", DOCUMENT: "📄"}
_META_LIMIT = 3000
SECTION_LIMIT = 3000  # Slack's limit on a section's text
NAME_CHARS = 80  # a file name in the list, before escaping
PERSON_CHARS = 60
ERROR_CHARS = 150  # Slack's limit on an input block's error


@dataclass
class FilesState:
    """What the modal carries between pages (in private_metadata): the RO, the page, the ticks."""

    ro_id: int
    page: int = 0
    selected: set[int] = field(default_factory=set)
    overflow: bool = False  # more ticks than private_metadata holds: a send would be refused anyway

    def encode(self) -> str:
        ids = sorted(self.selected)
        while True:
            meta = f"ro:{self.ro_id}|p={self.page}|s={','.join(map(str, ids))}" + ("|x=1" if self.overflow else "")
            if len(meta) <= _META_LIMIT:
                return meta
            ids.pop()  # whole ids only: a cut id would name another file
            self.overflow = True

    @classmethod
    def decode(cls, meta: str) -> "FilesState | None":
        parts = (meta or "").split("|")
        if not parts or not parts[0].startswith("ro:"):
            return None
        try:
            state = cls(int(parts[0][3:]))
            for part in parts[1:]:
                key, _, value = part.partition("=")
                if key == "p":
                    state.page = max(int(value or 0), 0)
                elif key == "s":
                    state.selected = {int(v) for v in value.split(",") if v.strip().isdigit()}
                elif key == "x":
                    state.overflow = True
        except ValueError:
            return None
        return state


def page_block_id(page: int) -> str:
    # A new block id per page, so Slack does not carry one page's ticks over to the next.
    return f"files_p{page}"


def plain(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}


def md(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def phone_display(value: str) -> str:
    if value.startswith("+1") and len(value) == 12:
        return f"({value[2:5]}) {value[5:8]}-{value[8:]}"
    return value


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def files_modal(ro: RepairOrder, files: list[RoFile], state: FilesState, *, locale: str, tz: ZoneInfo,
                names: dict[str, str], how: str, can_send: bool, may_send: bool) -> dict:
    """The Files modal. `files`: the RO's files, newest first. `how`: where a send would go (or why
    it can't); `can_send`: a send is possible at all; `may_send`: this person is allowed to send."""
    pages = max(1, -(-len(files) // PAGE_SIZE))
    page = min(state.page, pages - 1)
    state.page = page
    shown = files[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    blocks: list[dict] = [
        {"type": "section", "block_id": "files_head",
         "text": md(t("files.modal.header", locale, number=_escape(ro.ro_number), customer=_escape(ro.customer_name or "—"),
                       count=len(files)))},
        {"type": "context", "block_id": "files_how", "elements": [md(how)]},
    ]
    if not may_send:
        blocks.append({"type": "context", "block_id": "files_perm", "elements": [md(t("files.modal.no_permission", locale))]})
    if not files:
        blocks.append({"type": "section", "block_id": "files_empty", "text": md(t("files.modal.empty", locale))})
    else:
        start = page * PAGE_SIZE
        lines = [_file_line(start + n + 1, f, locale, tz, names) for n, f in enumerate(shown)]
        for n, text in enumerate(_pack(lines, SECTION_LIMIT)):
            blocks.append({"type": "section", "block_id": "files_list" if n == 0 else f"files_list_{n + 1}", "text": md(text)})
        sendable = [f for f in shown if f.copy_status == "stored"]
        if may_send and can_send and sendable:
            options = [_option(start + shown.index(f) + 1, f, locale, names) for f in sendable]
            element: dict = {"type": "checkboxes", "action_id": PICK_ACTION, "options": options}
            initial = [o for o in options if int(o["value"]) in state.selected]
            if initial:
                element["initial_options"] = initial
            blocks.append({"type": "input", "block_id": page_block_id(page), "optional": True,
                           "label": plain(t("files.modal.pick", locale)), "element": element})
        elsewhere = len(state.selected - {f.id for f in shown})
        footer = [t("files.modal.page", locale, page=page + 1, pages=pages)]
        if elsewhere:
            footer.append(t("files.modal.selected_elsewhere", locale, count=elsewhere))
        blocks.append({"type": "context", "block_id": "files_page", "elements": [md(" · ".join(footer))]})
        blocks += pager("files_nav", PREV_ACTION, NEXT_ACTION, page, pages, locale)
    view = {"type": "modal", "callback_id": CALLBACK_ID, "private_metadata": state.encode(),
            "title": plain(t("files.modal.title", locale)), "close": plain(t("files.modal.close", locale)), "blocks": blocks}
    if files and may_send and can_send:
        view["submit"] = plain(t("files.modal.submit", locale))
    return view


def pager(block_id: str, prev_action: str, next_action: str, page: int, pages: int, locale: str) -> list[dict]:
    """Previous / Next buttons (each carrying the page it goes to), or nothing on a single page."""
    nav = []
    if page > 0:
        nav.append({"type": "button", "action_id": prev_action, "text": plain(t("files.modal.previous", locale)), "value": str(page - 1)})
    if page < pages - 1:
        nav.append({"type": "button", "action_id": next_action, "text": plain(t("files.modal.next", locale)), "value": str(page + 1)})
    return [{"type": "actions", "block_id": block_id, "elements": nav}] if nav else []


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _url(url: str) -> str:
    """A URL that cannot break out of Slack's <url|text> markup (<, >, | and spaces percent-encoded)."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _pack(lines: list[str], limit: int) -> list[str]:
    """Lines joined into as few texts of at most `limit` characters as they fit in (never cut mid-line)."""
    texts: list[str] = []
    for line in lines:
        line = line[:limit]
        if texts and len(texts[-1]) + 1 + len(line) <= limit:
            texts[-1] += "\n" + line
        else:
            texts.append(line)
    return texts


def _file_line(number: int, f: RoFile, locale: str, tz: ZoneInfo, names: dict[str, str]) -> str:
    name = _escape(_short(f.name, NAME_CHARS))
    title = f"<{_url(f.permalink)}|{name}>" if f.permalink else name
    parts = [f"`{number}.` {KIND_EMOJI.get(f.kind, '📄')} {title}", human_size(f.size, locale),
             _escape(_short(names.get(f.uploader_user_id, f.uploader_user_id or "—"), PERSON_CHARS)), when(f.shared_at, tz, locale)]
    if f.copy_status != "stored":
        parts.append(t(f"files.copy.{f.copy_status}", locale))
    return " · ".join(parts)


def _option(number: int, f: RoFile, locale: str, names: dict[str, str]) -> dict:
    description = f"{human_size(f.size, locale)} · {names.get(f.uploader_user_id, f.uploader_user_id or '—')}"
    return {"text": plain(f"{number}. {KIND_EMOJI.get(f.kind, '📄')} {f.name}"[:75]),
            "description": plain(description[:75]), "value": str(f.id)}


def sending_view(ro: RepairOrder, send: CustomerSend, counts_text: str, locale: str) -> dict:
    text = t("files.modal.sending", locale, what=counts_text, customer=_escape(ro.customer_name or "—"),
             method=t(f"send.method.{send.method}", locale), destination=_destination(send))
    return {"type": "modal", "callback_id": CALLBACK_ID + "_done", "title": plain(t("files.modal.title", locale)),
            "close": plain(t("files.modal.close", locale)), "blocks": [{"type": "section", "text": md(text)}]}


def refusal(view: dict, message: str, locale: str) -> dict:
    """How to answer a refused Send (the arguments of `ack`): under the checkboxes when there are
    some, else the modal becomes the message."""
    inputs = [b["block_id"] for b in view.get("blocks", []) if b.get("type") == "input" and b.get("block_id")]
    if inputs:
        return {"response_action": "errors", "errors": {inputs[0]: _short(message, ERROR_CHARS)}}
    return {"response_action": "update", "view": {
        "type": "modal", "callback_id": CALLBACK_ID + "_done", "title": plain(t("files.modal.title", locale)),
        "close": plain(t("files.modal.close", locale)), "blocks": [{"type": "section", "text": md(_short("⚠️ " + message, SECTION_LIMIT))}]}}


def file_note(f: RoFile, what: str, locale: str, *, limit_bytes: int, attempts: int) -> str:
    """The one-line note about a file in its thread: over the size limit, or copies given up."""
    key = "files.note.too_large" if what == TOO_LARGE else "files.note.copy_gave_up"
    return t(key, locale, name=f.name, size=human_size(f.size, locale), limit=human_size(limit_bytes, locale), attempts=attempts)


def _destination(send: CustomerSend) -> str:
    return phone_display(send.destination) if send.method in ("sms", "mms") else _escape(send.destination)


def counts_text(counts: dict[str, int], locale: str) -> str:
    """"2 photos, 1 video" in the staff member's language."""
    parts = []
    for kind in (PICTURE, VIDEO, DOCUMENT):
        n = counts.get(kind, 0)
        if n:
            parts.append(t(f"send.count.{kind}{'' if n == 1 else 's'}", locale, n=n))
    return ", ".join(parts) or t("send.count.nothing", locale)


def error_text(error: str | None, locale: str) -> str:
    code, _, detail = (error or "internal").partition(":")
    return t(f"send.error.{code}", locale, code=detail or "?")


def send_note(send: CustomerSend, ro: RepairOrder, counts: dict[str, int], *, locale: str, tz: ZoneInfo,
              can_retry: bool) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of the channel note about one send, for its current state."""
    values = dict(sender=f"<@{send.sent_by}>", what=counts_text(counts, locale), customer=_escape(ro.customer_name or "—"),
                  method=t(f"send.method.{send.method}", locale), destination=_destination(send),
                  date=long_date(send.expires_at, tz, locale), revoker=f"<@{send.revoked_by}>" if send.revoked_by else "—")
    if send.revoked_at is not None:
        key = "send.note.revoked"
    elif send.status in ("queued", "sending"):
        key = "send.note.sending"
    elif send.status == "opted_out":
        key = "send.note.opted_out"
    elif send.status == "failed":
        key = "send.note.failed"
    else:
        key = "send.note.sent"
    text = t(key, locale, error=error_text(send.error, locale), **values)
    blocks: list[dict] = [{"type": "section", "block_id": "send_note", "text": md(text)}]
    if send.revoked_at is None and send.status not in ("queued", "sending"):
        blocks.append({"type": "context", "block_id": "send_status",
                       "elements": [md(t("send.note.status", locale, status=t(f"send.status.{send.status}", locale)))]})
    buttons = []
    if send.revoked_at is None and send.status in ("failed", "opted_out") and can_retry:
        label = "send.button.retry_email" if send.status == "opted_out" else "send.button.retry"
        buttons.append({"type": "button", "action_id": RETRY_ACTION, "text": plain(t(label, locale)), "value": str(send.id),
                        "style": "primary"})
    if send.revoked_at is None and send.status in ("sent", "delivered", "failed"):
        buttons.append({"type": "button", "action_id": REVOKE_ACTION, "text": plain(t("send.button.revoke", locale)), "value": str(send.id),
                        "style": "danger",
                        "confirm": {"title": plain(t("send.confirm.title", locale)), "text": md(t("send.confirm.text", locale)),
                                    "confirm": plain(t("send.button.revoke", locale)), "deny": plain(t("files.modal.close", locale))}})
    if buttons:
        blocks.append({"type": "actions", "block_id": "send_actions", "elements": buttons})
    return text, blocks
