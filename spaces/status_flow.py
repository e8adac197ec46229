"""Status changed by hand (the card's select, `/ro status`): saved at once, shown in Slack by a task."""

from __future__ import annotations

import logging

from core.i18n import t
from slackapi.services import Services
from spaces.publish_flow import Publisher
from spaces.status_rules import set_status
from storage.db import database
from storage.models import RepairOrder
from taskqueue.queue import task

log = logging.getLogger(__name__)


def change_status(services: Services, ro: RepairOrder, status: str, user_id: str) -> bool:
    """Save the manual status (False: the RO already had it) and queue showing it in Slack; the
    value holds until the DMS changes that RO again."""
    with database.atomic():  # the status and the task that shows it, together
        if not set_status(ro, status, user_id):
            return False
        services.tasks.enqueue("ro.publish", ro.id, user_id, lane=f"ro:{ro.id}")
    return True


def _publish_gave_up(services: Services, ro_id: int, user_id: str | None = None, *, error: str) -> None:
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is not None and user_id:
        services.slack.tell(user_id, ro.channel_id, t("status.slack_failed", services.directory.locale(user_id)))


@task("ro.publish", max_attempts=4, on_give_up=_publish_gave_up)
def publish(services: Services, ro_id: int, user_id: str | None = None) -> None:
    """Make Slack show the RO (card, topic, status note). Raises SlackError to be retried; the next
    sync also shows it (the RO stays marked for Slack until it does)."""
    ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
    if ro is not None:
        Publisher(services).publish(ro)
