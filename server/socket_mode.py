"""Socket Mode: with SLACK_APP_TOKEN the process connects out to Slack over a WebSocket, so Slack
needs no public URL (customer pages and the SMS webhooks still do: PUBLIC_URL).

Envelopes go to the same Bolt app as `POST /slack/events` (same listeners, same event-id
de-duplication: a retry delivered to another process, or to this one, is acked and skipped).
Bolt acks before a listener's slow work, as over HTTP. Each serving process holds its own
connection (Slack spreads envelopes over an app's connections, up to about 10).

What HTTP answers with a status is done here with the ack: an envelope Bolt cannot read is acked
(a redelivery could not do better) and logged; a database outage before the event id is recorded
is not acked, so Slack delivers it again, as it does after our 503.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from peewee import PeeweeException
from slack_bolt import App
from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websocket_client import SocketModeClient

from core.config import Settings
from slackapi.client import make_web_client
from storage.db import database

log = logging.getLogger(__name__)

ENVELOPE_TYPES = ("events_api", "slash_commands", "interactive")
# apps.connections.open answers these when the token itself is wrong: retrying cannot help.
REFUSALS = ("invalid_auth", "not_authed", "not_allowed_token_type", "token_revoked", "token_expired", "account_inactive")
MAX_RETRY_SECONDS = 60
# Pings a connection may leave unanswered before it is taken as dead and opened anew.
MISSED_PONGS = 3


class SocketModeRefused(Exception):
    """Slack refused SLACK_APP_TOKEN; the message is one line for a person."""


def open_connection_url(settings: Settings) -> str:
    """Ask Slack (SLACK_API_URL) for a WebSocket URL. Raises SocketModeRefused when the token is
    refused, SlackApiError or a network error otherwise."""
    client = make_web_client(None, settings.slack_api_url, max_retries=1, timeout=15)
    try:
        return client.apps_connections_open(app_token=settings.slack_app_token or "")["url"]
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        if error in REFUSALS:
            raise SocketModeRefused(
                f"Slack refused SLACK_APP_TOKEN ({error}): generate an App-Level Token with the connections:write "
                "scope on your Slack app's Basic Information page, and turn Socket Mode on."
            ) from None
        raise


def check_token(settings: Settings) -> str | None:
    """At start-up: a connection URL for the first connection, None in HTTP mode or when Slack
    cannot be reached now (the connection is then retried in the background). Raises
    SocketModeRefused when Slack refuses the token: that needs a person, not a retry."""
    if not settings.socket_mode:
        return None
    try:
        return open_connection_url(settings)
    except SocketModeRefused:
        raise
    except Exception as exc:
        log.warning("Socket Mode: could not reach Slack at start-up (%s); the connection is retried in the background", exc)
        return None


def envelope_problem(message: dict) -> str | None:
    """Why an envelope cannot be handed to Bolt, or None (also for hello and other non-envelopes)."""
    if "envelope_id" not in message:
        return None
    if not isinstance(message["envelope_id"], str) or not 0 < len(message["envelope_id"]) <= 200:
        return "envelope_id is not a string"
    if message.get("type") not in ENVELOPE_TYPES:
        return "unknown envelope type"
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    if message["type"] == "events_api" and payload.get("type") == "event_callback":
        # The same rule as over HTTP (server.web): an event object and a Slack-sized event id.
        event_id = payload.get("event_id")
        if not isinstance(payload.get("event"), dict):
            return "event_callback without an event object"
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 64:
            return "event_callback without a valid event_id"
    if message["type"] == "slash_commands" and not isinstance(payload.get("command"), str):
        return "slash command without a command"
    if message["type"] == "interactive" and not isinstance(payload.get("type"), str):
        return "interaction without a type"
    return None


class _Client(SocketModeClient):
    """slack_sdk's websocket-client based client (it notices a dropped connection at once and
    reconnects), made to ack and skip what it cannot read instead of logging tracebacks."""

    def enqueue_message(self, message: str) -> None:
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            log.warning("Socket Mode: ignored a message that is not a JSON object (%d characters)", len(message))
            return
        super().enqueue_message(message)

    def run_message_listeners(self, message: dict, raw_message: str) -> None:
        problem = envelope_problem(message)
        if problem is None:
            super().run_message_listeners(message, raw_message)
            return
        log.warning("Socket Mode: unreadable %s envelope (%s): acknowledged, not processed", message.get("type"), problem)
        if isinstance(message.get("envelope_id"), str):
            try:
                self.send_socket_mode_response({"envelope_id": message["envelope_id"]})
            except Exception as exc:  # the connection went meanwhile: Slack redelivers, and we skip it again
                log.info("Socket Mode: could not ack an unreadable envelope: %s", type(exc).__name__)


class _Handler(BaseSocketModeHandler):
    def __init__(self, app: App, client: _Client) -> None:
        self.app = app
        self.client = client
        client.socket_mode_request_listeners.append(self.handle)

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.time()
        try:
            # Bolt's middleware (event-id record, request state) reads the database in this thread.
            with database.connection_context():
                response = run_bolt_app(self.app, req)
        except PeeweeException:
            log.exception("database error on a Socket Mode %s envelope: not acked, Slack will deliver it again", req.type)
            return
        except Exception as exc:
            # Bolt reads a payload's shape before any listener runs (listener errors never reach here).
            log.warning("Socket Mode: unreadable Slack payload (%s): %s: %s; acked", req.type, type(exc).__name__, exc)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        if response.status == 200:
            send_response(client, req, response, started)
            return
        # Bolt answered an error (no listener for it, or one failed and was reported with its error
        # id): acked all the same. A redelivery could not do better: an event's id is recorded
        # already, so Slack's retry would be skipped, and commands and interactions are never redelivered.
        log.info("Socket Mode: %s envelope answered %s by Bolt; acked", req.type, response.status)
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


class SocketMode:
    """This process's Socket Mode connection: started in the background, so the web server never
    waits for Slack, and kept up (reconnects after a drop or Slack's `disconnect`)."""

    def __init__(self, settings: Settings, bolt_app: App, first_url: str | None = None) -> None:
        self.client = _Client(
            app_token=settings.slack_app_token or "",
            logger=logging.getLogger("slack_sdk.socket_mode"),
            web_client=make_web_client(None, settings.slack_api_url),
            ping_interval=settings.socket_mode_ping_seconds,
        )
        self.ping_seconds = settings.socket_mode_ping_seconds
        self.handler = _Handler(bolt_app, self.client)
        # A URL asked for at start-up (to refuse a bad token before serving) is used for the first
        # connection; each later one gets a fresh URL, as Slack's are for one connection.
        self.client.wss_uri = first_url
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SocketMode:
        self._thread = threading.Thread(target=self._connect, name="socket-mode-connect", daemon=True)
        self._thread.start()
        threading.Thread(target=self._watch, name="socket-mode-watch", daemon=True).start()
        return self

    def _watch(self) -> None:
        """A path that dies without a reset or a close (a home router forgetting an idle
        connection) leaves the socket open and silent; slack_sdk's client sends pings but never
        checks their pongs, so this does: no pong for MISSED_PONGS pings closes the connection,
        and the client opens a new one."""
        seen: dict[int, float] = {}  # session → when this watch first saw it
        while not self._stopped.wait(self.ping_seconds):
            session = self.client.current_session
            if session is None or getattr(session, "sock", None) is None:
                continue
            since = max(getattr(session, "last_pong_tm", 0.0) or 0.0, seen.setdefault(id(session), time.time()))
            if time.time() - since > MISSED_PONGS * self.ping_seconds:
                log.warning("Socket Mode: no answer to %d pings; opening a new connection", MISSED_PONGS)
                seen.pop(id(session), None)
                try:
                    session.close()  # its close handler makes slack_sdk connect anew
                except Exception as exc:  # a socket already gone: the client reconnects by itself
                    log.info("Socket Mode: closing the silent connection: %s", type(exc).__name__)

    def _connect(self) -> None:
        delay = 1.0
        while not self._stopped.is_set():
            try:
                self.client.connect()
                log.info("Socket Mode: connecting to Slack")
                return
            except SlackApiError as exc:
                error = exc.response.get("error") if exc.response is not None else None
                log.error("Socket Mode: Slack refused to open a connection (%s); trying again in %.0f s", error, delay)
            except Exception as exc:  # Slack or the network down at start: try again, the web server runs meanwhile
                log.warning("Socket Mode: could not reach Slack (%s); trying again in %.0f s", type(exc).__name__, delay)
            self.client.wss_uri = None
            self._stopped.wait(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def is_connected(self) -> bool:
        return self.client.is_connected()

    def stop(self) -> None:
        self._stopped.set()
        self.client.close()


def start_socket_mode(settings: Settings, bolt_app: App, first_url: str | None = None) -> SocketMode | None:
    """Connect this process to Slack when SLACK_APP_TOKEN is set (None otherwise: HTTP mode)."""
    if not settings.socket_mode:
        return None
    return SocketMode(settings, bolt_app, first_url).start()
