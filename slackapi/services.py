"""What every flow is handed: the settings, the Slack port, the staff directory and the task queue.

Flows take a `Services` as their first argument (task functions too: the queue hands it to them),
so Slack is reached one way everywhere: `services.slack`, the SlackService with its named errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from slackapi.client import make_web_client
from slackapi.directory import Directory
from slackapi.service import SlackService
from taskqueue.queue import TaskQueue


@dataclass
class Services:
    settings: Settings
    slack: SlackService
    directory: Directory
    tasks: TaskQueue


def build_services(settings: Settings, tasks: TaskQueue | None = None) -> Services:
    """The services of one process; the database must be open (the queue lives in it by default)."""
    slack = SlackService(make_web_client(settings.slack_bot_token, settings.slack_api_url))
    queue = tasks or TaskQueue(
        redis_url=settings.redis_url,
        poll_seconds=settings.queue_poll_seconds,
        retry_seconds=settings.queue_retry_seconds,
        name=settings.queue_name,
    )
    services = Services(settings=settings, slack=slack, directory=Directory(slack, settings.admin_slack_user_ids), tasks=queue)
    queue.context = services
    return services
