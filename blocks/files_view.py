"""Block Kit for files: the Files modal (paged checkboxes, Send to customer), the "sending" and
"refused" screens, the note posted in the RO channel for each send (with Revoke link / Retry
buttons), and the one-line notes about a file (too large, copy given up).
"""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from blocks import ids, kit
from blocks.codec import FilesState, SendRef
from core.formats import human_size, long_date, when
from core.i18n import t
from core.refusals import Refusal
from storage.models import CustomerSend, RepairOrder, RoFile
from storage.values import DOCUMENT, MERGED_FILE, PICTURE, VIDEO

PAGE_SIZE = kit.MAX_CHECKBOXES  # Slack's limit of options in one checkbox group
KIND_EMOJI = {PICTURE: "📷", VIDEO: "🎬", DOCUMENT: "📄"}
NAME_CHARS = 80  # a file name in the list, before escaping
PERSON_CHARS = 60


def page_block_id(page: int) -> str:
    # A new block id per page, so Slack does not carry one page's ticks over to the next.
    return f"files_p{page}"


def files_modal(
    ro: RepairOrder,
    files: list[RoFile],
    state: FilesState,
    *,
    locale: str,
    tz: ZoneInfo,
    names: dict[str, str],
    how: str,
    can_send: bool,
    may_send: bool,
    notice: str | None = None,
) -> dict:
    """The Files modal. `files`: the RO's files, newest first. `how`: where a send would go (or why
    it can't), mrkdwn the caller escaped; `can_send`: a send is possible at all; `may_send`: this
    person is allowed to send; `notice`: a refusal to show on top (mrkdwn the caller escaped).

    Ticks serve both the Send button (the modal's submit, for who may send) and "Merge the ticked
    videos" (a button when two or more videos are stored; the submit itself for who may not send)."""
    sending = bool(files) and may_send and can_send
    videos = sum(1 for f in files if f.kind == VIDEO and f.copy_status == "stored")
    merging = videos >= 2
    state = replace(state, merge_submit=merging and not sending)
    pages = kit.pages_of(len(files), PAGE_SIZE)
    state = replace(state, page=min(state.page, pages - 1))
    start = state.page * PAGE_SIZE
    shown = files[start : start + PAGE_SIZE]
    blocks: list[dict] = [
        kit.section(
            t(
                "files.modal.header",
                locale,
                number=kit.escape(ro.ro_number),
                customer=kit.escape(ro.customer_name or "—"),
                count=len(files),
            ),
            block_id="files_head",
        ),
        kit.context(how, block_id="files_how"),
    ]
    if notice:
        blocks.insert(0, kit.section("⚠️ " + notice, block_id="files_notice"))
    if not may_send:
        blocks.append(kit.context(t("files.modal.no_permission", locale), block_id="files_perm"))
    if not files:
        blocks.append(kit.section(t("files.modal.empty", locale), block_id="files_empty"))
    else:
        lines = [_file_line(start + n + 1, f, locale, tz, names) for n, f in enumerate(shown)]
        for n, text in enumerate(kit.pack(lines)):
            blocks.append(kit.section(text, block_id="files_list" if n == 0 else f"files_list_{n + 1}"))
        sendable = [f for f in shown if f.copy_status == "stored"]
        if (sending or merging) and sendable:
            options = [_option(start + shown.index(f) + 1, f, locale, names) for f in sendable]
            element = kit.checkboxes(ids.FILES_PICK, options, [str(i) for i in state.selected])
            blocks.append(
                {
                    "type": "input",
                    "block_id": page_block_id(state.page),
                    "optional": True,
                    "label": kit.plain(t("files.modal.pick", locale), kit.LABEL_TEXT),
                    "element": element,
                }
            )
        elsewhere = len(state.selected - {f.id for f in shown})
        footer = [t("files.modal.page", locale, page=state.page + 1, pages=pages)]
        if elsewhere:
            footer.append(t("files.modal.selected_elsewhere", locale, count=elsewhere))
        blocks.append(kit.context(" · ".join(footer), block_id="files_page"))
        if merging:
            buttons = [kit.button(t("merge.button", locale), ids.MERGE_START)] if sending else []
            blocks += kit.actions(buttons, block_id="files_merge")
            blocks.append(kit.context(t("merge.hint", locale), block_id="files_merge_hint"))
        blocks += kit.pager(
            "files_nav",
            ids.FILES_PREV,
            ids.FILES_NEXT,
            state.page,
            pages,
            locale,
        )
    return kit.modal(
        ids.FILES_MODAL,
        t("files.modal.title", locale),
        blocks,
        close=t("files.modal.close", locale),
        submit=t("files.modal.submit", locale) if sending else (t("merge.submit", locale) if merging else None),
        metadata=state.encode(),
    )


