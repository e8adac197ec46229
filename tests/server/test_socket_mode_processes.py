"""Socket Mode as operators run it: `python bot.py web` processes connected to the fake endpoint,
a refused app-level token at start-up, and `python bot.py check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.test_socket_mode import home_opened
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET, wait_until
from tests.support.processes import stop
from tests.support.socket_mode import bot_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        stop(process)


def test_two_processes_process_a_redelivered_event_once(socket_env, fake_slack, fake_socket_mode, processes, tmp_path):
    log = tmp_path / "bots.log"
    processes.append(bot_process("web", socket_env, log))
    fake_socket_mode.wait_for_connections(1, timeout=60)  # the first has migrated the shared database
    processes.append(bot_process("serve", socket_env, log))  # serve and web both hold a connection
    first, second = fake_socket_mode.wait_for_connections(2, timeout=60)

    # Slack thought the first delivery failed and retried on the other connection, both at once.
    payload = home_opened("UTECH", event_id="EvTWOPROCS")
    envelopes = [
        fake_socket_mode.push("events_api", payload, first),
        fake_socket_mode.push("events_api", payload, second, retry_attempt=1, retry_reason="timeout"),
    ]
    for envelope in envelopes:
        fake_socket_mode.wait_for_ack(envelope, timeout=30)
    fake_slack.wait_for("views.publish", timeout=30)
    # One process recorded the event id first; the other found it recorded and ran no listener.
    wait_until(lambda: "EvTWOPROCS already processed" in log.read_text(errors="replace"), timeout=30, message="the skip")
    assert len([c for c in fake_slack.calls_to("views.publish") if c.args.get("user_id") == "UTECH"]) == 1
    assert all(p.poll() is None for p in processes), log.read_text(errors="replace")


def test_a_refused_app_token_stops_start_up_with_one_line(socket_env, fake_slack, fake_socket_mode, tmp_path):
    log = tmp_path / "bot.log"
    process = bot_process("web", {**socket_env, "SLACK_APP_TOKEN": "xapp-1-A0000APP1-1-revoked"}, log)
    assert process.wait(60) != 0
    output = log.read_text(errors="replace")
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [
        "Socket Mode: Slack refused SLACK_APP_TOKEN (invalid_auth): generate an App-Level Token with the "
        "connections:write scope on your Slack app's Basic Information page, and turn Socket Mode on."
    ], output
    assert fake_socket_mode.connections == []


def _check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "DMS", "TWILIO", "SMTP"))}
    clean.update(env, DOTENV_PATH=str(cwd / "absent.env"))
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "check"], env=clean, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _check_env(fake_slack, tmp_path: Path, **extra: str) -> dict[str, str]:
    feed = tmp_path / "feed.csv"
    feed.write_text("ro_number,customer_last_name,status\n48213,Tremblay,open\n", encoding="utf-8")
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "DMS_FILE": str(feed),
        **extra,
    }


def test_check_says_socket_mode_works(fake_slack, fake_socket_mode, tmp_path):
    result = _check(_check_env(fake_slack, tmp_path, SLACK_APP_TOKEN=fake_slack.app_token), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] Socket Mode: app-level token accepted, connected and greeted" in result.stdout
    assert len(fake_socket_mode.connections) == 1  # it really opened the WebSocket
    assert fake_slack.app_token not in result.stdout + result.stderr


def test_check_fails_on_a_refused_app_token(fake_slack, fake_socket_mode, tmp_path):
    token = "xapp-1-A0000APP1-1-wrong"
    result = _check(_check_env(fake_slack, tmp_path, SLACK_APP_TOKEN=token), tmp_path)
    assert result.returncode == 1
    socket_lines = [line for line in result.stdout.splitlines() if "Socket Mode" in line]
    assert len(socket_lines) == 1 and socket_lines[0].startswith(
        "[FAIL] Socket Mode: Slack refused SLACK_APP_TOKEN (invalid_auth)"
    )
    assert token not in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr


def test_check_names_a_token_that_is_not_an_app_token(fake_slack, tmp_path):
    result = _check(_check_env(fake_slack, tmp_path, SLACK_APP_TOKEN=BOT_TOKEN), tmp_path)
    assert result.returncode == 1
    assert "[FAIL] configuration: SLACK_APP_TOKEN is not an app-level token (it should start with xapp-)" in result.stdout
    assert BOT_TOKEN not in result.stdout


def test_check_says_http_mode_without_an_app_token(fake_slack, tmp_path):
    result = _check(_check_env(fake_slack, tmp_path), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[info] Socket Mode: off: HTTP mode" in result.stdout
