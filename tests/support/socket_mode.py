"""Socket Mode fixtures: the fake WebSocket endpoint FakeSlack's apps.connections.open points to,
and the real app connected to it (in this process, or as `python bot.py web` processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.fake_socket_mode import FakeSocketMode
from tests.support.harness import make_env, start_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_socket_mode(fake_slack):
    fake = FakeSocketMode(app_id=fake_slack.app_id).start()
    fake_slack.socket_mode = fake
    yield fake
    fake.stop()
    if fake.server_errors:
        raise AssertionError("FakeSocketMode hit internal errors:\n" + "\n".join(fake.server_errors))


@pytest.fixture
def socket_env(fake_slack, fake_socket_mode, sqlite_url, tmp_path):
    # Pings every 2 s: closing a client waits out one ping interval (websocket-client joins its ping thread).
    return make_env(fake_slack, sqlite_url, tmp_path, SLACK_APP_TOKEN=fake_slack.app_token, SOCKET_MODE_PING_SECONDS="2")


@pytest.fixture
def socket_app(socket_env, fake_socket_mode):
    """The real app (HTTP server, task workers) with its Socket Mode connection open."""
    from server.socket_mode import start_socket_mode

    app = start_app(socket_env)
    connection = start_socket_mode(app.settings, app.bolt_app)
    fake_socket_mode.wait_for_connections(1)
    yield app
    connection.stop()
    app.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bot_process(command: str, env: dict, log: Path) -> subprocess.Popen:
    """`python bot.py <command>` on a port of its own, its output appended to `log`."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), command, "--threads", "2"],
        cwd=ROOT,
        env={**os.environ, **env, "PORT": str(free_port()), "DOTENV_PATH": os.devnull},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
