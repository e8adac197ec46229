"""The customer conversation, the Slack side: texts in, replies out, in the RO's thread.

In:  Twilio's webhook (`receive`) stores the message's work as a task before it answers (within
     Twilio's wait: one database write), keyed by MessageSid, so a redelivered webhook is
     processed once, in any process. The task "sms.inbound" records the text, applies consent
     keywords, finds the RO, posts the text in the RO's "Customer conversation" thread (made on
     the first text; a thread posted but not recorded is found again, not posted twice), brings in
     the MMS media (stored, uploaded into the thread, listed in Files as the customer's), counts it
     as unread and DMs who asked to be told at once. A text no RO knows waits for an admin.
Out: a staff reply in that thread (`on_message`) is checked (permission, consent, length), recorded
     and texted by the task "sms.reply"; a note under the reply shows queued → sent → delivered,
     or the failure with Retry. A reply interrupted after Twilio took it is not texted twice.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from twilio.twiml.messaging_response import MessagingResponse

from blocks import conversation_view as views
from blocks import kit
from blocks.files_view import error_text
from core.i18n import t
from core.refusals import Refusal
from customers import conversation_rules as rules
from customers import customer_texts, mms_media, sms_rules, twilio_gateway
from customers.consent_rules import is_opted_out, record_opt_out
from customers.twilio_gateway import SmsError
from media.blob_store import open_store
from media.file_kinds import kind_of, normalise_mimetype
from people.mention_rules import human_author
from people.unread_rules import record_activity
from slackapi.errors import SlackError, SlackErrorCode
from slackapi.services import Services
from storage import leases
from storage.models import Participant, RepairOrder, RoFile, SmsMessage, StaffUser, TaskRecord, utcnow
from storage.values import CUSTOMER, CUSTOMER_FILE, CUSTOMER_MESSAGE
from taskqueue.queue import task

log = logging.getLogger(__name__)
THREAD_LEASE_TTL = timedelta(seconds=60)
REPOST_FOR = timedelta(days=1)  # a text whose post gave up is tried again by the timed job this long
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/heic": "heic",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/3gpp": "3gp",
    "application/pdf": "pdf",
}


# -- in -------------------------------------------------------------------------------------------


def receive(services: Services, params: dict[str, str]) -> str:
    """Twilio's messaging webhook: queue the text's processing once; the TwiML to answer (a HELP
    answer, or the confirmation of a French keyword Twilio does not know). Raises rules.BadWebhook."""
    inbound = rules.read_inbound(params)
    _, created = services.tasks.enqueue_once("sms.inbound", params, key=f"sms-in:{inbound.sid}", lane=f"sms:{inbound.phone}")
    reply = MessagingResponse()
    if created:
        text = _keyword_answer(inbound.body, services)
        if text:
            reply.message(text)
    return str(reply)


def _keyword_answer(body: str, services: Services) -> str | None:
    kind, word = sms_rules.keyword(body)
    settings = services.settings
    if kind == sms_rules.HELP:
        return customer_texts.help_text(settings.shop_name, settings.shop_phone)
    if kind in (sms_rules.OPT_OUT, sms_rules.OPT_IN) and word not in sms_rules.TWILIO_ANSWERS:
        return customer_texts.consent_confirmation("opted_out" if kind == sms_rules.OPT_OUT else "opted_in", settings.shop_name)
    return None


def _post_gave_up(message_ids: list[int], error: str) -> None:
    """Posting kept failing (a minute of Slack trouble, a channel the sync is still making). What a
    service advisor expects: the customer's text is never lost, nor moved away from their RO. So a
    text keeps its RO, and nothing already done is undone (a post made stays made, its ts kept); it
    stays "received" with the error, shown to admins on App Home as not posted yet, and the timed
    job `repost_waiting` posts it when Slack answers again (an admin may also attach it again, to
    post it at once or move it). Only a text that never had an RO goes to the unmatched list."""
    waiting = SmsMessage.id.in_(message_ids) & (SmsMessage.status == "received")
    SmsMessage.update(error=error[:255]).where(waiting & SmsMessage.ro.is_null(False)).execute()
    SmsMessage.update(status="unmatched", error=error[:255], status_at=utcnow()).where(
        waiting & SmsMessage.ro.is_null()
    ).execute()


def _inbound_gave_up(services: Services, params: dict, *, error: str) -> None:
    sid = params.get("MessageSid") or params.get("SmsSid")
    _post_gave_up([m.id for m in SmsMessage.select(SmsMessage.id).where(SmsMessage.provider_sid == sid)], error)


@task("sms.inbound", max_attempts=6, on_give_up=_inbound_gave_up)
def process_inbound(services: Services, params: dict) -> None:
    message = rules.record_inbound(rules.read_inbound(params))
    if message.status in ("posted", "unmatched", "dismissed"):
        return
    rules.apply_consent(message)
    ro, others = (RepairOrder.get_or_none(RepairOrder.id == message.ro_id), []) if message.ro_id else rules.match(message.phone)
    if ro is None:
        rules.set_status(message, "unmatched")
        log.info("a text from %s matches no repair order: waiting for an admin", message.phone)
        return
    if not message.ro_id:
        rules.assign(message, ro)
    post(services, message, ro, others)


def _attached_gave_up(services: Services, message_ids: list[int], *, error: str) -> None:
    _post_gave_up(message_ids, error)


def queue_post(services: Services, message_ids: list[int], phone: str) -> None:
    """Post texts that have an RO in its conversation: a new task each time (a task that gave up
    is never reused, so an admin's second attach or a later repost does run)."""
    prefix = f"sms-post:{message_ids[0]}:"
    attempt = TaskRecord.select().where(TaskRecord.key.startswith(prefix)).count()
    services.tasks.enqueue("sms.post", message_ids, key=f"{prefix}{attempt}", lane=f"sms:{phone}")


def repost_waiting(services: Services) -> int:
    """The timed job: texts whose post gave up (they keep their RO) are posted again, those of the
    last REPOST_FOR; older ones stay listed for admins. How many were queued."""
    waiting = list(
        SmsMessage.select().where(
            (SmsMessage.direction == "in")
            & (SmsMessage.status == "received")
            & SmsMessage.ro.is_null(False)
            & SmsMessage.error.is_null(False)
            & (SmsMessage.created_at > utcnow() - REPOST_FOR)
        )
    )
    for message in waiting:
        queue_post(services, [message.id], message.phone)
    return len(waiting)


@task("sms.post", max_attempts=6, on_give_up=_attached_gave_up)
def post_attached(services: Services, message_ids: list[int]) -> None:
    """Texts an admin attached to an RO: posted in its conversation like any other, oldest first."""
    for message_id in message_ids:
        message = SmsMessage.get_or_none(SmsMessage.id == message_id)
        if message is not None and message.status == "received" and message.ro_id:
            post(services, message, RepairOrder.get_by_id(message.ro_id), [])


def post(services: Services, message: SmsMessage, ro: RepairOrder, others: list[RepairOrder]) -> None:
    """Post the text (and its media) in the RO's conversation thread, once; then tell who wants to know."""
    if not ro.channel_id:
        raise RuntimeError(f"RO {ro.ro_number} has no channel yet")  # retried; the sync is making it
    thread_ts = ensure_thread(services, ro)
    locale = _locale(services, ro)
    tz = services.settings.shop_timezone
    if not message.slack_ts:
        consent = {"opt_out": "opted_out", "opt_in": "opted_in"}.get(message.keyword or "")
        if consent == "opted_in" and is_opted_out(message.phone):
            consent = None
        text, blocks = views.inbound(message, ro, others, locale=locale, tz=tz, consent=consent)
        found = _posted_before(services, ro, thread_ts, views.inbound_block_id(message.provider_sid or str(message.id)))
        ts = found or services.slack.post(ro.channel_id, text, blocks, thread_ts=thread_ts)["ts"]
        SmsMessage.update(slack_ts=ts).where(SmsMessage.id == message.id).execute()
        message.slack_ts = ts
    for n, (url, content_type) in enumerate(rules.media_of(message)):
        _bring_media(services, message, ro, thread_ts, n, url, content_type, locale)
    if record_activity(ro.id, CUSTOMER, CUSTOMER_MESSAGE, (message.provider_sid or str(message.id))[:32]):
        _notify(services, ro, message, thread_ts)
    rules.set_status(message, "posted", error=None)


def ensure_thread(services: Services, ro: RepairOrder) -> str:
    """The ts of the RO's conversation thread, made on the first text. One maker at a time per RO
    (a lease); a thread posted but not recorded (a crash in between) is found in the history."""
    current = RepairOrder.get_by_id(ro.id)
    if current.conversation_ts:
        return current.conversation_ts
    with leases.held(f"conversation:{ro.id}", THREAD_LEASE_TTL):
        current = RepairOrder.get_by_id(ro.id)
        if current.conversation_ts:
            return current.conversation_ts
        found = next(
            (
                m["ts"]
                for m in services.slack.history(ro.channel_id, limit=100)
                if m.get("user") == services.slack.bot_user_id
                and (m.get("blocks") or [{}])[0].get("block_id") == views.ROOT_BLOCK
            ),
            None,
        )
        ts = found or services.slack.post(ro.channel_id, *views.thread_root(ro, _locale(services, ro)))["ts"]
        RepairOrder.update(conversation_ts=ts, slack_dirty=True, updated_at=utcnow()).where(RepairOrder.id == ro.id).execute()
    services.tasks.enqueue("ro.publish", ro.id, None, lane=f"ro:{ro.id}")  # the card gets its "View conversation" button
    return ts


def _posted_before(services: Services, ro: RepairOrder, thread_ts: str, block_id: str) -> str | None:
    """A post of ours in the thread carrying `block_id` (made before a crash, not recorded)."""
    try:
        replies = services.slack.replies(ro.channel_id, thread_ts)
    except SlackError as exc:
        if exc.raw_code == "thread_not_found":
            return None
        raise
    return next((m["ts"] for m in replies if any(b.get("block_id") == block_id for b in m.get("blocks") or [])), None)


def _bring_media(
    services: Services, message: SmsMessage, ro: RepairOrder, thread_ts: str, n: int, url: str, content_type: str, locale: str
) -> None:
    ref = f"{message.provider_sid}:{n}"[:80]
    if RoFile.select().where(RoFile.origin_ref == ref).exists():
        return
    settings = services.settings
    mimetype = normalise_mimetype(content_type)
    name = f"{ro.ro_number}-{(message.provider_sid or '')[-8:]}-{n + 1}.{_EXTENSIONS.get(mimetype, 'bin')}"
    store = open_store(settings)
    try:
        fetched = mms_media.fetch(url, settings, store, settings.mms_media_max_mb * 1024 * 1024)
    except mms_media.MediaFailed as failed:
        RoFile.create(
            ro=ro.id,
            slack_file_id=f"sms{message.id}m{n}"[:32],
            uploader_user_id=CUSTOMER,
            origin=CUSTOMER_FILE,
            origin_ref=ref,
            kind=kind_of(mimetype, name),
            name=name,
            mimetype=mimetype,
            copy_status="failed",
            last_error=str(failed)[:255],
            copy_attempts=1,
            share_ts=message.slack_ts,
        )
        services.slack.post(ro.channel_id, views.media_note(name, str(failed), locale), thread_ts=thread_ts)
        return
    mimetype = normalise_mimetype(fetched.content_type if fetched.content_type != "application/octet-stream" else content_type)
    uploaded = services.slack.upload(ro.channel_id, store.read_bytes(fetched.sha256), name, thread_ts=thread_ts)
    RoFile.create(
        ro=ro.id,
        slack_file_id=str(uploaded.get("id") or f"sms{message.id}m{n}")[:32],
        uploader_user_id=CUSTOMER,
        origin=CUSTOMER_FILE,
        origin_ref=ref,
        kind=kind_of(mimetype, name),
        name=name,
        mimetype=mimetype,
        size=fetched.size,
        sha256=fetched.sha256,
        copy_status="stored",
        permalink=(uploaded.get("permalink") or None),
        share_ts=message.slack_ts,
    )


def _notify(services: Services, ro: RepairOrder, message: SmsMessage, thread_ts: str) -> None:
    """A DM at once to the RO's owner and participants who asked for it ("new customer text")."""
    people = {
        p.user_id for p in Participant.select(Participant.user_id).where((Participant.ro == ro.id) & (Participant.active == True))
    }
    if ro.owner_user_id:
        people.add(ro.owner_user_id)
    wanting = [
        u.slack_user_id
        for u in StaffUser.select().where(
            StaffUser.slack_user_id.in_(sorted(people)) & (StaffUser.notify_customer_messages == True) & ~StaffUser.deleted
        )
    ]
    url = services.slack.permalink(ro.channel_id, message.slack_ts) if wanting and message.slack_ts else None
    for user_id in wanting:
        try:
            services.slack.post(user_id, *views.customer_message_dm(ro, message, url, services.directory.locale(user_id)))
        except SlackError as exc:
            log.warning("customer-text DM to %s failed: %s", user_id, exc.raw_code)


def _locale(services: Services, ro: RepairOrder) -> str:
    # The thread speaks the advisor's language, like the card.
    return services.directory.locale(ro.owner_user_id) if ro.owner_user_id else "en-US"


def thread_url(services: Services, ro: RepairOrder) -> str | None:
    return services.slack.permalink(ro.channel_id, ro.conversation_ts) if ro.channel_id and ro.conversation_ts else None


# -- unmatched texts --------------------------------------------------------------------------------


def attach(services: Services, message_id: int, ro_number: str, admin: str) -> RepairOrder:
    """Attach an unmatched text (and the others from its number) to the RO `ro_number`. Raises Refusal."""
    ro = RepairOrder.select().where(RepairOrder.ro_number == ro_number.strip()).order_by(RepairOrder.id.desc()).first()
    if ro is None:
        raise Refusal("conversation.attach.not_found", number=ro_number.strip())
    moved = rules.attach(message_id, ro, admin, services.settings)
    queue_post(services, [m.id for m in moved], moved[0].phone)
    return ro


def dismiss(services: Services, message_id: int, admin: str) -> None:
    """An admin dismisses an unmatched text, or one not posted yet (kept, no longer listed). Raises Refusal."""
    rules.dismiss(message_id, admin, services.settings)


# -- out ------------------------------------------------------------------------------------------


def on_message(services: Services, event: dict, ro: RepairOrder | None) -> None:
    """A message in an RO channel: a staff reply in the conversation thread is texted; an edit or a
    deletion of a reply already texted is not, and its author is told."""
    if ro is None or not ro.conversation_ts:
        return
    subtype = event.get("subtype")
    if subtype == "message_changed":
        _edited(services, ro, event.get("message") or {}, "conversation.edited")
        return
    if subtype == "message_deleted":
        _edited(services, ro, event.get("previous_message") or {}, "conversation.deleted")
        return
    if subtype not in (None, "thread_broadcast", "file_share") or event.get("thread_ts") != ro.conversation_ts:
        return
    author = human_author(event, services.slack.bot_user_id)
    ts = str(event.get("ts") or "")
    text = str(event.get("text") or "")
    if author is None or not ts or sms_rules.is_internal(text):
        return
    try:
        if subtype == "file_share" or event.get("files"):
            # Replies go out as SMS text only (no MMS from the thread): a photo, its caption with it,
            # is refused out loud rather than texted in part or dropped; Files › Send shares photos.
            raise rules.ReplyRefused("files")
        reply = rules.create_reply(ro, author, _plain(services, text), ts, services.settings)
    except rules.ReplyRefused as refused:
        services.slack.tell(
            author, ro.channel_id, kit.refusal_text(refused, services.directory.locale(author)), thread_ts=ro.conversation_ts
        )
        return
    services.tasks.enqueue("sms.reply", reply.id, key=f"sms-reply:{reply.id}:0", lane=f"sms-out:{reply.id}")


def _plain(services: Services, text: str) -> str:
    """Slack message text as the customer should read it (rules.plain_text): a mention is the
    person's name from the staff directory, a channel its name."""

    def user_name(user_id: str) -> str | None:
        if not re.fullmatch(r"[UW][A-Z0-9]+", user_id):
            return None
        person = services.directory.get(user_id)
        return (person.real_name or person.name or "").strip() or None

    def channel_name(channel_id: str) -> str | None:
        known = RepairOrder.get_or_none(RepairOrder.channel_id == channel_id)
        return known.channel_name if known else None

    return rules.plain_text(text, user_name, channel_name)


def _edited(services: Services, ro: RepairOrder, message: dict, key: str) -> None:
    ts = str(message.get("ts") or "")
    reply = rules.reply_of(ro, ts) if ts else None
    if reply is None or reply.status in ("refused",) or not reply.author_user_id:
        return
    services.slack.tell(
        reply.author_user_id, ro.channel_id, t(key, services.directory.locale(reply.author_user_id)), thread_ts=ro.conversation_ts
    )


def retry(services: Services, message_id: int, user_id: str) -> None:
    reply = rules.retry_reply(message_id, user_id, services.settings)
    attempt = TaskRecord.select().where(TaskRecord.key.startswith(f"sms-reply:{reply.id}:")).count()
    services.tasks.enqueue("sms.reply", reply.id, key=f"sms-reply:{reply.id}:{attempt}", lane=f"sms-out:{reply.id}")


def _reply_gave_up(services: Services, message_id: int, *, error: str) -> None:
    message = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if message is not None and message.status in ("queued", "sending"):
        # An attempt under way when the queue gave up may have reached Twilio: a Retry asks first.
        unsure = (message.unsure_since or message.status_at) if message.status == "sending" else message.unsure_since
        rules.set_status(message, "failed", error="sms_unreachable", unsure_since=unsure)
        redraw_note(services, message_id)
        _tell_author(services, message)


class ReplyUnsure(Exception):
    """A reply's attempt may have reached Twilio and Twilio cannot say (yet): try later, asking first."""


@task("sms.reply", max_attempts=6, on_give_up=_reply_gave_up)
def deliver_reply(services: Services, message_id: int) -> None:
    """Text one staff reply to the customer, once.

    The certainty rules of Files sends (customers.twilio_gateway): only a failure Twilio answered,
    or a connection refused, is sure. A reply found "sending" is an attempt that died on the way or
    timed out waiting for Twilio's answer (it raised ReplyUnsure, so the queue runs it again); one
    queued again by Retry after such an attempt carries `unsure_since`. Either way Twilio is asked
    first (this reply's exact body, not a sid any reply already has): if it took the text, the
    reply is sent, never texted twice."""
    message = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if message is None:
        return
    settings = services.settings
    claimed = (
        SmsMessage.update(status="sending", status_at=utcnow())
        .where((SmsMessage.id == message.id) & (SmsMessage.status == "queued"))
        .execute()
    )
    message = SmsMessage.get_by_id(message.id)
    if claimed:
        unsure_since = message.unsure_since
    elif message.status != "sending":
        return
    else:
        unsure_since = message.unsure_since or message.status_at
    if unsure_since is not None:
        sid = _reply_sent_meanwhile(settings, message, unsure_since)
        if sid:
            log.info("reply %s: an earlier attempt had reached Twilio (%s)", message.id, sid)
            _reply_sent(message, sid)
            redraw_note(services, message.id)
            return
    redraw_note(services, message.id)
    if is_opted_out(message.phone):
        rules.set_status(message, "failed", error="opted_out", unsure_since=None)
    else:
        try:
            receipt = twilio_gateway.send_message(
                settings, message.phone, message.body, status_callback=f"{settings.public_url}/sms/status"
            )
        except SmsError as exc:
            if exc.unsure:  # Twilio may have taken it: stays "sending", the next attempt asks first
                since = unsure_since or message.status_at
                SmsMessage.update(unsure_since=since).where(SmsMessage.id == message.id).execute()
                raise ReplyUnsure(exc.code) from None
            if exc.opted_out:
                record_opt_out(message.phone)
            error = "opted_out" if exc.opted_out else f"sms_{exc.code}" + (f":{exc.provider_code}" if exc.provider_code else "")
            rules.set_status(message, "failed", error=error, unsure_since=None)
        else:
            _reply_sent(message, receipt.sid)
    redraw_note(services, message.id)
    _tell_author(services, message)


def _reply_sent_meanwhile(settings, message: SmsMessage, since) -> str | None:
    """The sid of this reply's text that an attempt begun at `since` got to Twilio, if one did:
    exactly its body, and not a sid any reply to this number already has (an earlier identical
    "Ok" is another reply's; this reply's earlier attempts are in its own history). Raises
    ReplyUnsure when Twilio cannot say: the queue tries again, never guessing."""
    known: set[str] = set()
    for other in SmsMessage.select(SmsMessage.provider_sid, SmsMessage.earlier_sids).where(
        (SmsMessage.phone == message.phone) & (SmsMessage.direction == "out")
    ):
        known.update(([other.provider_sid] if other.provider_sid else []) + (other.earlier_sids or "").split())
    try:
        return twilio_gateway.find_sent(settings, message.phone, None, since, known, body=message.body)
    except SmsError as exc:
        raise ReplyUnsure(exc.code) from None


def _reply_sent(message: SmsMessage, sid: str) -> None:
    """Recorded as sent as `sid`; the sid of an earlier attempt (reported undelivered) stays in its history."""
    earlier = (message.earlier_sids or "").split()
    if message.provider_sid and message.provider_sid != sid and message.provider_sid not in earlier:
        earlier.append(message.provider_sid)
    rules.set_status(message, "sent", provider_sid=sid, error=None, unsure_since=None, earlier_sids=" ".join(earlier))


def status_changed(services: Services, message_id: int) -> None:
    """Twilio reported a new status for a reply: redraw its note (the webhook does not wait for Slack)."""
    redraw_note(services, message_id)
    message = SmsMessage.get_by_id(message_id)
    if message.status == "failed":
        services.tasks.enqueue("sms.tell_author", message_id)


@task("sms.tell_author")
def tell_author_task(services: Services, message_id: int) -> None:
    message = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if message is not None:
        _tell_author(services, message)


def _tell_author(services: Services, message: SmsMessage) -> None:
    if message.status != "failed" or not message.author_user_id or not message.ro_id:
        return
    ro = RepairOrder.get_by_id(message.ro_id)
    locale = services.directory.locale(message.author_user_id)
    services.slack.tell(
        message.author_user_id,
        ro.channel_id,
        t("conversation.reply.failed", locale, error=error_text(message.error, locale)),
        thread_ts=ro.conversation_ts,
    )


def redraw_note(services: Services, message_id: int) -> None:
    services.tasks.enqueue("sms.note", message_id, lane=f"sms-note:{message_id}")


@task("sms.note")
def draw_note(services: Services, message_id: int) -> None:
    """Post the note under a reply, or update it, showing the reply as stored now."""
    message = SmsMessage.get_or_none(SmsMessage.id == message_id)
    if message is None or not message.ro_id:
        return
    ro = RepairOrder.get_by_id(message.ro_id)
    if not ro.channel_id or not ro.conversation_ts:
        return
    locale = services.directory.locale(message.author_user_id) if message.author_user_id else _locale(services, ro)
    can_retry = not is_opted_out(message.phone) and services.settings.sms_enabled
    text, blocks = views.reply_note(message, ro, locale, can_retry=can_retry)
    try:
        if message.note_ts:
            services.slack.update(ro.channel_id, message.note_ts, text, blocks)
            return
        posted = services.slack.post(ro.channel_id, text, blocks, thread_ts=ro.conversation_ts)
    except SlackError as exc:
        if exc.code in (SlackErrorCode.IS_ARCHIVED, SlackErrorCode.IS_INACTIVE, SlackErrorCode.CHANNEL_NOT_FOUND):
            return
        raise
    SmsMessage.update(note_ts=posted.get("ts")).where((SmsMessage.id == message.id) & SmsMessage.note_ts.is_null()).execute()
