"""Sending an RO's files to its customer: the rules, the record, the delivery. No Slack here.

1. `create_send` checks, in this order, that the person may message customers, that the files
   are this RO's and are in our storage, and how the customer can be reached: a text to the
   mobile (unless that number opted out), else an email, else a clear refusal (SendRefused).
   It records the CustomerSend (+ CustomerSendFile) with a fresh token; nothing is sent yet.
2. `deliver` (background) makes the customer-ready copies (media.transcode), then texts the
   customer a short message in their language with the link (photos may ride along as MMS
   within Twilio's limits: at most 10 media and 5 MB; videos always go as the link), or emails
   them. The outcome is recorded: sent / failed (with a code) / opted_out.
3. `apply_twilio_status` takes Twilio's delivery reports; `retry` and `revoke` are the buttons
   on the channel note. Each checks the permission of whoever presses it, the original sender
   included: someone no longer allowed to message customers can do neither.

CustomerSend holds a send's current state; CustomerSendAttempt keeps its whole delivery history
(every attempt and every gateway report, failures included), so a Retry never erases a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape

from core.config import Settings
from core.formats import long_date
from core.refusals import Refusal
from customers import customer_texts as texts
from customers import link_tokens as tokens
from customers import mail_gateway as mailer
from customers import permission_rules as permissions
from customers import twilio_gateway as twilio
from customers.consent_rules import is_opted_out, record_opt_out
from customers.mail_gateway import MailError
from customers.twilio_gateway import SmsError
from media.blob_store import open_store
from media.file_kinds import normalise_mimetype
from media.transcode import Asset, customer_version
from storage import metric_events
from storage.db import database
from storage.models import (
    CustomerSend,
    CustomerSendAttempt,
    CustomerSendFile,
    MediaRendition,
    RepairOrder,
    RoFile,
    utcnow,
)
from storage.values import PICTURE

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).with_name("templates")

MAX_FILES_PER_SEND = 30
MMS_MAX_MEDIA = 10
MMS_MAX_BYTES = 5_000_000
MMS_TYPES = ("image/jpeg", "image/png", "image/gif")
# Twilio's message states → ours; the ones not listed (queued, accepted, sending…) change nothing.
_TWILIO_STATES = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed", "read": "delivered"}
_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "opted_out": 3}
# A report never moves a send out of these (only a Retry does, for failed and opted_out).
FINAL = ("delivered", "failed", "opted_out")


class SendRefused(Refusal):
    """Nothing was sent. `reason` names the rule (its text: send.refused.<reason> in the catalogs)."""

    def __init__(self, reason: str, **detail: object):
        super().__init__(f"send.refused.{reason}", **detail)


@dataclass(frozen=True)
class Plan:
    method: str  # sms | email
    destination: str


# -- rules ----------------------------------------------------------------------------------------


def plan_delivery(ro: RepairOrder, settings: Settings) -> Plan:
    """How this customer can be reached now. Raises SendRefused when they can't."""
    mobile, email = ro.mobile_phone, (ro.email or "").strip()
    opted_out = is_opted_out(mobile)
    if mobile and settings.sms_enabled and not opted_out:
        return Plan("sms", mobile)
    if email and settings.email_enabled:
        return Plan("email", email)
    if not mobile and not email:
        raise SendRefused("no_contact")
    if mobile and opted_out:
        raise SendRefused("opted_out")
    if mobile and not settings.sms_enabled:
        raise SendRefused("sms_off")
    raise SendRefused("email_off")


def _require_permission(user_id: str, settings: Settings) -> None:
    if not permissions.can_message_customers(user_id, settings):
        raise SendRefused("no_permission")


def create_send(ro: RepairOrder, user_id: str, file_ids: list[int], settings: Settings) -> CustomerSend:
    """Record a send of `file_ids` to the RO's customer (queued). Raises SendRefused."""
    _require_permission(user_id, settings)
    wanted = list(dict.fromkeys(int(i) for i in file_ids))
    if not wanted:
        raise SendRefused("no_files")
    if len(wanted) > MAX_FILES_PER_SEND:
        raise SendRefused("too_many_files", max=MAX_FILES_PER_SEND)
    files = list(RoFile.select().where((RoFile.id.in_(wanted)) & (RoFile.ro == ro)).order_by(RoFile.shared_at, RoFile.id))
    store = open_store(settings)
    missing = [f.name for f in files if f.copy_status != "stored" or not store.has(f.sha256)]
    if len(files) != len(wanted) or missing:
        raise SendRefused("file_unavailable", names=", ".join(missing) or "?")
    plan = plan_delivery(ro, settings)
    with database.atomic():
        send = CustomerSend.create(
            ro=ro,
            sent_by=user_id,
            method=plan.method,
            destination=plan.destination,
            token_id=tokens.new_token_id(),
            expires_at=utcnow() + timedelta(days=settings.share_ttl_days),
            status="queued",
            status_at=utcnow(),
        )
        for f in files:  # recording order: the page shows them as they were taken
            CustomerSendFile.create(send=send, file=f)
    return send


