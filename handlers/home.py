"""The app's Home tab, unread activity, and notification DMs.

- `app_home_opened` and every Home button re-publish the tab (views.publish) from the state the
  view carries.
- Every human message in an RO channel is recorded as activity (files are recorded by the
  files feature), which moves the RO up the lists and marks it read for its author.
- `flush_notifications(services)` is what the scheduler runs every minute.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from slack_bolt import App

from core.services import Services
from handlers.commands import CommandRouter
from handlers.message_events import human_author, on_message
from handlers.participants import failure_reason
from handlers.views import home as views
from handlers.middleware import repair_order_from
from people import notifications
from people.participants import UNAVAILABLE
from people.unread import MESSAGE, mark_read, record_activity, unread_counts
from slackapi.errors import SlackError
from storage.db import with_connection
from storage.models import RepairOrder
from storage.search import MAX_CHARS, QueryTooShort, find

log = logging.getLogger(__name__)
# Someone writing (edits, joins, topic changes… are not activity; file shares are the files feature's).
ACTIVITY_SUBTYPES = {None, "thread_broadcast", "me_message"}


def publish_home(services: Services, user_id: str, state: views.HomeState) -> None:
    locale = services.directory.locale(user_id)
    try:
        page = find(state.query or None, status=state.status, member=user_id if state.tab == "mine" else None,
                    limit=views.PAGE_SIZE, offset=state.page * views.PAGE_SIZE)
    except QueryTooShort:
        page = None
    unread = unread_counts(user_id, [ro.id for ro in page.items]) if page else {}
    view = views.home_view(state, page, unread, notifications.preferences(user_id), locale)
    services.slack.publish_home(user_id, view)


@with_connection
def flush_notifications(services: Services) -> int:
    """Send the notification DMs that are due; the scheduler calls this every minute. Returns how many."""
    def deliver(digest: notifications.Digest) -> bool:
        ro = RepairOrder.get_or_none(RepairOrder.id == digest.ro_id)
        if ro is None:
            return True
        text = views.notification_text(digest, ro, services.directory.locale(digest.user_id))
        try:
            services.slack.post(digest.user_id, text)
        except SlackError as exc:
            log.warning("notification DM to %s failed: %s", digest.user_id, exc.raw_code)
            # Slack down: next minute. Slack said no (user deactivated…): retrying cannot help.
            return failure_reason(exc) != UNAVAILABLE
        return True

    interval = timedelta(minutes=services.settings.notify_interval_minutes)
    return notifications.flush(deliver, interval=interval)


def _state(body: dict) -> views.HomeState:
    return views.HomeState.from_metadata((body.get("view") or {}).get("private_metadata"))


def register(app: App, services: Services, router: CommandRouter) -> None:
    def on_channel_message(event: dict, ro) -> None:
        if ro is None or event.get("subtype") not in ACTIVITY_SUBTYPES:
            return
        author = human_author(event, services.slack.bot_user_id)
        if author:
            record_activity(ro.id, author, MESSAGE, str(event.get("ts") or ""))

    on_message(app, on_channel_message)

    @app.event("app_home_opened")
    def home_opened(event):
        if event.get("tab", "home") == "home" and event.get("user"):
            state = views.HomeState.from_metadata((event.get("view") or {}).get("private_metadata"))
            publish_home(services, event["user"], state)

    def on_home_action(action_id: str, change):
        """A Home control: `change(state, action)` edits the state, then the tab is re-published."""
        @app.action(action_id)
        def listener(ack, body, action):
            ack()
            state = _state(body)
            change(state, action, body["user"]["id"])
            publish_home(services, body["user"]["id"], state)

    def search(state, action, user_id):
        state.query, state.page = (action.get("value") or "").strip()[:MAX_CHARS], 0

    def tab(name):
        def change(state, action, user_id):
            state.tab, state.page = name, 0
        return change

    def status(state, action, user_id):
        value = (action.get("selected_option") or {}).get("value")
        state.status, state.page = (None if value == views.ANY_STATUS else value), 0

    def page(state, action, user_id):
        try:
            state.page = max(0, int(action.get("value", "0")))
        except ValueError:
            state.page = 0

    def clear(state, action, user_id):
        state.query, state.page = "", 0

    def read(state, action, user_id):
        ro = repair_order_from(action.get("value"))
        if ro is not None:
            mark_read(ro.id, user_id)

    for action_id, change in ((views.SEARCH, search), (views.MINE, tab("mine")), (views.ALL, tab("all")),
                              (views.STATUS, status), (views.PREVIOUS, page), (views.NEXT, page),
                              (views.CLEAR, clear), (views.OPEN, read), (views.MARK_READ, read)):
        on_home_action(action_id, change)

    @app.action(views.NOTIFY)
    def notify_settings(ack, body, action):
        ack()
        user_id = body["user"]["id"]
        services.directory.get(user_id)  # the StaffUser row, made as the directory makes it
        chosen = {o.get("value") for o in action.get("selected_options") or []}
        notifications.set_preferences(user_id, messages=views.NOTIFY_MESSAGES in chosen, files=views.NOTIFY_FILES in chosen)
