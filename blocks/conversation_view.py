"""Block Kit for the customer conversation: the thread's first message, each text the customer
sends (shown as text, never as markup, and `verbatim`: a URL a customer sends is not made a link
wherever it is shown), the note under each staff reply (status, segments, Retry),
consent notes, the admins' "Unmatched texts" on App Home, and the DM for a new customer text."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from blocks import ids, kit
from blocks.codec import SmsRef
from blocks.files_view import error_text
from blocks.ro_card_view import title_mrkdwn
from blocks.search_view import ro_number
from core.formats import when
from core.i18n import t
from storage.models import RepairOrder, SmsMessage

ROOT_BLOCK = "ro_conversation_root"  # how a thread posted but not recorded is found again
UNMATCHED_PER_PAGE = 5  # four blocks per text: the Home tab keeps its 100
PREVIEW_CHARS = 280
ATTACH_BLOCK = "attach_ro"


def inbound_block_id(sid: str) -> str:
    """The block id of our post of one customer text: how a post made but not recorded is found again."""
    return f"sms_in_{sid}"[:255]


def customer_label(ro: RepairOrder | None, phone: str) -> str:
    """ "*Jean Tremblay* ((514) 555-0142)", or just the number when it is not the RO's customer's."""
    name = (ro.customer_name if ro and ro.mobile_phone == phone else "") or ""
    return f"*{kit.escape(name)}* ({kit.phone(phone)})" if name else f"*{kit.phone(phone)}*"


def thread_root(ro: RepairOrder, locale: str | None) -> tuple[str, list[dict]]:
    text = t("conversation.root", locale, customer=customer_label(ro, ro.mobile_phone or ""), ro=title_mrkdwn(ro, locale))
    return kit.message(text, [kit.section(text, block_id=ROOT_BLOCK), kit.context(t("conversation.root.help", locale))])


def inbound(
    message: SmsMessage,
    ro: RepairOrder,
    others: list[RepairOrder],
    *,
    locale: str | None,
    tz: ZoneInfo,
    consent: str | None = None,
) -> tuple[str, list[dict]]:
    """A customer's text in the thread: who, when, the text as text."""
    body = kit.escape(message.body).strip() or t("conversation.no_text", locale)
    quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    head = f"{customer_label(ro, message.phone)} · {when(message.created_at, tz, locale)}"
    pieces = kit.chunks(f"{head}\n{quoted}", kit.SECTION_TEXT)
    blocks = [
        kit.verbatim_section(piece, block_id=inbound_block_id(message.provider_sid or str(message.id)) if n == 0 else None)
        for n, piece in enumerate(pieces)
    ]
    notes = []
    if message.media_count:
        notes.append(t("conversation.media", locale, count=message.media_count))
    if others:
        notes.append(t("conversation.other_ros", locale, ros=", ".join(_ro_ref(other, locale) for other in others[:5])))
    if consent:
        notes.append(t(f"conversation.consent.{consent}", locale))
    if notes:
        blocks.append(kit.context(*notes))
    return kit.message(t("conversation.inbound.fallback", locale, customer=customer_label(ro, message.phone), text=body), blocks)


def _ro_ref(ro: RepairOrder, locale: str | None) -> str:
    return f"{ro_number(ro, locale)} {kit.channel(ro.channel_id)}" if ro.channel_id else ro_number(ro, locale)


def media_note(name: str, reason: str, locale: str | None) -> str:
    return t("conversation.media_failed", locale, name=kit.escape(name), reason=kit.escape(reason))


def consent_note(change: str, locale: str | None) -> str:
    return t(f"conversation.consent.{change}", locale)


def reply_note(message: SmsMessage, ro: RepairOrder, locale: str | None, *, can_retry: bool) -> tuple[str, list[dict]]:
    """The note under a staff reply: where it went, its status, its segments; Retry when it failed."""
    status = t(f"conversation.status.{message.status}", locale)
    text = t(
        "conversation.reply.note",
        locale,
        customer=customer_label(ro, message.phone),
        status=status,
        segments=message.segments,
        encoding=message.encoding or "GSM-7",
    )
    if message.status == "failed":
        text += "\n" + t("conversation.reply.failed", locale, error=error_text(message.error, locale))
    blocks = [kit.context(text, block_id="sms_note")]
    if message.status == "failed" and can_retry:
        blocks += kit.actions(
            [kit.button(t("send.button.retry", locale), ids.CONVERSATION_RETRY, SmsRef(message.id).encode(), style="primary")],
            block_id="sms_actions",
        )
    return kit.message(text, blocks)


