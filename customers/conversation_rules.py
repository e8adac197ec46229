"""The customer conversation's rules: texts recorded once, matched to their RO, consent applied,
replies checked before anything is sent. No Slack here (customers.conversation_flow does that).

Matching: a text from a number goes to the open RO (not completed) with that mobile whose
appointment is nearest to now, then the most recently changed; with no open RO, to the most
recently changed RO of that number; with none, it is unmatched and waits for an admin.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from peewee import JOIN, IntegrityError

from core.config import Settings
from core.i18n import t
from core.refusals import Refusal
from customers import consent_rules, permission_rules, sms_rules
from dms.normalize import parse_phone
from storage import metric_events
from storage.db import database
from storage.models import RepairOrder, SmsMessage, utcnow
from storage.values import COMPLETED

MAX_MEDIA = 10  # Twilio delivers at most 10 media per MMS


class ReplyRefused(Refusal):
    """A reply that is not texted; `reason`: no_permission, opted_out, too_long, no_mobile, sms_off,
    empty, files (a photo or file posted in the thread: replies are texted as SMS only)."""

    def __init__(self, reason: str, **detail: object):
        super().__init__(f"conversation.refused.{reason}", **detail)


@dataclass(frozen=True)
class Inbound:
    """What Twilio's messaging webhook told us, read once."""

    sid: str
    phone: str
    body: str
    media: tuple[tuple[str, str], ...]  # (url, content type)


class BadWebhook(ValueError):
    """The webhook lacks what every message has (From, Body, MessageSid)."""


