"""Files listeners: intake of shared files, the Files modal (`/ro files`, the card's Files button),
sending to the customer, and the Revoke link / Retry buttons of the channel note.

Listeners parse and render; the rules live in media.intake and customers.send. Slow work (file
copies, transcoding, SMS/email) runs in media.background, never before Slack's 3-second ack.
The Slack side of intake (files.info, the notes about a file) is wired here: `intake_for()`.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from slack_bolt import App

from core.i18n import t
from core.services import Services
from customers import send as sends
from customers.permissions import can_message_customers
from customers.send import SendRefused
from handlers.commands import CommandContext, CommandRouter
from handlers.message_events import on_message
from handlers.views import files as views
from handlers.views import ro_card
from handlers.middleware import repair_order_from
from media import background, intake
from slackapi.errors import SlackError
from storage.models import CustomerSend, RepairOrder, RoFile, StaffUser

log = logging.getLogger(__name__)
_IGNORED_SUBTYPES = ("message_changed", "message_deleted", "bot_message")
# Redraws of one send's note are serialised (see show_note). Striped rather than one lock per send
# so the table never grows; two sends sharing a stripe only wait for each other's redraw.
_NOTE_LOCKS = tuple(threading.Lock() for _ in range(64))


def register(app: App, services: Services, router: CommandRouter) -> None:
    settings = services.settings

    # -- intake -----------------------------------------------------------------------------------
    @app.event("file_shared")
    def file_shared(event, context):
        ro = context.get("ro")
        file_id = event.get("file_id") or (event.get("file") or {}).get("id")
        if ro is not None and file_id:
            background.submit("intake", intake.ingest, intake_for(services), ro.id, file_id, user_id=event.get("user_id"))

    def files_in_messages(event: dict, ro: RepairOrder | None) -> None:
        """Slack mobile posts files as `message` events (subtype file_share, or just `files`)."""
        if ro is None or not event.get("files") or event.get("subtype") in _IGNORED_SUBTYPES:
            return
        for file in event["files"]:
            if isinstance(file, dict) and file.get("id"):
                background.submit("intake", intake.ingest, intake_for(services), ro.id, file["id"], user_id=event.get("user"),
                                  ts=event.get("ts"))

    on_message(app, files_in_messages)

    # -- the Files modal --------------------------------------------------------------------------
    def files_command(ctx: CommandContext) -> None:
        if not ctx.trigger_id:
            return
        try:
            services.slack.open_view(ctx.trigger_id, files_view(services, ctx.ro, views.FilesState(ctx.ro.id), ctx.user_id, ctx.locale))
        except SlackError as exc:
            log.warning("could not open the Files modal: %s", exc.raw_code)
            ctx.say("error.generic")

    router.add("files", files_command, needs_ro=True, aliases=("fichiers",))

    @app.action(ro_card.FILES_ACTION)
    def files_button(ack, body, action, context):
        ack()
        user_id = body["user"]["id"]
        ro = repair_order_from(action.get("value")) or context.get("ro")
        if ro is None:
            return
        locale = services.directory.locale(user_id)
        try:
            services.slack.open_view(body["trigger_id"], files_view(services, ro, views.FilesState(ro.id), user_id, locale))
        except SlackError as exc:  # an expired trigger: the person just presses again
            log.warning("could not open the Files modal: %s", exc.raw_code)

    def change_page(ack, body, action):
        ack()
        view = body["view"]
        state = views.FilesState.decode(view.get("private_metadata", ""))
        ro = repair_order_from(state.ro_id) if state else None
        if state is None or ro is None:
            return
        _merge_ticks(state, view)
        state.page = int(action.get("value") or 0)
        user_id = body["user"]["id"]
        services.slack.update_view(view["id"], files_view(services, ro, state, user_id, services.directory.locale(user_id)))

    app.action(views.PREV_ACTION)(change_page)
    app.action(views.NEXT_ACTION)(change_page)

    @app.action(views.PICK_ACTION)
    def ticked(ack):
        ack()  # ticks are read from the view state on page change and on submit

    @app.view(views.CALLBACK_ID)
    def submitted(ack, body, view):
        user_id = body["user"]["id"]
        locale = services.directory.locale(user_id)
        state = views.FilesState.decode(view.get("private_metadata", ""))
        ro = repair_order_from(state.ro_id) if state else None
        if state is None or ro is None:
            ack(**views.refusal(view, t("ro.not_found", locale), locale))
            return
        _merge_ticks(state, view)
        try:
            if state.overflow:
                raise SendRefused("too_many_files", max=sends.MAX_FILES_PER_SEND)
            send = sends.create_send(ro, user_id, sorted(state.selected), settings)
        except SendRefused as refused:
            ack(**views.refusal(view, t(f"send.refused.{refused.reason}", locale, **refused.detail), locale))
            return
        ack(response_action="update", view=views.sending_view(ro, send, views.counts_text(sends.counts_of(send), locale), locale))
        background.submit("deliver", deliver_and_announce, services, send.id)

    # -- the channel note's buttons ---------------------------------------------------------------
    @app.action(views.RETRY_ACTION)
    def retry_pressed(ack, body, action, respond):
        ack()
        user_id = body["user"]["id"]
        try:
            send = sends.retry(int(action.get("value") or 0), user_id, settings)
        except (SendRefused, ValueError) as refused:
            reason = refused.reason if isinstance(refused, SendRefused) else "not_found"
            respond(text=t(f"send.refused.{reason}", services.directory.locale(user_id)), response_type="ephemeral", replace_original=False)
            return
        # A retry goes as a plain text with the link: if MMS media was the problem, this gets through.
        background.submit("deliver", deliver_and_announce, services, send.id, allow_mms=False)

    @app.action(views.REVOKE_ACTION)
    def revoke_pressed(ack, body, action, respond):
        ack()
        user_id = body["user"]["id"]
        locale = services.directory.locale(user_id)
        try:
            send = sends.revoke(int(action.get("value") or 0), user_id, settings)
        except (SendRefused, ValueError) as refused:
            reason = refused.reason if isinstance(refused, SendRefused) else "not_found"
            respond(text=t(f"send.refused.{reason}", locale), response_type="ephemeral", replace_original=False)
            return
        show_note(services, send.id)
        respond(text=t("send.revoked", locale), response_type="ephemeral", replace_original=False)


# -- intake: the Slack side ------------------------------------------------------------------------

def intake_for(services: Services) -> intake.Intake:
    """media.intake wired to Slack: files.info, and the notes about a file in its thread."""

    def file_info(file_id: str) -> dict:
        try:
            return services.slack.file_info(file_id)
        except SlackError as exc:
            if exc.raw_code in ("file_not_found", "file_deleted"):
                raise intake.FileGone(file_id) from None
            raise intake.InfoUnavailable(exc.raw_code) from None

    return intake.Intake(services.settings, file_info, lambda row, what: announce_file(services, row, what))


def announce_file(services: Services, row: RoFile, what: str) -> None:
    """A one-line note about a file (too large, copies given up), in the uploader's language, in its thread."""
    ro = RepairOrder.get_or_none(RepairOrder.id == row.ro_id)
    if ro is None or not ro.channel_id:
        return
    locale = services.directory.locale(row.uploader_user_id or None)
    text = views.file_note(row, what, locale, limit_bytes=services.settings.max_file_mb * 1024 * 1024,
                           attempts=intake.MAX_COPY_ATTEMPTS)
    try:
        services.slack.post(ro.channel_id, text, thread_ts=row.share_ts)
    except SlackError as exc:
        log.warning("could not post the file note in RO %s: %s", ro.ro_number, exc.raw_code)