def _file_line(number: int, f: RoFile, locale: str, tz: ZoneInfo, names: dict[str, str]) -> str:
    name = kit.cut(f.name, NAME_CHARS)
    title = kit.link(f.permalink, name) if f.permalink else kit.escape(name)
    person = kit.escape(kit.cut(names.get(f.uploader_user_id, f.uploader_user_id or "—"), PERSON_CHARS))
    parts = [
        f"`{number}.` {KIND_EMOJI.get(f.kind, '📄')} {title}",
        human_size(f.size, locale),
        person,
        when(f.shared_at, tz, locale),
    ]
    if f.copy_status != "stored":
        parts.append(t(f"files.copy.{f.copy_status}", locale))
    if f.origin == MERGED_FILE:
        parts.append(t("files.merged", locale))
    return " · ".join(parts)


def _option(number: int, f: RoFile, locale: str, names: dict[str, str]) -> dict:
    # plain_text: a file name is shown as typed, never as markup.
    description = f"{human_size(f.size, locale)} · {names.get(f.uploader_user_id, f.uploader_user_id or '—')}"
    return kit.option(f"{number}. {KIND_EMOJI.get(f.kind, '📄')} {f.name}", str(f.id), description)


def sending_view(ro: RepairOrder, send: CustomerSend, counts_text: str, locale: str) -> dict:
    text = t(
        "files.modal.sending",
        locale,
        what=counts_text,
        customer=kit.escape(ro.customer_name or "—"),
        method=t(f"send.method.{send.method}", locale),
        destination=_destination(send),
    )
    return kit.modal(ids.FILES_DONE, t("files.modal.title", locale), [kit.section(text)], close=t("files.modal.close", locale))


def refusal(view: dict, refused: Refusal, locale: str) -> dict:
    """How to answer a refused Send (the arguments of `ack`): under the checkboxes when there are
    some (Slack shows input errors as plain text), else the modal becomes the message."""
    inputs = [
        b["block_id"] for b in view.get("blocks", []) if isinstance(b, dict) and b.get("type") == "input" and b.get("block_id")
    ]
    if inputs:
        return {
            "response_action": "errors",
            "errors": {inputs[0]: kit.cut(t(refused.key, locale, **refused.detail), kit.ERROR_TEXT)},
        }
    screen = kit.modal(
        ids.FILES_DONE,
        t("files.modal.title", locale),
        [kit.section("⚠️ " + kit.refusal_text(refused, locale))],
        close=t("files.modal.close", locale),
    )
    return {"response_action": "update", "view": screen}


def file_note(note: str, name: str, size: int, locale: str, *, limit_bytes: int, attempts: int) -> str:
    """The one-line note about a file in its thread: `note` "too_large" (over the limit) or "copy_gave_up"."""
    key = "files.note.too_large" if note == "too_large" else "files.note.copy_gave_up"
    return t(
        key,
        locale,
        name=kit.escape(name),
        size=human_size(size, locale),
        limit=human_size(limit_bytes, locale),
        attempts=attempts,
    )


def _destination(send: CustomerSend) -> str:
    return kit.phone(send.destination) if send.method in ("sms", "mms") else kit.escape(send.destination)


def counts_text(counts: dict[str, int], locale: str) -> str:
    """ "2 photos, 1 video" in the staff member's language."""
    parts = []
    for kind in (PICTURE, VIDEO, DOCUMENT):
        n = counts.get(kind, 0)
        if n:
            parts.append(t(f"send.count.{kind}{'' if n == 1 else 's'}", locale, n=n))
    return ", ".join(parts) or t("send.count.nothing", locale)


def error_text(error: str | None, locale: str) -> str:
    code, _, detail = (error or "internal").partition(":")
    return t(f"send.error.{code}", locale, code=kit.escape(detail or "?"))


def send_note(
    send: CustomerSend, ro: RepairOrder, counts: dict[str, int], *, locale: str, tz: ZoneInfo, can_retry: bool
) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of the channel note about one send, for its current state."""
    values = dict(
        sender=kit.user(send.sent_by),
        what=counts_text(counts, locale),
        customer=kit.escape(ro.customer_name or "—"),
        method=t(f"send.method.{send.method}", locale),
        destination=_destination(send),
        date=long_date(send.expires_at, tz, locale),
        revoker=kit.user(send.revoked_by) if send.revoked_by else "—",
    )
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
    blocks: list[dict] = [kit.section(text, block_id="send_note")]
    if send.revoked_at is None and send.status not in ("queued", "sending"):
        blocks.append(
            kit.context(t("send.note.status", locale, status=t(f"send.status.{send.status}", locale)), block_id="send_status")
        )
    ref = SendRef(send.id).encode()
    buttons = []
    if send.revoked_at is None and send.status in ("failed", "opted_out") and can_retry:
        label = "send.button.retry_email" if send.status == "opted_out" else "send.button.retry"
        buttons.append(kit.button(t(label, locale), ids.SEND_RETRY, ref, style="primary"))
    if send.revoked_at is None and send.status in ("sent", "delivered", "failed"):
        buttons.append(
            kit.button(
                t("send.button.revoke", locale),
                ids.SEND_REVOKE,
                ref,
                style="danger",
                confirm=kit.confirm(
                    t("send.confirm.title", locale),
                    t("send.confirm.text", locale),
                    t("send.button.revoke", locale),
                    t("files.modal.close", locale),
                ),
            )
        )
    blocks += kit.actions(buttons, block_id="send_actions")
    return kit.message(text, blocks)