def read_inbound(params: Mapping[str, str]) -> Inbound:
    sid, sender, body = params.get("MessageSid") or params.get("SmsSid"), params.get("From"), params.get("Body")
    if not sid or sender is None or body is None:
        raise BadWebhook("a message needs MessageSid, From and Body")
    phone = parse_phone(sender) or sender.strip()
    try:
        count = min(int(params.get("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        count = 0
    media = tuple(
        (params[f"MediaUrl{n}"], params.get(f"MediaContentType{n}") or "") for n in range(count) if params.get(f"MediaUrl{n}")
    )
    return Inbound(sid.strip()[:64], phone[:32], body, media)


def record_inbound(message: Inbound) -> SmsMessage:
    """The text's row, made once per MessageSid (Twilio redelivers webhooks)."""
    kind, _ = sms_rules.keyword(message.body)
    try:
        with database.atomic():
            return SmsMessage.create(
                direction="in",
                phone=message.phone,
                body=message.body,
                provider_sid=message.sid,
                status="received",
                keyword=kind,
                media_count=len(message.media),
                media=json.dumps([list(m) for m in message.media]),
            )
    except IntegrityError:
        return SmsMessage.get(SmsMessage.provider_sid == message.sid)


def match(phone: str, now: datetime | None = None) -> tuple[RepairOrder | None, list[RepairOrder]]:
    """(the RO this number's text goes to, the number's other open ROs)."""
    now = now or utcnow()
    mine = list(RepairOrder.select().where(RepairOrder.mobile_phone == phone))
    open_ros = [ro for ro in mine if ro.status != COMPLETED]
    if open_ros:

        def nearness(ro: RepairOrder) -> tuple:
            gap = abs((ro.appointment_at - now).total_seconds()) if ro.appointment_at else float("inf")
            return gap, -ro.updated_at.timestamp()

        ranked = sorted(open_ros, key=nearness)
        return ranked[0], ranked[1:]
    if mine:
        return max(mine, key=lambda ro: (ro.updated_at, ro.id)), []
    return None, []


def apply_consent(message: SmsMessage) -> str | None:
    """The consent change the text makes: "opted_out", "opted_in" or None (nothing changed)."""
    if message.keyword == sms_rules.OPT_OUT and consent_rules.record_opt_out(message.phone, source="keyword"):
        return "opted_out"
    if message.keyword == sms_rules.OPT_IN and consent_rules.record_opt_in(message.phone):
        return "opted_in"
    return None


def media_of(message: SmsMessage) -> list[tuple[str, str]]:
    try:
        return [(str(url), str(kind)) for url, kind in json.loads(message.media or "[]")]
    except (ValueError, TypeError):
        return []


def set_status(message: SmsMessage, status: str, **fields: object) -> None:
    """The text's new state; a reply that went out is the metrics' event, written with it."""
    values = {"status": status, "status_at": utcnow(), **fields}
    with database.atomic():
        SmsMessage.update(**values).where(SmsMessage.id == message.id).execute()
        for key, value in values.items():
            setattr(message, key, value)
        if message.direction == "out" and status in ("sent", "delivered") and message.ro_id:
            metric_events.record(
                metric_events.REPLY,
                str(message.id),
                at=message.created_at,  # when staff replied: the first response time is measured to it
                user_id=message.author_user_id,
                ro_id=message.ro_id,
            )


def assign(message: SmsMessage, ro: RepairOrder) -> None:
    """A customer's text matched to its RO: it counts there from now (the metrics' event with it)."""
    with database.atomic():
        set_status(message, "received", ro=ro.id)
        _count_customer_text(message, ro.id)


def _count_customer_text(message: SmsMessage, ro_id: int) -> None:
    ref = str(message.id)
    if not metric_events.record(metric_events.CUSTOMER_TEXT, ref, at=message.created_at, ro_id=ro_id):
        metric_events.reassign(metric_events.CUSTOMER_TEXT, ref, ro_id)  # attached again, maybe elsewhere


# -- unmatched texts ------------------------------------------------------------------------------


# A text with an RO that is not in its thread yet: an admin attached it (its post is on the way), or
# posting it kept failing (its error kept). Admins see it with the unmatched ones until it is posted.
_NOT_POSTED = (
    (SmsMessage.status == "received")
    & SmsMessage.ro.is_null(False)
    & SmsMessage.slack_ts.is_null()
    & (SmsMessage.handled_by.is_null(False) | SmsMessage.error.is_null(False))
)


def is_not_posted(message: SmsMessage) -> bool:
    """Has the text an RO but is not in its thread yet (see _NOT_POSTED)?"""
    return (
        message.status == "received"
        and message.ro_id is not None
        and not message.slack_ts
        and bool(message.handled_by or message.error)
    )


def unmatched_page(page: int, per_page: int) -> tuple[list[SmsMessage], int, int]:
    """(one page of the texts waiting for an admin, newest first: unmatched, or with an RO but not
    posted yet; the page; how many pages)."""
    query = (
        SmsMessage.select(SmsMessage, RepairOrder)
        .join(RepairOrder, JOIN.LEFT_OUTER, on=(SmsMessage.ro == RepairOrder.id))
        .where((SmsMessage.direction == "in") & ((SmsMessage.status == "unmatched") | _NOT_POSTED))
    )
    total = query.count()
    pages = max(1, -(-total // per_page))
    page = min(max(page, 0), pages - 1)
    rows = list(query.order_by(SmsMessage.created_at.desc(), SmsMessage.id.desc()).offset(page * per_page).limit(per_page))
    return rows, page, pages


def attach(message_id: int, ro: RepairOrder, admin: str, settings: Settings) -> list[SmsMessage]:
    """An admin attaches an unmatched text to an RO: it and every other unmatched text from that
    number move to the RO (oldest first), to be posted in its conversation. A text with an RO but
    not posted yet (its post kept failing) is attached again: to the same RO (posted again) or to
    another one. A text already in a thread never moves. Raises Refusal."""
    if not permission_rules.is_admin(admin, settings):
        raise Refusal("admin.only_admins")
    message = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if message is None or not (message.status == "unmatched" or is_not_posted(message)):
        raise Refusal("conversation.unmatched.gone")
    same_number = (
        (SmsMessage.direction == "in")
        & ((SmsMessage.status == "unmatched") | ((SmsMessage.id == message.id) & _NOT_POSTED))
        & (SmsMessage.phone == message.phone)
    )
    moved = list(SmsMessage.select().where(same_number).order_by(SmsMessage.created_at, SmsMessage.id))
    if not moved:
        raise Refusal("conversation.unmatched.gone")
    ids = [m.id for m in moved]
    with database.atomic():
        SmsMessage.update(ro=ro.id, status="received", handled_by=admin, status_at=utcnow()).where(
            same_number & SmsMessage.id.in_(ids)
        ).execute()
        for m in SmsMessage.select().where(SmsMessage.id.in_(ids) & (SmsMessage.ro == ro.id) & (SmsMessage.handled_by == admin)):
            _count_customer_text(m, ro.id)
    return moved


def dismiss(message_id: int, admin: str, settings: Settings) -> None:
    if not permission_rules.is_admin(admin, settings):
        raise Refusal("admin.only_admins")
    done = (
        SmsMessage.update(status="dismissed", handled_by=admin, status_at=utcnow())
        .where(
            (SmsMessage.id == message_id) & (SmsMessage.direction == "in") & ((SmsMessage.status == "unmatched") | _NOT_POSTED)
        )
        .execute()
    )
    if not done:
        raise Refusal("conversation.unmatched.gone")


# -- replies --------------------------------------------------------------------------------------


def signed(ro: RepairOrder, text: str, settings: Settings) -> str:
    """The reply as the customer reads it: signed with the shop's name when the shop wants it."""
    if not settings.sms_signature:
        return text
    return f"{text}\n{signature_for(text, ro.language, settings.shop_name)}"


def _is_gsm7(text: str) -> bool:
    return sms_rules.segments(text)[0] == "GSM-7"


_TO_GSM7 = str.maketrans(
    {"—": "-", "–": "-", "‒": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"', "\u00a0": " "}
)


def signature_for(text: str, language: str | None, shop: str) -> str:
    """The signature under a reply. A reply that fits GSM-7 stays GSM-7 (160 characters a segment,
    not UCS-2's 70): a signature character outside GSM-7 (a dash, an accent the alphabet lacks, in
    the catalog or the shop's name) is folded to its nearest GSM-7 character. A reply that needs
    UCS-2 anyway keeps the signature as written."""
    signature = t("conversation.signature", language, shop=shop)
    if not _is_gsm7(text) or _is_gsm7(signature):
        return signature
    folded = "".join(
        c if _is_gsm7(c) else "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
        for c in signature.translate(_TO_GSM7)
    )
    return folded if _is_gsm7(folded) else signature


# -- Slack's markup as the customer reads it ----------------------------------------------------------

_MARKUP = re.compile(r"<([^<>]*)>|&(amp|lt|gt);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_BROADCASTS = {"here", "channel", "everyone"}


def _unescape(text: str) -> str:
    return re.sub(r"&(amp|lt|gt);", lambda m: _ENTITIES[m.group(1)], text)


def plain_text(text: str, user_name: Callable[[str], str | None], channel_name: Callable[[str], str | None] | None = None) -> str:
    """Slack message text as a customer reads it in a text: a mention is the person's name (looked
    up with `user_name(user_id)`, else the label Slack gave, else "@id"), a channel "#name", a user
    group its handle, @here stays "@here", a link "label (url)" (just the address when the label is
    the address), an email or phone link its label, and &amp; &lt; &gt; the characters they stand for.
    What someone typed that looks like markup is escaped by Slack, and stays as typed."""

    def read(match: re.Match) -> str:
        if match.group(2):
            return _ENTITIES[match.group(2)]
        target, _, label = match.group(1).partition("|")
        label = _unescape(label)
        if target.startswith("@"):
            return user_name(target[1:]) or label or target
        if target.startswith("#"):
            name = label or (channel_name(target[1:]) if channel_name else None) or target[1:]
            return "#" + name.lstrip("#")
        if target.startswith("!"):
            word = target[1:]
            if word.startswith("subteam^"):
                return label or "@" + word.split("^", 1)[1]
            if word in _BROADCASTS:
                return label or "@" + word
            return label
        address = _unescape(target)
        for scheme in ("mailto:", "tel:"):
            if address.lower().startswith(scheme):
                address = address[len(scheme) :]
                same = label and (label == address or _digits(label) and _digits(address).endswith(_digits(label)))
                return label if same else (f"{label} ({address})" if label else address)
        if not label or label in (address, re.sub(r"^https?://", "", address).rstrip("/")):
            return label or address
        return f"{label} ({address})"

    return _MARKUP.sub(read, text)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def create_reply(ro: RepairOrder, author: str, text: str, ts: str, settings: Settings) -> SmsMessage:
    """Record a staff reply to text to the customer (queued). Raises ReplyRefused (nothing is sent)
    for a reply that must not go out; a reply already recorded (a retried event) is returned as is."""
    existing = SmsMessage.get_or_none((SmsMessage.ro == ro.id) & (SmsMessage.slack_ts == ts))
    if existing is not None:
        return existing
    if not permission_rules.can_message_customers(author, settings):
        raise ReplyRefused("no_permission")
    if not ro.mobile_phone:
        raise ReplyRefused("no_mobile")
    if not settings.sms_enabled:
        raise ReplyRefused("sms_off")
    if consent_rules.is_opted_out(ro.mobile_phone):
        raise ReplyRefused("opted_out")
    if not text.strip():
        raise ReplyRefused("empty")
    body = signed(ro, text.strip(), settings)
    if sms_rules.too_long(body):
        raise ReplyRefused("too_long", length=sms_rules.utf16_units(body), limit=sms_rules.MAX_BODY)
    encoding, count = sms_rules.segments(body)
    try:
        with database.atomic():
            return SmsMessage.create(
                direction="out",
                ro=ro.id,
                phone=ro.mobile_phone,
                body=body,
                slack_ts=ts[:32],
                author_user_id=author,
                status="queued",
                encoding=encoding,
                segments=count,
            )
    except IntegrityError:
        return SmsMessage.get((SmsMessage.ro == ro.id) & (SmsMessage.slack_ts == ts))


def reply_of(ro: RepairOrder, ts: str) -> SmsMessage | None:
    return SmsMessage.get_or_none((SmsMessage.ro == ro.id) & (SmsMessage.slack_ts == ts) & (SmsMessage.direction == "out"))


def retry_reply(message_id: int, user_id: str, settings: Settings) -> SmsMessage:
    """Queue a failed reply again, checked as a new one (permission, consent). Raises ReplyRefused."""
    message = SmsMessage.get_or_none((SmsMessage.id == message_id) & (SmsMessage.direction == "out"))
    if message is None:
        raise Refusal("conversation.reply.gone")
    if not permission_rules.can_message_customers(user_id, settings):
        raise ReplyRefused("no_permission")
    if consent_rules.is_opted_out(message.phone):
        raise ReplyRefused("opted_out")
    retried = (
        SmsMessage.update(status="queued", error=None, status_at=utcnow())
        .where((SmsMessage.id == message.id) & (SmsMessage.status == "failed"))
        .execute()
    )
    if not retried:
        raise Refusal("conversation.reply.not_failed")
    return SmsMessage.get_by_id(message.id)


_TWILIO_STATES = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed", "read": "delivered"}
_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3}


def apply_twilio_status(params: Mapping[str, str]) -> SmsMessage | None:
    """A delivery report for a reply; the message when its status changed, else None. A reply,
    once delivered or failed, stays so (reports arrive out of order)."""
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    new = _TWILIO_STATES.get((params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower())
    message = SmsMessage.get_or_none((SmsMessage.provider_sid == sid) & (SmsMessage.direction == "out")) if sid and new else None
    if message is None or message.status in ("delivered", "failed") or _RANK.get(new, 0) <= _RANK.get(message.status, 0):
        return None
    code = (params.get("ErrorCode") or "").strip()
    error = f"sms_undelivered:{code}" if new == "failed" and code.isdigit() else ("sms_undelivered" if new == "failed" else None)
    if code == "21610":
        consent_rules.record_opt_out(message.phone)
    set_status(message, new, error=error)
    return message