def retry_file_copies(services: Services) -> intake.RetryReport:
    """The scheduler's job: retry failed and stuck file copies."""
    return intake.retry_pending(intake_for(services))


# -- rendering ------------------------------------------------------------------------------------

def files_view(services: Services, ro: RepairOrder, state: views.FilesState, user_id: str, locale: str) -> dict:
    settings = services.settings
    files = list(RoFile.select().where(RoFile.ro == ro).order_by(RoFile.shared_at.desc(), RoFile.id.desc()))
    uploaders = {f.uploader_user_id for f in files}
    names = {u.slack_user_id: u.real_name or u.name for u in StaffUser.select().where(StaffUser.slack_user_id.in_(list(uploaders)))
             if u.real_name or u.name}
    try:
        plan = sends.plan_delivery(ro, settings)
        how = t(f"files.how.{plan.method}", locale, destination=views.phone_display(plan.destination) if plan.method == "sms" else plan.destination)
        can_send = True
    except SendRefused as refused:
        how, can_send = "⚠️ " + t(f"send.refused.{refused.reason}", locale, **refused.detail), False
    return views.files_modal(ro, files, state, locale=locale, tz=settings.shop_timezone, names=names, how=how,
                             can_send=can_send, may_send=can_message_customers(user_id, settings))