def customer_message_dm(
    ro: RepairOrder, message: SmsMessage, thread_url: str | None, locale: str | None
) -> tuple[str, list[dict]]:
    """The DM at once for a new customer text (the "new customer message" setting)."""
    preview = kit.escape(kit.cut(message.body.strip(), PREVIEW_CHARS)) or t("conversation.no_text", locale)
    where = kit.link(thread_url, t("conversation.open_thread", locale)) if thread_url else kit.channel(ro.channel_id)
    text = t(
        "conversation.dm", locale, customer=customer_label(ro, message.phone), ro=ro_number(ro, locale), text=preview, where=where
    )
    return kit.message(text, [kit.verbatim_section(text)])


def unmatched_section(messages: list[SmsMessage], page: int, pages: int, *, locale: str | None, tz: ZoneInfo) -> list[dict]:
    """The admins' "Unmatched texts" on App Home: newest first, paged, Attach / Dismiss."""
    blocks: list[dict] = [
        {"type": "divider"},
        kit.section(f"*{t('conversation.unmatched.title', locale)}*", block_id="unmatched_title"),
    ]
    if not messages:
        blocks.append(kit.context(t("conversation.unmatched.none", locale)))
        return blocks
    for message in messages:
        ref = SmsRef(message.id).encode()
        preview = kit.escape(kit.cut(message.body.strip(), PREVIEW_CHARS)) or t("conversation.no_text", locale)
        blocks.append(
            kit.verbatim_section(
                f"*{kit.phone(message.phone)}* · {when(message.created_at, tz, locale)}\n> {preview}",
                block_id=f"unmatched_{message.id}",
            )
        )
        if message.status == "received" and message.ro_id:  # its RO is known; its post has not happened yet
            blocks.append(kit.context(t("conversation.unmatched.not_posted", locale, ro=_ro_ref(message.ro, locale))))
        blocks += kit.actions(
            [
                kit.button(t("conversation.unmatched.attach", locale), ids.CONVERSATION_ATTACH, ref, style="primary"),
                kit.button(t("conversation.unmatched.dismiss", locale), ids.CONVERSATION_DISMISS, ref),
            ],
            block_id=f"unmatched_{message.id}_actions",
        )
    blocks.append(kit.context(t("admin.page", locale, page=page + 1, pages=pages), block_id="unmatched_page"))
    blocks += kit.pager("unmatched_nav", ids.CONVERSATION_PREV, ids.CONVERSATION_NEXT, page, pages, locale)
    return blocks


def attach_modal(message: SmsMessage, locale: str | None, error: str | None = None) -> dict:
    preview = kit.escape(kit.cut(message.body.strip(), PREVIEW_CHARS)) or t("conversation.no_text", locale)
    blocks = [
        kit.verbatim_section(f"*{kit.phone(message.phone)}*\n> {preview}"),
        {
            "type": "input",
            "block_id": ATTACH_BLOCK,
            "label": kit.plain(t("conversation.attach.label", locale), kit.LABEL_TEXT),
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "max_length": 64,
                "placeholder": kit.plain(t("conversation.attach.placeholder", locale), kit.PLACEHOLDER_TEXT),
            },
        },
        kit.context(t("conversation.attach.help", locale)),
    ]
    return kit.modal(
        ids.CONVERSATION_ATTACH_MODAL,
        t("conversation.attach.title", locale),
        blocks,
        close=t("files.modal.close", locale),
        submit=t("conversation.attach.submit", locale),
        metadata=SmsRef(message.id).encode(),
    )


def attached_note(ro: RepairOrder, locale: str | None) -> str:
    return t(
        "conversation.attached.short",
        locale,
        ro=f"{ro_number(ro, locale)} {kit.channel(ro.channel_id)}" if ro.channel_id else ro_number(ro, locale),
    )
