"""Nothing escapes a listener: every listener runs inside `guard`, which turns an exception into an
error id in the log and a note to the user, and returns normally.

Why not leave it to Bolt's `@app.error`: slack-bolt 1.30's thread runner answers a listener that
called `ack()` and then raised by overwriting its ack with `None`; when both happen within one
10 ms poll of the request thread, the request waits the full 3 s and Bolt answers
`404 unhandled request`, so Slack shows the user an error on top of ours. A listener that never
raises keeps its ack, whatever the thread timing.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Callable

from slack_bolt import App

from blocks.notice_view import notice_modal
from core.i18n import t
from handlers.request_middleware import user_of
from slackapi.services import Services

log = logging.getLogger(__name__)
# What the guard itself needs from Bolt, whatever the listener asks for.
_GUARD_ARGS = ("ack", "body", "respond")


def report_failure(services: Services, error: BaseException, body: dict | None, respond=None, ack=None) -> str:
    """Log `error` with its traceback under a new error id, answer Slack if nobody has yet, and tell
    the person who clicked or typed that id. Returns the id. Never raises."""
    error_id = log_failure(error)
    try:
        body = body if isinstance(body, dict) else {}
        locale = services.directory.locale(user_of(body))
        text = t("error.with_id", locale, error_id=error_id)
        if ack is not None and getattr(ack, "response", None) is None:
            if body.get("type") == "view_submission":
                ack(response_action="update", view=notice_modal(text, locale))
                return error_id  # the modal now says it
            ack()
        tell(services, respond, body, text)
    except Exception as exc:  # telling is best effort: the log line above already holds the id
        log.warning("could not tell the user about error %s: %s", error_id, type(exc).__name__)
    return error_id


def log_failure(error: BaseException, what: str = "listener") -> str:
    """Log `error` with its traceback under a new error id; returns the id."""
    error_id = secrets.token_hex(4)
    log.error("%s failed [error id %s]: %s: %s", what, error_id, type(error).__name__, error, exc_info=error)
    return error_id


def tell(services: Services, respond, body: dict, text: str) -> None:
    """Tell the person who clicked or typed: through Slack's response_url when the request has one
    (a message's button, a command), else in a DM (a modal's or the Home tab's button). Best effort."""
    if respond is not None and (body or {}).get("response_url"):
        try:
            respond(text=text, response_type="ephemeral", replace_original=False)
            return
        except Exception:
            log.warning("could not answer through response_url; trying a DM")
    user_id = user_of(body or {})
    if user_id and (body or {}).get("type") in ("block_actions", "view_submission", "shortcut", "message_action"):
        services.slack.tell(user_id, None, text)
        return
    event = (body or {}).get("event") if isinstance((body or {}).get("event"), dict) else {}
    if user_id and event.get("type") == "message" and isinstance(event.get("channel"), str):
        # A message we failed to handle (a reply meant for the customer…): its author must know.
        thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else None
        services.slack.tell(user_id, event["channel"], text, thread_ts=thread_ts)


def guard(services: Services, listener: Callable) -> Callable:
    """`listener`, made to never raise. Bolt injects arguments by parameter name, so the wrapper
    declares the listener's own parameters plus the ones the guard needs, and passes the listener
    only what it asked for."""
    own = [p.name for p in inspect.signature(listener).parameters.values()]
    wanted = own + [name for name in _GUARD_ARGS if name not in own]

    def guarded(**kwargs):
        try:
            return listener(**{name: kwargs.get(name) for name in own})
        except Exception as error:
            report_failure(services, error, kwargs.get("body"), kwargs.get("respond"), kwargs.get("ack"))
            return None

    guarded.__name__ = getattr(listener, "__name__", "listener")
    guarded.__qualname__ = getattr(listener, "__qualname__", guarded.__name__)
    guarded.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in wanted]
    )
    return guarded


class GuardedApp(App):
    """A Bolt App whose every listener (actions, views, commands, events…) runs inside `guard`.

    Bolt's decorators all register through `_register_listener`; wrapping there covers the ones we
    use today and any added later, where a per-decorator wrapper would be forgotten once."""

    def __init__(self, services: Services, **kwargs):
        self.services = services
        super().__init__(**kwargs)

    def _register_listener(self, functions, *args, **kwargs):
        originals = list(functions)
        super()._register_listener([guard(self.services, f) for f in originals], *args, **kwargs)
        return originals[0] if len(originals) == 1 else None