def _merge_ticks(state: views.FilesState, view: dict) -> None:
    """Fold the current page's ticks into the selection carried between pages."""
    block_id = views.page_block_id(state.page)
    block = next((b for b in view.get("blocks", []) if b.get("block_id") == block_id), None)
    if block is None:
        return
    on_page = {int(o["value"]) for o in block["element"].get("options", [])}
    picked = ((view.get("state") or {}).get("values") or {}).get(block_id, {}).get(views.PICK_ACTION) or {}
    ticked = {int(o["value"]) for o in picked.get("selected_options") or []}
    state.selected = (state.selected - on_page) | (ticked & on_page)


# -- delivery and the channel note -----------------------------------------------------------------

def deliver_and_announce(services: Services, send_id: int, allow_mms: bool = True) -> None:
    """Background: show "sending…" in the channel, deliver, then show the outcome (and tell the sender)."""
    show_note(services, send_id)
    send = sends.deliver(send_id, services.settings, allow_mms=allow_mms)
    show_note(services, send_id)
    tell_sender_if_failed(services, send)


def on_send_status_changed(services: Services) -> Callable[[int], None]:
    """For the Twilio status webhook: refresh the note (and tell the sender) in the background."""

    def changed(send_id: int) -> None:
        def job() -> None:
            show_note(services, send_id)
            tell_sender_if_failed(services, CustomerSend.get_by_id(send_id))

        background.submit("send-status", job)

    return changed


def show_note(services: Services, send_id: int) -> None:
    """Post the send's note in the RO channel, or update it in place, showing the send as stored now.

    The delivery, Twilio's status reports and Revoke all redraw the note from their own threads,
    and nothing else orders their Slack calls: a "sent" redraw reaching Slack after "delivered"
    would stay there for good. So each redraw holds the send's lock from reading the send to
    Slack's answer: the last one to reach Slack read the latest state, and two first draws cannot
    both post a note. The lock is per process: across processes the last writer wins, which we
    accept because each writer reads the send inside its own critical section, never a caller's
    copy, so only redraws overlapping within one Slack round trip can leave an older state showing.
    """
    with _NOTE_LOCKS[send_id % len(_NOTE_LOCKS)]:
        send = CustomerSend.get_or_none(CustomerSend.id == send_id)
        if send is not None:
            _draw_note(services, send)


def _draw_note(services: Services, send: CustomerSend) -> None:
    ro = RepairOrder.get_by_id(send.ro_id)
    if not ro.channel_id:
        return
    locale = services.directory.locale(send.sent_by)
    try:
        sends.plan_delivery(ro, services.settings)
        can_retry = True
    except SendRefused:
        can_retry = False
    text, blocks = views.send_note(send, ro, sends.counts_of(send), locale=locale, tz=services.settings.shop_timezone, can_retry=can_retry)
    try:
        if send.note_ts:
            services.slack.update(ro.channel_id, send.note_ts, text, blocks)
        else:
            posted = services.slack.post(ro.channel_id, text, blocks)
            # Only the first note is kept: another process may have posted one meanwhile.
            kept = CustomerSend.update(note_ts=posted.get("ts")).where(
                (CustomerSend.id == send.id) & CustomerSend.note_ts.is_null()).execute()
            if not kept:
                log.warning("send %s got a second note in RO %s", send.id, ro.ro_number)
    except SlackError as exc:
        log.warning("could not show the send note in RO %s: %s", ro.ro_number, exc.raw_code)


def tell_sender_if_failed(services: Services, send: CustomerSend) -> None:
    if send.status not in ("failed", "opted_out"):
        return
    ro = RepairOrder.get_by_id(send.ro_id)
    locale = services.directory.locale(send.sent_by)
    key = "send.told.opted_out" if send.status == "opted_out" else "send.told.failed"
    text = t(key, locale, customer=ro.customer_name or "—", error=views.error_text(send.error, locale))
    try:
        if ro.channel_id:
            services.slack.post_ephemeral(ro.channel_id, send.sent_by, text)
            return
    except SlackError as exc:
        log.info("ephemeral to the sender failed (%s): sending a DM", exc.raw_code)
    try:
        services.slack.post(send.sent_by, text)
    except SlackError as exc:
        log.warning("could not tell the sender of send %s: %s", send.id, exc.raw_code)
