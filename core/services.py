"""What listeners, jobs and the command line share: settings and the long-lived services."""
from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from slackapi.client import make_web_client
from slackapi.directory import Directory
from slackapi.service import SlackService


@dataclass
class Services:
    settings: Settings
    slack: SlackService
    directory: Directory


def build_services(settings: Settings) -> Services:
    slack = SlackService(make_web_client(settings.slack_bot_token, settings.slack_api_url))
    return Services(settings=settings, slack=slack, directory=Directory(slack, settings.admin_slack_user_ids))
