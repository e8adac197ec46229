"""The app under test: served over real HTTP on loopback, its task workers running, and a client
that sends requests signed the way Slack signs them (slack_sdk's own SignatureVerifier)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import Future, wait
from pathlib import Path
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier
from werkzeug.serving import make_server

from tests.fakes.fake_slack import FakeSlack

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token"


def signature_headers(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body) or "",
    }


def form_body(fields: dict) -> bytes:
    return urlencode(fields).encode()


def event_body(event: dict, event_id: str, team_id: str = "T0001", api_app_id: str = "A0001") -> bytes:
    return json.dumps(event_callback(event, event_id, team_id, api_app_id)).encode()


def event_callback(event: dict, event_id: str, team_id: str = "T0001", api_app_id: str = "A0001") -> dict:
    """An Events API callback, as Slack posts it over HTTP and puts in a Socket Mode envelope's payload."""
    return {
        "token": "legacy",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}],
    }


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
        # Work queued in another process is picked up within this (in-process work wakes the workers at once).
        "QUEUE_POLL_MS": "200",
        # Retries a second apart (huey's scheduler ticks each second), so a test sees every attempt.
        "QUEUE_RETRY_MS": "100",
    }
    env.update(extra)
    return env


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def command_payload(fake: FakeSlack, text: str, user_id: str = "UADVISOR", channel_id: str = "CGENERAL", **fields) -> dict:
    """What Slack sends for `/ro <text>` (as a form over HTTP, as JSON over Socket Mode)."""
    return {
        "token": "legacy",
        "team_id": "T0001",
        "team_domain": "dealer",
        "channel_id": channel_id,
        "channel_name": "general",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": "/ro",
        "text": text,
        "api_app_id": "A0001",
        "response_url": fake.response_url(),
        "trigger_id": fake.new_trigger_id(),
        **fields,
    }


class SlackTestClient:
    """Posts signed requests to the running app, like Slack does."""

    def __init__(self, base_url: str, fake: FakeSlack, secret: str = SIGNING_SECRET):
        self.base_url = base_url
        self.fake = fake
        self.secret = secret

    def post_raw(self, body: bytes, content_type: str, headers: dict | None = None, sign: bool = True) -> requests.Response:
        all_headers = {"Content-Type": content_type}
        if sign:
            all_headers.update(signature_headers(body, self.secret))
        all_headers.update(headers or {})
        return requests.post(self.base_url + "/slack/events", data=body, headers=all_headers, timeout=10)

    def command(self, text: str, user_id: str = "UADVISOR", channel_id: str = "CGENERAL", **fields) -> requests.Response:
        payload = command_payload(self.fake, text, user_id, channel_id, **fields)
        return self.post_raw(form_body(payload), "application/x-www-form-urlencoded")

    def event(self, event: dict, event_id: str | None = None, retry_num: int | None = None) -> requests.Response:
        body = event_body(event, event_id or f"Ev{uuid.uuid4().hex[:10].upper()}")
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else None
        return self.post_raw(body, "application/json", headers)

    def action(self, payload: dict) -> requests.Response:
        payload = {"response_url": self.fake.response_url(), "trigger_id": self.fake.new_trigger_id(), **payload}
        return self.post_raw(form_body({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


class Listeners:
    """Tracks every listener run Bolt hands its executor. Bolt submits the run before it answers
    Slack's HTTP request, so once a request has returned, `settle()` returning means its
    listeners have finished: the deterministic way to check that an event changed nothing."""

    def __init__(self, bolt_app):
        executor = bolt_app.listener_runner.listener_executor
        submit = executor.submit
        self._futures: list[Future] = []
        self._lock = threading.Lock()

        def tracking(fn, /, *args, **kwargs):
            future = submit(fn, *args, **kwargs)
            with self._lock:
                self._futures.append(future)
            return future

        executor.submit = tracking

    def settle(self, timeout: float = 10.0) -> None:
        while True:
            with self._lock:
                running = [f for f in self._futures if not f.done()]
            if not running:
                return
            _, not_done = wait(running, timeout=timeout)
            assert not not_done, f"{len(not_done)} listener run(s) still going after {timeout}s"


class RunningApp:
    def __init__(self, settings, flask_app, services, bolt_app, workers: int = 3):
        self.settings = settings
        self.flask_app = flask_app
        self.services = services
        self.bolt_app = bolt_app
        self.listeners = Listeners(bolt_app)
        self._server = make_server("127.0.0.1", 0, flask_app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        if workers:
            services.tasks.start_workers(workers)

    def settle(self, timeout: float = 30.0) -> None:
        """Every listener started so far has finished, and every task queued so far has run."""
        self.listeners.settle(timeout)
        self.services.tasks.wait_idle(timeout)

    def stop(self) -> None:
        """Stop serving and wait for the listeners and tasks still running: left going, they
        would write into the database the next test binds."""
        self._server.shutdown()
        self.bolt_app.listener_runner.listener_executor.shutdown(wait=True)
        self.services.tasks.stop_workers()


def start_app(env: dict[str, str], workers: int = 3) -> RunningApp:
    import bot
    from core.config import load_settings

    settings = load_settings(env, require_slack=True)
    bot.open_storage(settings)
    services, bolt_app, flask_app = bot.build(settings)
    return RunningApp(settings, flask_app, services, bolt_app, workers=workers)
