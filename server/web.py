"""The Flask app: `/slack/events` through Bolt's Flask adapter, `/healthz`, and JSON errors.

Slack requests are checked here before Bolt sees them, so that every bad input gets its own
clear status: 413 too large, 401 unsigned or stale, 400 malformed. Bolt checks the signature
again; the cost is one HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from urllib.parse import parse_qsl

from flask import Flask, Response, jsonify, request
from peewee import PeeweeException
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from werkzeug.exceptions import HTTPException

from core.config import Settings
from storage.db import database

log = logging.getLogger(__name__)
MAX_CLOCK_SKEW_SECONDS = 5 * 60  # Slack's own replay window


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def create_flask_app(settings: Settings, bolt_app: App) -> Flask:
    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    handler = SlackRequestHandler(bolt_app)

    @flask_app.before_request
    def _connect() -> None:
        database.connect(reuse_if_open=True)

    @flask_app.teardown_request
    def _close(_exc) -> None:
        if not database.is_closed():
            database.close()

    @flask_app.post("/slack/events")
    def slack_events() -> Response:
        try:
            check_slack_request(settings.slack_signing_secret or "", settings.max_body_bytes)
        except BadRequest as bad:
            return _error(bad.status, bad.message)
        try:
            return handler.handle(request)
        except PeeweeException:
            log.exception("database error on a Slack request")
            return _error(503, "database unavailable")
        except Exception as exc:
            # Bolt reads a payload's shape before any listener runs (listener errors never reach
            # here): a signed payload it cannot read is a malformed request, not our 500.
            log.warning("unreadable Slack payload: %s: %s", type(exc).__name__, exc)
            return _error(400, "malformed Slack payload")

    @flask_app.get("/healthz")
    def healthz() -> Response:
        try:
            database.execute_sql("SELECT 1")
        except Exception as exc:  # health must answer, not raise
            log.warning("health check: database unreachable: %s", type(exc).__name__)
            return _error(503, "database unreachable")
        return jsonify(status="ok")

    @flask_app.get("/readyz")
    def readyz() -> Response:
        """Readiness for a load balancer: send traffic here only while the database, Redis and
        the bucket (those configured) answer. /healthz stays the liveness probe (the process and
        its database)."""
        from server.preflight import not_ready

        problems = not_ready(settings)
        if problems:
            log.warning("readiness: %s", "; ".join(problems))
            response = jsonify(ok=False, status="not ready", problems=problems)
            response.status_code = 503
            return response
        return jsonify(status="ready")

    @flask_app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @flask_app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error")

    return flask_app


def _error(status: int, message: str) -> Response:
    response = jsonify(ok=False, error=message)
    response.status_code = status
    return response


def check_slack_request(secret: str, max_bytes: int) -> None:
    """Raise BadRequest unless the current request is a signed, fresh, well-formed Slack request."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise BadRequest(413, f"request body over {max_bytes} bytes")
    body = request.get_data(cache=True)
    if len(body) > max_bytes:
        raise BadRequest(413, f"request body over {max_bytes} bytes")

    timestamp = request.headers.get("X-Slack-Request-Timestamp")
    signature = request.headers.get("X-Slack-Signature")
    if not timestamp or not signature:
        raise BadRequest(401, "missing Slack signature headers")
    if not timestamp.strip().isdigit():
        raise BadRequest(400, "X-Slack-Request-Timestamp must be a number")
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise BadRequest(401, "stale Slack request timestamp")
    if not secret or not _signed(secret, body, timestamp.strip(), signature):
        raise BadRequest(401, "invalid Slack signature")

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "body is not UTF-8") from None
    content_type = (request.mimetype or "").lower()
    if content_type == "application/json" or text.lstrip().startswith("{"):
        _check_event_envelope(_parse_json_object(text, "body"))
        return
    try:
        fields = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict"))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "body is not valid form encoding") from None
    if "payload" in fields:
        _parse_json_object(fields["payload"], "payload")
    elif not fields.get("command") and "ssl_check" not in fields:
        raise BadRequest(400, "form body has neither a command nor a payload")


def _signed(secret: str, body: bytes, timestamp: str, signature: str) -> bool:
    """slack_sdk's SignatureVerifier; it decodes the body as UTF-8 first, so a body that is not
    UTF-8 is checked over its raw bytes here (the same v0 HMAC), to answer 401 or 400, not crash."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)
    return SignatureVerifier(secret).is_valid(body, timestamp, signature)


def _check_event_envelope(body: dict) -> None:
    """An Events API callback must carry an event object and a Slack-sized event id."""
    if body.get("type") != "event_callback":
        return
    if not isinstance(body.get("event"), dict):
        raise BadRequest(400, "event_callback without an event object")
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 64:
        raise BadRequest(400, "event_callback without a valid event_id")


def _parse_json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise BadRequest(400, f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(400, f"{what} must be a JSON object")
    return value
