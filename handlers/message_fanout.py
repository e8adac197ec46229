"""One Bolt listener for Slack `message` events, shared by every feature that needs them.

Bolt runs only the first listener that matches an event, so two features each registering
`@app.event("message")` would silently starve one of them. Features call
`on_message(app, handler)` instead; each handler gets (event, ro) — ro is the channel's
RepairOrder or None — and one handler failing does not stop the others: its failure is logged
under an error id and the message's author is told that id (listener_guard.report_failure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from handlers.listener_guard import GuardedApp, report_failure

log = logging.getLogger(__name__)
MessageHandler = Callable[[dict, object], None]
_ATTRIBUTE = "_ro_message_handlers"


def on_message(app: GuardedApp, handler: MessageHandler) -> None:
    handlers: list[MessageHandler] | None = getattr(app, _ATTRIBUTE, None)
    if handlers is None:
        handlers = []
        setattr(app, _ATTRIBUTE, handlers)

        @app.event("message")
        def fan_out(event, context, body):
            for each in list(handlers):
                try:
                    each(event, context.get("ro"))
                except Exception as exc:  # the next feature must still see the message
                    log.info("message handler %s failed", getattr(each, "__qualname__", each))
                    report_failure(app.services, exc, body)

    handlers.append(handler)