# -- links ----------------------------------------------------------------------------------------


def token_for(send: CustomerSend, settings: Settings) -> str:
    return tokens.make_token(settings.signing_key(), send.token_id)


def page_url(send: CustomerSend, settings: Settings) -> str:
    return f"{settings.public_url}/c/{token_for(send, settings)}"


def file_ref(send: CustomerSend, item: CustomerSendFile, settings: Settings) -> str:
    return tokens.file_ref(settings.signing_key(), send.token_id, item.id)


def items_of(send: CustomerSend) -> list[tuple[CustomerSendFile, RoFile]]:
    query = (
        CustomerSendFile.select(CustomerSendFile, RoFile)
        .join(RoFile)
        .where(CustomerSendFile.send == send)
        .order_by(RoFile.shared_at, CustomerSendFile.id)
    )
    return [(item, item.file) for item in query]


def counts_of(send: CustomerSend) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, f in items_of(send):
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return counts


def stored_asset(f: RoFile) -> Asset:
    """The customer copy made at send time (or the original when none was needed). No conversion here."""
    rendition = MediaRendition.get_or_none(MediaRendition.source_sha256 == f.sha256)
    if rendition is not None:
        return Asset(rendition.sha256, rendition.mimetype, rendition.size, converted=rendition.sha256 != f.sha256)
    return Asset(f.sha256, normalise_mimetype(f.mimetype, f.name), f.size)


# -- delivery -------------------------------------------------------------------------------------


def deliver(send_id: int, settings: Settings, *, allow_mms: bool = True) -> CustomerSend:
    """Deliver a queued send once (claimed atomically); returns it with its new status.

    A send found "sending" is an attempt that died on the way or timed out waiting for Twilio's
    answer (the task queue runs this again only when the worker running it stopped, or when the
    attempt raised DeliveryUnsure); a send queued again by Retry after such an attempt carries
    `unsure_since`. Either way, if Twilio took that text, it is recorded as sent, never texted
    twice (twilio_gateway's certainty rules: only a failure Twilio answered or a connection
    refused is sure). Once the gateway has taken the message, recording it is left outside any
    catch-all: a database error there fails the task, whose next attempt asks the gateway."""
    claimed = (
        CustomerSend.update(status="sending", status_at=utcnow())
        .where((CustomerSend.id == send_id) & (CustomerSend.status == "queued") & (CustomerSend.revoked_at.is_null()))
        .execute()
    )
    send = CustomerSend.get_by_id(send_id)
    if claimed:
        unsure_since = send.unsure_since
    elif send.status != "sending" or send.revoked_at is not None:
        return send
    else:
        unsure_since = send.unsure_since or send.status_at or send.created_at
    if unsure_since is not None and send.method in ("sms", "mms"):
        sid = _sent_meanwhile(send, settings, unsure_since)
        if sid:
            log.info("send %s: the interrupted attempt had reached Twilio (%s)", send_id, sid)
            return _attempted(send, "sent", provider_id=sid)
    ro = RepairOrder.get_by_id(send.ro_id)
    store = open_store(settings)
    try:
        items = [(item, f, customer_version(store, f.sha256, f.mimetype)) for item, f in items_of(send)]
        counts = counts_of(send)
        media = _mms_media(send, items, settings) if send.method in ("sms", "mms") and allow_mms and settings.send_mms else []
        expires = long_date(send.expires_at, settings.shop_timezone, ro.language)
    except Exception:  # a bug or a full disk before anything went out: a failed, retryable send
        log.exception("delivery of send %s could not be prepared", send_id)
        return _attempted(send, "failed", error="internal")
    try:
        if send.method in ("sms", "mms"):
            receipt = twilio.send_message(
                settings,
                send.destination,
                texts.sms_body(ro, settings.shop_name, page_url(send, settings), counts),
                media,
                status_callback=f"{settings.public_url}/sms/status",
            )
        else:
            subject, text, values = texts.email_parts(
                ro, settings.shop_name, settings.shop_phone, page_url(send, settings), counts, expires
            )
            message_id = mailer.send_mail(
                settings, send.destination, subject, text, _email_html(values), from_name=settings.shop_name
            )
    except SmsError as exc:
        if exc.unsure:  # Twilio may have taken it: the next attempt (the queue's, or Retry's) asks first
            _unsure(send, unsure_since or send.status_at or utcnow(), f"sms_{exc.code}")
            raise DeliveryUnsure(exc.code) from None
        if exc.opted_out:
            record_opt_out(send.destination)
            return _attempted(send, "opted_out", error="opted_out")
        return _attempted(send, "failed", error=f"sms_{exc.code}" + (f":{exc.provider_code}" if exc.provider_code else ""))
    except MailError as exc:
        return _attempted(send, "failed", error=f"email_{exc.code}")
    if send.method in ("sms", "mms"):
        return _attempted(send, "sent", method="mms" if media else "sms", provider_id=receipt.sid)
    return _attempted(send, "sent", provider_id=message_id[:255])


