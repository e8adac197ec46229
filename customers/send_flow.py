"""Sending files to the customer, the Slack side: the send, its note in the RO channel, the buttons.

1. `start_send` records the send (customers.send_rules checks permission, files and how to reach
   the customer) and queues "send.deliver" before Slack gets its ack.
2. "send.deliver" (a task) delivers and redraws the channel note.
3. The note is redrawn by "send.note" tasks in the send's own lane: one at a time, each reading
   the send from the database as it is then, so the last redraw to reach Slack shows the latest
   state (a "sent" drawn after "delivered" cannot stay), and two first draws cannot post two notes.
4. Retry and Revoke check the permission of whoever presses them (send_rules), then queue work.
"""

from __future__ import annotations

import logging

from blocks import files_view as views
from blocks import kit
from core.i18n import t
from customers import send_rules as rules
from customers.send_rules import SendRefused
from slackapi.errors import SlackError
from slackapi.services import Services
from storage.db import database
from storage.models import CustomerSend, RepairOrder
from taskqueue.queue import task

log = logging.getLogger(__name__)


def start_send(services: Services, ro: RepairOrder, user_id: str, file_ids: list[int]) -> CustomerSend:
    """Record the send and queue its delivery. Raises SendRefused (nothing was sent)."""
    with database.atomic():  # the send and its delivery task together, or neither
        send = rules.create_send(ro, user_id, file_ids, services.settings)
        services.tasks.enqueue("send.deliver", send.id, True, lane=f"deliver:{send.id}")
    return send


def retry(services: Services, send_id: int, user_id: str) -> CustomerSend:
    """Queue a failed send again. Raises SendRefused."""
    with database.atomic():  # "queued" again only with the task that delivers it
        send = rules.retry(send_id, user_id, services.settings)
        # A retry goes as a plain text with the link: if MMS media was the problem, this gets through.
        services.tasks.enqueue("send.deliver", send.id, False, lane=f"deliver:{send.id}")
    return send


def revoke(services: Services, send_id: int, user_id: str) -> CustomerSend:
    """Turn the customer's link off and redraw the note. Raises SendRefused."""
    send = rules.revoke(send_id, user_id, services.settings)
    redraw_note(services, send.id)
    return send


def status_changed(services: Services, send_id: int) -> None:
    """Twilio reported a new delivery status (the webhook): redraw the note, tell the sender if it failed."""
    services.tasks.enqueue("send.status_changed", send_id)


def redraw_note(services: Services, send_id: int) -> None:
    services.tasks.enqueue("send.note", send_id, lane=f"note:{send_id}")


def _gave_up(services: Services, send_id: int, allow_mms: bool = True, *, error: str) -> None:
    send = rules.give_up(send_id, "sms_unreachable" if "DeliveryUnsure" in error else "internal")
    if send is not None:
        redraw_note(services, send_id)
        tell_sender_if_failed(services, send)


@task("send.deliver", max_attempts=6, on_give_up=_gave_up)
def deliver_and_announce(services: Services, send_id: int, allow_mms: bool = True) -> None:
    """Show "sending…" in the channel, deliver, then show the outcome (and tell the sender)."""
    redraw_note(services, send_id)
    send = rules.deliver(send_id, services.settings, allow_mms=allow_mms)
    redraw_note(services, send_id)
    tell_sender_if_failed(services, send)


@task("send.status_changed")
def announce_status(services: Services, send_id: int) -> None:
    redraw_note(services, send_id)
    send = CustomerSend.get_or_none(CustomerSend.id == send_id)
    if send is not None:
        tell_sender_if_failed(services, send)


@task("send.note")
def draw_note(services: Services, send_id: int) -> None:
    """Post the send's note in the RO channel, or update it in place, showing the send as stored now."""
    send = CustomerSend.get_or_none(CustomerSend.id == send_id)
    if send is None:
        return
    ro = RepairOrder.get_by_id(send.ro_id)
    if not ro.channel_id:
        return
    locale = services.directory.locale(send.sent_by)
    try:
        rules.plan_delivery(ro, services.settings)
        can_retry = True
    except SendRefused:
        can_retry = False
    text, blocks = views.send_note(
        send, ro, rules.counts_of(send), locale=locale, tz=services.settings.shop_timezone, can_retry=can_retry
    )
    try:
        if send.note_ts:
            services.slack.update(ro.channel_id, send.note_ts, text, blocks)
            return
        posted = services.slack.post(ro.channel_id, text, blocks)
    except SlackError as exc:
        if exc.raw_code in ("is_archived", "is_inactive", "channel_not_found", "message_not_found"):
            log.info("send note in RO %s not shown: %s", ro.ro_number, exc.raw_code)
            return
        raise  # Slack down or rate-limited: the queue tries the redraw again
    CustomerSend.update(note_ts=posted.get("ts")).where((CustomerSend.id == send.id) & CustomerSend.note_ts.is_null()).execute()


def tell_sender_if_failed(services: Services, send: CustomerSend) -> None:
    if send.status not in ("failed", "opted_out"):
        return
    ro = RepairOrder.get_by_id(send.ro_id)
    locale = services.directory.locale(send.sent_by)
    key = "send.told.opted_out" if send.status == "opted_out" else "send.told.failed"
    text = t(key, locale, customer=kit.escape(ro.customer_name or "—"), error=views.error_text(send.error, locale))
    services.slack.tell(send.sent_by, ro.channel_id, text)
