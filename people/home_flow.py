"""App Home and notifications, the Slack side: the Home tab drawn from the state it carries,
message activity recorded for unread counts, and the batched notification DMs."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from blocks import conversation_view
from blocks import home_view as views
from blocks.codec import HomeState
from blocks.metrics_view import home_section
from customers import conversation_rules
from customers.permission_rules import can_see_metrics, is_admin
from people import notification_rules as notifications
from people.mention_rules import human_author
from people.participant_rules import UNAVAILABLE
from people.participants_flow import failure_reason
from people.unread_rules import mark_read, record_activity, unread_counts
from reports.metrics_flow import month_so_far
from slackapi.errors import SlackError
from slackapi.services import Services
from storage.db import with_connection
from storage.models import RepairOrder
from storage.search_index import MAX_CHARS, QueryTooShort, find
from storage.values import MESSAGE

log = logging.getLogger(__name__)
# Someone writing (edits, joins, topic changes… are not activity; file shares are the files feature's).
ACTIVITY_SUBTYPES = {None, "thread_broadcast", "me_message"}


def publish_home(services: Services, user_id: str, state: HomeState, locale: str | None = None) -> None:
    locale = locale or services.directory.locale(user_id)
    try:
        page = find(
            state.query or None,
            status=state.status,
            member=user_id if state.tab == "mine" else services.directory.listing_scope(user_id),
            limit=views.PAGE_SIZE,
            offset=state.page * views.PAGE_SIZE,
        )
    except QueryTooShort:
        page = None
    unread = unread_counts(user_id, [ro.id for ro in page.items]) if page else {}
    unmatched = None
    if is_admin(user_id, services.settings):
        unmatched = conversation_rules.unmatched_page(state.unmatched_page, conversation_view.UNMATCHED_PER_PAGE)
    metrics = home_section(month_so_far(services), locale) if can_see_metrics(user_id, services.settings) else None
    view = views.home_view(
        state,
        page,
        unread,
        notifications.preferences(user_id),
        locale,
        unmatched=unmatched,
        tz=services.settings.shop_timezone,
        metrics=metrics,
    )
    services.slack.publish_home(user_id, view)


def searched(state: HomeState, text: str) -> HomeState:
    return replace(state, query=(text or "").strip()[:MAX_CHARS], page=0)


def mark_ro_read(ro: RepairOrder, user_id: str) -> None:
    mark_read(ro.id, user_id)


def set_notifications(services: Services, user_id: str, chosen: set[str]) -> None:
    services.directory.get(user_id)  # the StaffUser row, made as the directory makes it
    notifications.set_preferences(
        user_id,
        messages=views.NOTIFY_MESSAGES in chosen,
        files=views.NOTIFY_FILES in chosen,
        customer=views.NOTIFY_CUSTOMER in chosen,
    )


def on_message(services: Services, event: dict, ro: RepairOrder | None) -> None:
    """Every human message in an RO channel is activity: the RO moves up, others see it as new."""
    if ro is None or event.get("subtype") not in ACTIVITY_SUBTYPES:
        return
    author = human_author(event, services.slack.bot_user_id)
    if author:
        record_activity(ro.id, author, MESSAGE, str(event.get("ts") or ""))


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
