"""Files listeners: files shared in RO channels, the Files modal (`/ro files`, the card's Files
button), sending to the customer, and the Revoke link / Retry buttons of the channel note.

Parse, call the flow (media.intake_flow, media.files_flow, customers.send_flow), render.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from slack_bolt import App

from blocks import files_view as views
from blocks import ids, kit, merge_view
from blocks.codec import FilesState
from core.i18n import t
from core.refusals import Refusal
from customers import send_flow
from customers.send_rules import MAX_FILES_PER_SEND, SendRefused, counts_of
from handlers.command_router import CommandContext, CommandRouter
from handlers.message_fanout import on_message
from media import files_flow, intake_flow, merge_flow
from slackapi.errors import SlackError
from slackapi.services import Services

log = logging.getLogger(__name__)
_IGNORED_SUBTYPES = ("message_changed", "message_deleted", "bot_message")


def ticked_state(state: FilesState, view: dict) -> FilesState:
    """The selection carried between pages, with the shown page's ticks folded in."""
    block_id = views.page_block_id(state.page)
    block = next((b for b in view.get("blocks", []) if isinstance(b, dict) and b.get("block_id") == block_id), None)
    if block is None:
        return state
    try:
        on_page = {int(o["value"]) for o in block["element"].get("options", [])}
        picked = ((view.get("state") or {}).get("values") or {}).get(block_id, {}).get(ids.FILES_PICK) or {}
        ticked = {int(o["value"]) for o in picked.get("selected_options") or []}
    except (KeyError, TypeError, ValueError, AttributeError):
        return state  # not the checkboxes we drew: keep what the state says
    return replace(state, selected=frozenset((set(state.selected) - on_page) | (ticked & on_page)))


def register(app: App, services: Services, router: CommandRouter) -> None:
    # -- intake -----------------------------------------------------------------------------------
    @app.event("file_shared")
    def file_shared(event, context):
        ro = context.get("ro")
        file_id = event.get("file_id") or (event.get("file") or {}).get("id")
        if ro is not None and isinstance(file_id, str) and file_id:
            intake_flow.file_shared(services, ro, file_id, user_id=event.get("user_id"), ts=None)

    def files_in_messages(event: dict, ro) -> None:
        """Slack mobile posts files as `message` events (subtype file_share, or just `files`)."""
        if ro is None or not isinstance(event.get("files"), list) or event.get("subtype") in _IGNORED_SUBTYPES:
            return
        for file in event["files"]:
            if isinstance(file, dict) and isinstance(file.get("id"), str):
                intake_flow.file_shared(services, ro, file["id"], user_id=event.get("user"), ts=event.get("ts"))

    on_message(app, files_in_messages)

    # -- the Files modal --------------------------------------------------------------------------
    def files_command(ctx: CommandContext) -> None:
        if not ctx.trigger_id:
            return
        try:
            files_flow.open_files(services, ctx.trigger_id, ctx.ro, ctx.user_id, ctx.locale)
        except SlackError as exc:
            log.warning("could not open the Files modal: %s", exc.raw_code)
            ctx.say("error.generic")

    router.add("files", files_command, needs_ro=True, aliases=("fichiers",))

    @app.action(ids.FILES_OPEN)
    def files_button(ack, body, context):
        ack()
        user_id = body["user"]["id"]
        try:
            files_flow.open_files(services, body["trigger_id"], context["ro"], user_id, services.directory.locale(user_id))
        except SlackError as exc:  # an expired trigger: the person just presses again
            log.warning("could not open the Files modal: %s", exc.raw_code)

    def change_page(ack, body, context):
        ack()
        view, user_id = body["view"], body["user"]["id"]
        state = replace(ticked_state(context["state"], view), page=context["value"].page)
        files_flow.show_page(services, view["id"], context["ro"], state, user_id, services.directory.locale(user_id))

    app.action(ids.FILES_PREV)(change_page)
    app.action(ids.FILES_NEXT)(change_page)

    @app.action(ids.FILES_PICK)
    def ticked(ack):
        ack()  # ticks are read from the view state on page change and on submit

    def merge_ticked(ro, state: FilesState, user_id: str, locale: str):
        """(the screen to show: the merge queued, or the modal again with the refusal on top)."""
        try:
            job = merge_flow.start_merge(services, ro, user_id, sorted(state.selected))
        except Refusal as refused:
            return files_flow.files_modal(services, ro, state, user_id, locale, notice=kit.refusal_text(refused, locale))
        return merge_view.merging_screen(len(json.loads(job.file_ids)), locale)

    @app.action(ids.MERGE_START)
    def merge_pressed(ack, body, context):
        view, user_id = body["view"], body["user"]["id"]
        locale = services.directory.locale(user_id)
        ro, state = context["ro"], ticked_state(context["state"], view)
        try:
            # This modal's view id and the ticks make the press: a double click finds the first job.
            job = merge_flow.start_merge(services, ro, user_id, sorted(state.selected), view_id=view.get("id"))
            screen = merge_view.merging_screen(len(json.loads(job.file_ids)), locale)
        except Refusal as refused:
            screen = files_flow.files_modal(services, ro, state, user_id, locale, notice=kit.refusal_text(refused, locale))
        ack()  # after the merge is queued: a click Slack saw answered is never lost
        services.slack.update_view(view["id"], screen)

    @app.view(ids.FILES_MODAL)
    def submitted(ack, body, view, context):
        user_id = body["user"]["id"]
        locale = services.directory.locale(user_id)
        ro, state = context["ro"], ticked_state(context["state"], view)
        if state.merge_submit:  # the modal of someone who may not send: its button merges
            ack(response_action="update", view=merge_ticked(ro, state, user_id, locale))
            return
        try:
            if state.overflow:
                raise SendRefused("too_many_files", max=MAX_FILES_PER_SEND)
            send = send_flow.start_send(services, ro, user_id, sorted(state.selected))
        except SendRefused as refused:
            ack(**views.refusal(view, refused, locale))
            return
        ack(response_action="update", view=views.sending_view(ro, send, views.counts_text(counts_of(send), locale), locale))

    # -- the channel note's buttons ---------------------------------------------------------------
    def note_button(act):
        def listener(ack, body, context, respond):
            user_id = body["user"]["id"]
            locale = services.directory.locale(user_id)
            try:
                done = act(services, context["value"].send, user_id)  # saved and queued before Slack's answer
            except Refusal as refused:
                ack()
                respond(text=kit.refusal_text(refused, locale), response_type="ephemeral", replace_original=False)
                return
            ack()
            if done:
                respond(text=t(done, locale), response_type="ephemeral", replace_original=False)

        return listener

    def retry(services: Services, send_id: int, user_id: str) -> str | None:
        send_flow.retry(services, send_id, user_id)
        return None

    def revoke(services: Services, send_id: int, user_id: str) -> str:
        send_flow.revoke(services, send_id, user_id)
        return "send.revoked"

    app.action(ids.SEND_RETRY)(note_button(retry))
    app.action(ids.SEND_REVOKE)(note_button(revoke))
