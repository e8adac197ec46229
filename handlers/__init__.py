"""The Bolt app: middleware, then one `register` per feature module."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App

from core.i18n import t
from core.services import Services
from handlers import commands, middleware
from storage.db import with_connection

log = logging.getLogger(__name__)
LISTENER_THREADS = 10


class ConnectionPerTaskExecutor(ThreadPoolExecutor):
    """Bolt runs listeners on this pool; each run gets its own database connection, returned after."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(with_connection(fn), *args, **kwargs)


def build_bolt_app(services: Services) -> App:
    settings = services.settings
    app = App(
        token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        client=services.slack.client,
        token_verification_enabled=False,  # `check` tests the token; start-up must not need Slack up
        listener_executor=ConnectionPerTaskExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="bolt"),
        logger=logging.getLogger("slack_bolt"),
    )
    app.use(middleware.deduplicate_events)
    app.use(middleware.resolve_repair_order)

    router = commands.CommandRouter()
    commands.register(app, services, router)
    for feature in _features():
        feature.register(app, services, router)

    @app.error
    def on_error(error, body, respond=None):
        log.error("listener failed: %s: %s", type(error).__name__, error)
        user_id = (body or {}).get("user_id") or ((body or {}).get("user") or {}).get("id")
        if respond is not None and (body or {}).get("response_url"):
            try:
                respond(text=t("error.generic", services.directory.locale(user_id)), response_type="ephemeral")
            except Exception:  # the error answer is best effort
                log.warning("could not tell the user about the error")

    return app


def _features() -> list:
    """Feature modules, each with `register(app, services, router)`."""
    from handlers import admin, files, ro_spaces
    from handlers import home, mentions, participants, search

    return [ro_spaces, files, admin, participants, mentions, home, search]
