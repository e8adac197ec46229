"""App Home listeners: `app_home_opened` and every Home control re-publish the tab from the state
the view carries (codec.HomeState); messages in RO channels are recorded as activity."""

from __future__ import annotations

from dataclasses import replace

from slack_bolt import App

from blocks import ids
from blocks.codec import BadState, HomeState, decode
from handlers.command_router import CommandRouter
from handlers.message_fanout import on_message
from people import home_flow
from slackapi.services import Services
from storage.values import STATUSES


def register(app: App, services: Services, router: CommandRouter) -> None:
    on_message(app, lambda event, ro: home_flow.on_message(services, event, ro))

    @app.event("app_home_opened")
    def home_opened(event):
        if event.get("tab", "home") == "home" and isinstance(event.get("user"), str):
            try:
                state = decode((event.get("view") or {}).get("private_metadata"), HomeState)
            except BadState:
                state = HomeState()  # first visit, or a tab drawn by an older version
            home_flow.publish_home(services, event["user"], state)

    def on_home_action(action_id: str, change):
        """A Home control: `change(state, action, context, user)` gives the new state, then the tab is re-published."""

        @app.action(action_id)
        def listener(ack, body, action, context):
            ack()
            user_id = body["user"]["id"]
            state = change(context.get("state") or HomeState(), action, context, user_id)
            home_flow.publish_home(services, user_id, state)

    def status(state, action, context, user_id):
        value = (action.get("selected_option") or {}).get("value")
        return replace(state, status=value if value in STATUSES else None, page=0)

    def read(state, action, context, user_id):
        home_flow.mark_ro_read(context["ro"], user_id)
        return state

    changes = {
        ids.HOME_SEARCH: lambda state, action, context, user_id: home_flow.searched(state, str(action.get("value") or "")),
        ids.HOME_MINE: lambda state, action, context, user_id: replace(state, tab="mine", page=0),
        ids.HOME_ALL: lambda state, action, context, user_id: replace(state, tab="all", page=0),
        ids.HOME_STATUS: status,
        ids.HOME_PREV: lambda state, action, context, user_id: replace(state, page=context["value"].page),
        ids.HOME_NEXT: lambda state, action, context, user_id: replace(state, page=context["value"].page),
        ids.HOME_CLEAR: lambda state, action, context, user_id: replace(state, query="", page=0),
        ids.HOME_OPEN: read,
        ids.HOME_MARK_READ: read,
    }
    for action_id, change in changes.items():
        on_home_action(action_id, change)

    @app.action(ids.HOME_NOTIFY)
    def notify_settings(ack, body, action):
        ack()
        chosen = {o.get("value") for o in action.get("selected_options") or [] if isinstance(o, dict)}
        home_flow.set_notifications(services, body["user"]["id"], chosen)
