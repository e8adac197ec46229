"""`python bot.py check`: what is configured, what is missing, what is unreachable, line by line."""

from __future__ import annotations

import sys
from collections.abc import Callable

from core.config import ConfigError, Settings, load_settings
from server import preflight

OK, FAIL, INFO = "ok  ", "FAIL", "info"
BACKLOG_LATE_MINUTES = 10


def _line(status: str, what: str, detail: str) -> None:
    print(f"[{status}] {what}: {detail}")


def run_checks(read_env: bool = True) -> int:
    failures = 0
    try:
        settings = load_settings(require_slack=True, read_dotenv=read_env)
        _line(OK, "configuration", "all variables valid")
    except ConfigError as exc:
        for problem in exc.problems:
            _line(FAIL, "configuration", problem)
        failures += len(exc.problems)
        try:
            settings = load_settings(require_slack=False, read_dotenv=read_env)
        except ConfigError:
            print(f"{failures} problem(s) found.")
            return 1
    for what, check in _checks(settings):
        try:
            detail = check()
            _line(OK, what, detail)
        except Exception as exc:  # every failure becomes one readable line
            failures += 1
            _line(FAIL, what, _describe(exc))
    if settings.socket_mode:
        try:
            _line(OK, "Socket Mode", check_socket_mode(settings))
        except Exception as exc:
            failures += 1
            _line(FAIL, "Socket Mode", _describe(exc))
    else:
        _line(
            INFO,
            "Socket Mode",
            "off: HTTP mode, Slack posts to PUBLIC_URL/slack/events (set SLACK_APP_TOKEN to connect out instead)",
        )
    _line(
        INFO,
        "SMS",
        "on (Twilio)"
        if settings.sms_enabled
        else "off: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM to text customers",
    )
    _line(INFO, "email", "on" if settings.email_enabled else "off: set SMTP_URL and MAIL_FROM to email customers and admins")
    print("All checks passed." if not failures else f"{failures} problem(s) found.")
    return 0 if not failures else 1


def check_socket_mode(settings: Settings) -> str:
    """The app-level token opens a connection and Slack says hello on it (outbound WebSockets allowed)."""
    import json

    import websocket

    from server.socket_mode import SocketModeRefused, open_connection_url

    try:
        url = open_connection_url(settings)
    except SocketModeRefused as exc:
        raise RuntimeError(str(exc)) from None
    try:
        connection = websocket.create_connection(url, timeout=10)
    except Exception as exc:
        raise RuntimeError(
            f"token accepted, but the WebSocket did not open ({type(exc).__name__}): is outbound wss:// blocked?"
        ) from None
    try:
        first = json.loads(connection.recv())
    except Exception as exc:
        raise RuntimeError(f"connected, but Slack sent no hello ({type(exc).__name__})") from None
    finally:
        connection.close()
    if not isinstance(first, dict) or first.get("type") != "hello":
        raise RuntimeError("connected, but Slack's first message was not hello")
    return "app-level token accepted, connected and greeted (no public URL needed for Slack)"


def _describe(exc: Exception) -> str:
    from core.logsafe import redact

    return redact(str(exc) or type(exc).__name__)


def _checks(settings: Settings) -> list[tuple[str, Callable[[], str]]]:
    def database() -> str:
        from storage.db import database, open_database
        from storage.migrations import migrate

        open_database(settings.database_url)
        version = migrate()
        database.close() if not database.is_closed() else None
        kind = "PostgreSQL" if "postgres" in settings.database_url else "SQLite"
        return f"{kind} reachable, schema version {version}"

    def slack() -> str:
        if not settings.slack_bot_token:
            raise RuntimeError("skipped: no SLACK_BOT_TOKEN")
        from slackapi.client import make_web_client
        from slackapi.service import SlackService

        info = SlackService(make_web_client(settings.slack_bot_token, settings.slack_api_url, max_retries=1)).auth_test()
        return f"auth.test ok: bot {info.get('user')} in team {info.get('team')}"

    def dms() -> str:
        from dms.connector import open_connector

        return open_connector(settings).check()

    def backlog() -> str:
        from peewee import fn

        from storage.db import database, open_database
        from storage.models import TaskRecord, utcnow

        open_database(settings.database_url)
        with database.connection_context():
            counts = dict(
                TaskRecord.select(TaskRecord.status, fn.COUNT(TaskRecord.id))
                .where(TaskRecord.status.in_(("queued", "waiting", "running")))
                .group_by(TaskRecord.status)
                .tuples()
            )
            oldest = (
                TaskRecord.select(fn.MIN(TaskRecord.run_after))
                .where((TaskRecord.status == "queued") & (TaskRecord.run_after <= utcnow()))
                .scalar()
            )
        late = int((utcnow() - oldest).total_seconds() // 60) if oldest else 0
        detail = f"{counts.get('queued', 0)} queued, {counts.get('waiting', 0)} waiting, {counts.get('running', 0)} running"
        if late >= BACKLOG_LATE_MINUTES:
            # Work due this long and not taken: no worker runs, or too few for the load.
            raise RuntimeError(f"{detail}; the oldest due task has waited {late} min: is a worker running?")
        return detail + (f"; the oldest due task has waited {late} min" if late else "")

    def holders() -> str:
        from storage.db import database, open_database
        from storage.models import Lease, utcnow

        open_database(settings.database_url)
        with database.connection_context():
            now = utcnow()
            live = [lease for lease in Lease.select().order_by(Lease.name) if lease.expires_at > now]
        if not live:
            return "none held (no scheduler running, no sync or merge under way)"
        return ", ".join(f"{lease.name} by {lease.holder}" for lease in live[:8]) + (" …" if len(live) > 8 else "")

    reachable = [(what, lambda check=check: check(settings)) for what, check in preflight.services(settings)]
    return [("database", database), *reachable, ("Slack", slack), ("DMS", dms), ("queue backlog", backlog), ("leases", holders)]


if __name__ == "__main__":
    sys.exit(run_checks())