def _sent_meanwhile(send: CustomerSend, settings: Settings, since: datetime) -> str | None:
    """The sid of this send's text that an attempt begun at `since` got to Twilio, if one did;
    texts of earlier attempts (already in its history) do not count. Raises DeliveryUnsure when
    Twilio cannot say: the queue retries, never guessing and texting twice."""
    known = {
        a.provider_id
        for a in CustomerSendAttempt.select(CustomerSendAttempt.provider_id).where(
            (CustomerSendAttempt.send == send.id) & CustomerSendAttempt.provider_id.is_null(False)
        )
    }
    marker = tokens.make_token(settings.signing_key(), send.token_id)
    try:
        return twilio.find_sent(settings, send.destination, marker, since, known=known)
    except SmsError as exc:
        raise DeliveryUnsure(exc.code) from None


class DeliveryUnsure(Exception):
    """An attempt may have reached the gateway and the gateway cannot say (yet): try later, asking first."""


def _unsure(send: CustomerSend, since: datetime, error: str) -> None:
    """This attempt may have reached Twilio: the send stays "sending", unsure since `since` (the
    earliest attempt that may have), and its history says so."""
    with database.atomic():
        CustomerSend.update(unsure_since=since).where(CustomerSend.id == send.id).execute()
        send.unsure_since = since
        _history(send, "attempt", status="unsure", error=error)


def give_up(send_id: int, error: str) -> CustomerSend | None:
    """The delivery could not be attempted to the end (the queue gave up): failed, so Retry is offered."""
    send = CustomerSend.get_or_none(CustomerSend.id == send_id)
    if send is None or send.status not in ("queued", "sending"):
        return send
    # An attempt under way when the queue gave up may have reached Twilio: a Retry asks first.
    unsure = (send.unsure_since or send.status_at or send.created_at) if send.status == "sending" else send.unsure_since
    return _attempted(send, "failed", error=error, unsure_since=unsure)


def reachable_by_twilio(public_url: str) -> bool:
    """Twilio fetches MMS media itself: only from a public https address, never from localhost."""
    parts = urlsplit(public_url)
    host = (parts.hostname or "").lower()
    private = host in ("localhost", "127.0.0.1", "::1", "0.0.0.0") or host.endswith((".local", ".localhost", ".internal"))
    return parts.scheme == "https" and bool(host) and not private


def _mms_media(send: CustomerSend, items: list[tuple[CustomerSendFile, RoFile, Asset]], settings: Settings) -> list[str]:
    if not reachable_by_twilio(settings.public_url):
        return []  # the link in the text still works from the customer's phone once PUBLIC_URL is right
    urls, total = [], 0
    for item, f, asset in items:
        if f.kind != PICTURE or asset.mimetype not in MMS_TYPES:
            continue
        if len(urls) >= MMS_MAX_MEDIA or total + asset.size > MMS_MAX_BYTES:
            continue
        total += asset.size
        urls.append(f"{page_url(send, settings)}/{file_ref(send, item, settings)}")
    return urls


def _email_html(values: dict) -> str:
    # Outside any Flask request (a background job): a plain autoescaping Jinja environment.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return env.get_template("customer_email.html").render(**values)


