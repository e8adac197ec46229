"""One Bolt listener for Slack `message` events, shared by every feature that needs them.

Bolt runs only the first listener that matches an event, so two features each registering
`@app.event("message")` would silently starve one of them. Features call
`on_message(app, handler)` instead; each handler gets (event, ro) — ro is the channel's
RepairOrder or None — and one handler failing does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App

log = logging.getLogger(__name__)
MessageHandler = Callable[[dict, object], None]
_ATTRIBUTE = "_ro_message_handlers"


def on_message(app: App, handler: MessageHandler) -> None:
    handlers: list[MessageHandler] | None = getattr(app, _ATTRIBUTE, None)
    if handlers is None:
        handlers = []
        setattr(app, _ATTRIBUTE, handlers)

        @app.event("message")
        def fan_out(event, context):
            for each in list(handlers):
                try:
                    each(event, context.get("ro"))
                except Exception as exc:  # the next feature must still see the message
                    log.error("message handler %s failed: %s: %s", getattr(each, "__qualname__", each), type(exc).__name__, exc)

    handlers.append(handler)
