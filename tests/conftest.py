"""Shared fixtures: a fake Slack on loopback, a database (SQLite always, PostgreSQL when
TEST_POSTGRES_URL is set), and the real app served over HTTP with a signed-request client."""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from tests.fake_slack import FakeSlack
from tests.slack_signing import event_body, form_body, signature_headers

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


@pytest.fixture
def fake_slack():
    fake = FakeSlack(bot_token=BOT_TOKEN).start()
    fake.add_user("UADVISOR", "marie", email="marie.roy@dealer.example", real_name="Marie Roy", locale="fr-CA")
    fake.add_user("UTECH", "luc", email="luc.martin@dealer.example", real_name="Luc Martin", locale="en-US")
    yield fake
    fake.stop()


def _postgres_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind; PostgreSQL gets its own schema per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    if not POSTGRES_URL:
        reason = "PostgreSQL tests need TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres)"
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(reason + "; REQUIRE_POSTGRES is set, so skipping is a failure")
        pytest.skip(reason)
    import psycopg2

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        yield _postgres_schema_url(POSTGRES_URL, schema)
    finally:
        from storage.db import database

        if database.obj is not None and hasattr(database.obj, "close_all"):
            database.obj.close_all()
        admin.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/test.db"


def make_env(fake: FakeSlack | None, db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url if fake else "http://127.0.0.1:9/api/",
        "DATABASE_URL": db_url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "PUBLIC_URL": "http://localhost:3000",
        "SHOP_TIMEZONE": "America/Toronto",
        "DMS_FILE": str(tmp_path / "feed.csv"),
        "MAX_BODY_BYTES": "65536",
    }
    env.update(extra)
    return env


class SlackTestClient:
    """Posts signed requests to the running app, like Slack does."""

    def __init__(self, base_url: str, fake: FakeSlack, secret: str = SIGNING_SECRET):
        self.base_url = base_url
        self.fake = fake
        self.secret = secret
        self._events = 0

    def post_raw(self, body: bytes, content_type: str, headers: dict | None = None, sign: bool = True) -> requests.Response:
        all_headers = {"Content-Type": content_type}
        if sign:
            all_headers.update(signature_headers(body, self.secret))
        all_headers.update(headers or {})
        return requests.post(self.base_url + "/slack/events", data=body, headers=all_headers, timeout=10)

    def command(self, text: str, user_id: str = "UADVISOR", channel_id: str = "CGENERAL", **fields) -> requests.Response:
        payload = {
            "token": "legacy", "team_id": "T0001", "team_domain": "dealer", "channel_id": channel_id,
            "channel_name": "general", "user_id": user_id, "user_name": user_id.lower(), "command": "/ro",
            "text": text, "api_app_id": "A0001", "response_url": self.fake.response_url(),
            "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}", **fields,
        }
        return self.post_raw(form_body(payload), "application/x-www-form-urlencoded")

    def event(self, event: dict, event_id: str | None = None, retry_num: int | None = None) -> requests.Response:
        self._events += 1
        body = event_body(event, event_id or f"Ev{uuid.uuid4().hex[:10].upper()}")
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else None
        return self.post_raw(body, "application/json", headers)

    def action(self, payload: dict) -> requests.Response:
        payload = {"response_url": self.fake.response_url(), "trigger_id": f"trigger-{uuid.uuid4().hex[:8]}", **payload}
        return self.post_raw(form_body({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


class RunningApp:
    def __init__(self, settings, flask_app, services, bolt_app):
        self.settings = settings
        self.flask_app = flask_app
        self.services = services
        self.bolt_app = bolt_app
        self._server = make_server("127.0.0.1", 0, flask_app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the listeners and background jobs still running: left going,
        they would write into the database the next test binds."""
        from media import background

        self._server.shutdown()
        self.bolt_app.listener_runner.listener_executor.shutdown(wait=True)
        background.drain()


def start_app(env: dict[str, str]) -> RunningApp:
    import bot
    from core.config import load_settings

    settings = load_settings(env, require_slack=True)
    bot.open_storage(settings)
    services, bolt_app, flask_app = bot.build(settings)
    return RunningApp(settings, flask_app, services, bolt_app)


@pytest.fixture
def app_env(fake_slack, sqlite_url, tmp_path):
    return make_env(fake_slack, sqlite_url, tmp_path)


@pytest.fixture
def running_app(app_env):
    app = start_app(app_env)
    yield app
    app.stop()


@pytest.fixture
def slack(running_app, fake_slack) -> SlackTestClient:
    return SlackTestClient(running_app.url, fake_slack)


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")
