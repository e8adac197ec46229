"""@mentions in RO channels: mentioning someone who is not in the channel adds them
(people.participants_flow.on_message)."""

from __future__ import annotations

from slack_bolt import App

from handlers.command_router import CommandRouter
from handlers.message_fanout import on_message
from people import participants_flow
from slackapi.services import Services


def register(app: App, services: Services, router: CommandRouter) -> None:
    on_message(app, lambda event, ro: participants_flow.on_message(services, event, ro))
