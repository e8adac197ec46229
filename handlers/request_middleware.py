"""Bolt middleware run once per request: Events API de-duplication, then "what is this about".

`resolve_request` reads the state Slack sends back (private_metadata, button values, row block
ids) through the one codec, once, and puts in the context:
- `state`: the view's codec record (FilesState, HomeState, AdminState…), or None;
- `value`: the pressed button's codec record (RoRef, SendRef, PageRef…), or None;
- `ro`: the RO the request is about: the one the value or state names, else the RO of the channel.
A value we did not write (tampered, from an older version) or naming an RO that is gone is
refused here with a clear answer (ephemeral for buttons, the modal replaced for submissions),
so listeners only ever see well-formed state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from peewee import IntegrityError
from slack_bolt import BoltResponse
from slack_bolt.request import BoltRequest

from blocks import ids, kit
from blocks.codec import (
    AdminRow,
    AdminState,
    BadState,
    FilesState,
    HomeState,
    InviteState,
    PageRef,
    ParticipantsState,
    Record,
    RoRef,
    SendRef,
    SmsRef,
    decode,
)
from blocks.notice_view import notice_modal
from core.refusals import Refusal
from slackapi.services import Services
from storage.models import ProcessedEvent, RepairOrder

log = logging.getLogger(__name__)

# What each of our views carries in private_metadata (by callback id)…
METADATA: dict[str, type[Record] | None] = {
    ids.FILES_MODAL: FilesState,
    ids.FILES_DONE: None,
    ids.NOTICE_MODAL: None,
    ids.PARTICIPANTS_MODAL: ParticipantsState,
    ids.PARTICIPANTS_INVITE_MODAL: InviteState,
    ids.ADMIN_MODAL: AdminState,
    ids.RO_INFO_MODAL: RoRef,
    ids.CONVERSATION_ATTACH_MODAL: SmsRef,
}
# …and each button in its value (by action id); actions not listed carry no state in their value.
VALUES: dict[str, type[Record]] = {
    ids.RO_INFO: RoRef,
    ids.PARTICIPANTS_OPEN: RoRef,
    ids.FILES_OPEN: RoRef,
    ids.RO_CONVERSATION: RoRef,
    ids.HOME_OPEN: RoRef,
    ids.HOME_MARK_READ: RoRef,
    ids.SEND_RETRY: SendRef,
    ids.SEND_REVOKE: SendRef,
    ids.FILES_PREV: PageRef,
    ids.FILES_NEXT: PageRef,
    ids.HOME_PREV: PageRef,
    ids.HOME_NEXT: PageRef,
    ids.ADMIN_PREV: PageRef,
    ids.ADMIN_NEXT: PageRef,
    ids.PARTICIPANTS_REQUEST_INVITE: InviteState,
    ids.CONVERSATION_RETRY: SmsRef,
    ids.CONVERSATION_ATTACH: SmsRef,
    ids.CONVERSATION_DISMISS: SmsRef,
    ids.CONVERSATION_PREV: PageRef,
    ids.CONVERSATION_NEXT: PageRef,
}


def deduplicate_events(req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
    """Record each event_id the first time; a retry of a recorded one is acked and dropped.

    Recording on receipt (not after processing), with the primary key as arbiter, is what makes
    a slow first delivery and its retry, even in two processes, run the listener once between them.
    """
    body = req.body or {}
    event_id = body.get("event_id") if body.get("type") == "event_callback" else None
    if event_id:
        try:
            ProcessedEvent.create(event_id=event_id)
        except IntegrityError:
            retry = (req.headers.get("x-slack-retry-num") or [None])[0]
            log.info("event %s already processed (retry %s): acked, skipped", event_id, retry)
            return BoltResponse(status=200, body="")
    return next()


def channel_of(body: dict) -> str | None:
    """The channel a Slack request is about, whatever its shape (command, event, action)."""
    if isinstance(body.get("channel_id"), str):
        return body["channel_id"]
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    for candidate in (event.get("channel"), event.get("channel_id"), (event.get("item") or {}).get("channel")):
        if isinstance(candidate, str):
            return candidate
        if isinstance(candidate, dict) and isinstance(candidate.get("id"), str):
            return candidate["id"]
    channel = body.get("channel")
    if isinstance(channel, dict) and isinstance(channel.get("id"), str):
        return channel["id"]
    container = body.get("container") if isinstance(body.get("container"), dict) else {}
    return container.get("channel_id") if isinstance(container.get("channel_id"), str) else None


def read_state(body: dict) -> tuple[Record | None, Record | None]:
    """(the view's state, the pressed element's value) this request carries. Raises BadState."""
    view = body.get("view") if isinstance(body.get("view"), dict) else {}
    kind = body.get("type")
    actions = body.get("actions") if isinstance(body.get("actions"), list) else []
    action = actions[0] if actions and isinstance(actions[0], dict) else {}
    action_id = str(action.get("action_id") or "")
    value = None
    if kind == "block_actions" and action_id in VALUES:
        value = decode(action.get("value"), VALUES[action_id])
    elif kind == "block_actions" and action_id == ids.ADMIN_TOGGLE:
        value = decode(action.get("block_id"), AdminRow)
    state = None
    if view.get("type") == "home":
        try:
            state = decode(view.get("private_metadata"), HomeState)
        except BadState:
            state = HomeState()  # a Home tab drawn by an older version: start from the default view
    elif view:
        callback_id = str(view.get("callback_id") or "")
        if callback_id in METADATA:
            expected = METADATA[callback_id]
            state = decode(view.get("private_metadata"), expected) if expected else None
        elif kind in ("view_submission", "view_closed") or ids.feature_of(action_id):
            raise BadState(f"unknown view {callback_id!r}")
    return state, value


def resolve_request(services: Services) -> Callable[..., BoltResponse]:
    """The middleware that puts the request's state and RO in the context, or refuses a request
    whose state is not ours."""

    def middleware(context: dict, body: dict, respond, next: Callable[[], BoltResponse]) -> BoltResponse:
        return _resolve(services, context, body, respond, next)

    return middleware


def _resolve(services: Services, context: dict, body: dict, respond, next: Callable[[], BoltResponse]) -> BoltResponse:
    try:
        state, value = read_state(body)
        ro = None
        ro_id = getattr(value, "ro", None) or getattr(state, "ro", None)
        if ro_id is not None:
            ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
            if ro is None:
                raise Refusal("ro.not_found")
        else:
            channel_id = channel_of(body)
            if channel_id:
                ro = RepairOrder.get_or_none(RepairOrder.channel_id == channel_id)
    except Refusal as refusal:
        log.info("refused a %s request: %s", body.get("type") or "slack", getattr(refusal, "why", refusal.key))
        return _refuse(body, respond, refusal, services.directory.locale(user_of(body)))
    context["state"] = state
    context["value"] = value
    context["ro"] = ro
    return next()


def _refuse(body: dict, respond, refusal: Refusal, locale: str) -> BoltResponse:
    text = kit.refusal_text(refusal, locale)
    if body.get("type") == "view_submission":
        return BoltResponse(status=200, body={"response_action": "update", "view": notice_modal(text, locale)})
    if body.get("response_url"):
        try:
            respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:  # the refusal stands even if Slack does not take the note
            log.warning("could not tell the user their request was refused: %s", type(exc).__name__)
    return BoltResponse(status=200, body="")


def user_of(body: dict) -> str | None:
    """Who sent the request: a command's user_id, an interaction's user, an event's user."""
    if isinstance(body.get("user_id"), str):
        return body["user_id"]
    user = body.get("user")
    if isinstance(user, dict) and isinstance(user.get("id"), str):
        return user["id"]
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    return event.get("user") if isinstance(event.get("user"), str) else None
