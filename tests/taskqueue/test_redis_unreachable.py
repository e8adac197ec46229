"""Redis unreachable when a process starts (REDIS_URL): one clear line from `check` and from
start-up, no traceback, and the password in the URL never shown."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.files import _free_port
from tests.support.harness import make_env
from tests.support.processes import ROOT


def _bot(command: str, env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), command],
        cwd=cwd,
        env={**os.environ, **env, "DOTENV_PATH": os.devnull},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", ["worker", "scheduler", "web", "serve"])
def test_redis_unreachable_stops_start_up_in_one_line(command, fake_slack, sqlite_url, tmp_path):
    port = _free_port()
    env = make_env(fake_slack, sqlite_url, tmp_path, REDIS_URL=f"redis://:s3cret-pass@127.0.0.1:{port}/0")
    started = _bot(command, env, tmp_path)
    said = [line for line in started.stderr.splitlines() if line.strip()]
    assert started.returncode == 2, started.stdout + started.stderr
    assert said == [f"Cannot start: task queue: Redis at 127.0.0.1:{port} not reachable: ConnectionError"], started.stderr
    assert "s3cret-pass" not in started.stdout + started.stderr and "Traceback" not in started.stdout + started.stderr


def test_check_says_in_one_line_whether_redis_answers(fake_slack, sqlite_url, tmp_path, redis_url):
    port = _free_port()
    down = _bot(
        "check", make_env(fake_slack, sqlite_url, tmp_path, REDIS_URL=f"redis://:s3cret-pass@127.0.0.1:{port}/0"), tmp_path
    )
    [line] = [line for line in down.stdout.splitlines() if "task queue" in line]
    assert down.returncode == 1 and line == f"[FAIL] task queue: Redis at 127.0.0.1:{port} not reachable: ConnectionError"
    assert "s3cret-pass" not in down.stdout + down.stderr

    up = _bot("check", make_env(fake_slack, sqlite_url, tmp_path, REDIS_URL=redis_url), tmp_path)
    [line] = [line for line in up.stdout.splitlines() if "task queue" in line]
    assert line.startswith("[ok  ] task queue: Redis at ") and line.endswith(" reachable"), up.stdout
