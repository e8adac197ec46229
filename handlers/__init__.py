"""The Bolt app: middleware, then one `register` per feature's listener module.

Listeners parse the payload, call the feature's flow and render; refusals (core.refusals) are
answered where they are raised. Every listener runs inside `listener_guard.guard` (the app is a
`GuardedApp`): anything else is logged with its traceback under an error id and the user is told
that id, so an admin can find the log line; `on_error` does the same for middleware.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App

from blocks import ids
from blocks.notice_view import notice_modal
from core.i18n import t
from handlers import command_router, request_middleware
from handlers.listener_guard import GuardedApp, report_failure, tell
from slackapi.services import Services
from storage.db import with_connection

log = logging.getLogger(__name__)
LISTENER_THREADS = 10


class ConnectionPerTaskExecutor(ThreadPoolExecutor):
    """Bolt runs listeners on this pool; each run gets its own database connection, returned after."""

    def submit(self, fn, /, *args, **kwargs):
        return super().submit(with_connection(fn), *args, **kwargs)


def build_bolt_app(services: Services) -> App:
    settings = services.settings
    app = GuardedApp(
        services,
        token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        client=services.slack.client,
        token_verification_enabled=False,  # `check` tests the token; start-up must not need Slack up
        listener_executor=ConnectionPerTaskExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="bolt"),
        logger=logging.getLogger("slack_bolt"),
    )
    app.use(request_middleware.deduplicate_events)
    app.use(request_middleware.resolve_request(services))

    router = command_router.CommandRouter()
    command_router.register(app, services, router)
    for feature in _features():
        feature.register(app, services, router)
    _register_fallbacks(app, services)

    @app.error
    def on_error(error, body, respond=None):
        report_failure(services, error, body, respond)

    return app


def _register_fallbacks(app: App, services: Services) -> None:
    """Last in line (Bolt runs the first listener that matches): a button or form no listener
    knows (an old message's action id, a hand-made payload) is answered as out of date, and an
    event nobody listens to is acknowledged, so Slack neither shows an error nor retries it."""
    # Not our ids: a listener of ours that acked, then failed, must not be answered twice (Bolt can
    # hand such a request on to the next matching listener).
    ours = sorted(v for k, v in vars(ids).items() if k.isupper() and isinstance(v, str) and "." in v)
    unknown = re.compile(r"^(?!(?:" + "|".join(re.escape(i) for i in ours) + r")$).*")
    anything = re.compile(".*")

    @app.action(unknown)
    def unknown_action(ack, body, respond):
        ack()
        log.info("no listener for action %s", ((body.get("actions") or [{}])[0] or {}).get("action_id"))
        tell(services, respond, body, t("error.stale_state", services.directory.locale(request_middleware.user_of(body))))

    @app.view(unknown)
    def unknown_view(ack, body):
        locale = services.directory.locale(request_middleware.user_of(body))
        ack(response_action="update", view=notice_modal(t("error.stale_state", locale), locale))

    @app.event(anything)
    def unknown_event(ack):
        ack()


def _features() -> list:
    """Listener modules, each with `register(app, services, router)`."""
    from handlers import (
        admin_listeners,
        conversation_listeners,
        files_listeners,
        home_listeners,
        mentions_listeners,
        metrics_listeners,
        participants_listeners,
        ro_listeners,
        search_listeners,
    )

    return [
        ro_listeners,
        conversation_listeners,
        files_listeners,
        admin_listeners,
        participants_listeners,
        mentions_listeners,
        home_listeners,
        search_listeners,
        metrics_listeners,
    ]
