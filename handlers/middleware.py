"""Bolt middleware run once per request: Events API de-duplication, and "which RO is this channel"."""
from __future__ import annotations

import logging
from typing import Callable

from peewee import IntegrityError
from slack_bolt import BoltResponse
from slack_bolt.request import BoltRequest

from storage.models import ProcessedEvent, RepairOrder

log = logging.getLogger(__name__)


def deduplicate_events(req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:
    """Record each event_id the first time; a retry of a recorded one is acked and dropped.

    Recording on receipt (not after processing) is what makes a slow first delivery and its
    retry run the listener once between them.
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
    """The channel a Slack request is about, whatever its shape (command, event, action, view)."""
    if body.get("channel_id"):
        return body["channel_id"]
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    for candidate in (event.get("channel"), event.get("channel_id"), (event.get("item") or {}).get("channel")):
        if isinstance(candidate, str):
            return candidate
        if isinstance(candidate, dict) and candidate.get("id"):
            return candidate["id"]
    channel = body.get("channel") or (body.get("container") or {}).get("channel_id")
    if isinstance(channel, dict):
        return channel.get("id")
    if isinstance(channel, str):
        return channel
    view = body.get("view") if isinstance(body.get("view"), dict) else {}
    metadata = view.get("private_metadata") or ""
    # Our modals keep "ro:<id>" or a channel id in private_metadata.
    if metadata.startswith("C"):
        return metadata.split("|", 1)[0]
    return None


def resolve_repair_order(context: dict, body: dict, next: Callable[[], BoltResponse]) -> BoltResponse:
    """Put the RO of the request's channel (or None) in context["ro"] for every listener."""
    view = body.get("view") if isinstance(body.get("view"), dict) else {}
    view_meta = str(view.get("private_metadata") or "")
    ro = None
    if view_meta.startswith("ro:"):
        ro = repair_order_from(view_meta.split("|", 1)[0][3:])
    else:
        channel_id = channel_of(body)
        if channel_id:
            ro = RepairOrder.get_or_none(RepairOrder.channel_id == channel_id)
    context["ro"] = ro
    return next()


def repair_order_from(value: object) -> RepairOrder | None:
    """The RO whose id we put in a button value or view metadata, or None for anything a
    tampered payload sends (not a number, or one too large for the database)."""
    text = str(value if value is not None else "").strip()
    if not (text.isdigit() and len(text) <= 18):
        return None
    return RepairOrder.get_or_none(RepairOrder.id == int(text))