def _finish(send: CustomerSend, status: str, **fields: object) -> CustomerSend:
    """The send's new state (callers hold a transaction: its metrics event goes with it)."""
    values = {"status": status, "status_at": utcnow(), "error": None, **fields}
    CustomerSend.update(**values).where(CustomerSend.id == send.id).execute()
    for key, value in values.items():
        setattr(send, key, value)
    if status in ("sent", "delivered"):  # gone out: counted once, whichever of the two comes first
        _count_sent(send)
    if status in ("failed", "opted_out"):
        log.warning("send %s to the customer of RO %s: %s (%s)", send.id, send.ro_id, status, send.error)
    return send


def _count_sent(send: CustomerSend) -> None:
    files = CustomerSendFile.select().where(CustomerSendFile.send == send.id).count()
    metric_events.record(
        metric_events.SEND, str(send.id), at=send.status_at, user_id=send.sent_by, ro_id=send.ro_id, amount=files
    )


def _attempted(send: CustomerSend, status: str, **fields: object) -> CustomerSend:
    """The outcome of one delivery attempt: the send's new state, and a line in its history (together)."""
    fields.setdefault("unsure_since", None)  # the attempt knows how it ended
    with database.atomic():
        send = _finish(send, status, **fields)
        _history(send, "attempt")
    return send


def _history(send: CustomerSend, kind: str, *, status: str | None = None, error: str | None = None, applied: bool = True) -> None:
    CustomerSendAttempt.create(
        send=send.id,
        kind=kind,
        method=send.method,
        destination=send.destination or "",
        status=status or send.status,
        error=send.error if status is None else error,
        provider_id=send.provider_id,
        applied=applied,
    )


def history(send_id: int) -> list[CustomerSendAttempt]:
    """Every attempt and report of a send, oldest first."""
    return list(
        CustomerSendAttempt.select()
        .where(CustomerSendAttempt.send == send_id)
        .order_by(CustomerSendAttempt.at, CustomerSendAttempt.id)
    )


# -- buttons and reports --------------------------------------------------------------------------


def retry(send_id: int, user_id: str, settings: Settings) -> CustomerSend:
    """Queue a failed send again, by whatever way reaches the customer now. Raises SendRefused."""
    _require_permission(user_id, settings)
    send = CustomerSend.get_or_none(CustomerSend.id == send_id)
    if send is None:
        raise SendRefused("not_found")
    if send.revoked_at is not None:
        raise SendRefused("revoked")
    if send.status not in ("failed", "opted_out"):
        raise SendRefused("not_failed")
    plan = plan_delivery(RepairOrder.get_by_id(send.ro_id), settings)
    claimed = (
        CustomerSend.update(
            status="queued", status_at=utcnow(), method=plan.method, destination=plan.destination, error=None, provider_id=None
        )
        .where((CustomerSend.id == send.id) & (CustomerSend.status == send.status))
        .execute()
    )
    if not claimed:
        raise SendRefused("not_failed")  # pressed twice: the first press is already retrying
    return CustomerSend.get_by_id(send.id)


def revoke(send_id: int, user_id: str, settings: Settings) -> CustomerSend:
    """Turn the customer's link off for good. Anyone allowed to message customers may, now: the
    original sender too, unless they lost that permission since. Raises SendRefused."""
    _require_permission(user_id, settings)
    send = CustomerSend.get_or_none(CustomerSend.id == send_id)
    if send is None:
        raise SendRefused("not_found")
    CustomerSend.update(revoked_at=utcnow(), revoked_by=user_id).where(
        (CustomerSend.id == send.id) & (CustomerSend.revoked_at.is_null())
    ).execute()
    return CustomerSend.get_by_id(send.id)


def apply_twilio_status(params: Mapping[str, str]) -> CustomerSend | None:
    """Apply one Twilio status report; the send when its status changed, else None.

    Reports may arrive out of order: once delivered, failed or opted out, a send stays so (a late
    "sent" or "undelivered" never takes "delivered" back). Every report is kept in the history.
    """
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    new = _TWILIO_STATES.get((params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower())
    if not sid or new is None:
        return None
    send = CustomerSend.get_or_none(CustomerSend.provider_id == sid)
    if send is None:
        return None
    code = (params.get("ErrorCode") or "").strip()
    error = None
    if new == "failed":
        if code == str(twilio.OPTED_OUT_CODE):
            record_opt_out(send.destination)
            new, error = "opted_out", "opted_out"
        else:
            error = "sms_undelivered" + (f":{code}" if code.isdigit() else "")
    if send.status in FINAL or send.status == new or _RANK.get(new, 0) < _RANK.get(send.status, 0):
        _history(send, "report", status=new, error=error, applied=False)
        return None
    with database.atomic():
        send = _finish(send, new, error=error)
        _history(send, "report")
    return send
