"""The app deployed as several processes, the way an operator runs it on one machine: gunicorn
serving `bot:create_app()`, `bot.py worker` and `bot.py scheduler` processes, on PostgreSQL, a
Redis task queue and S3 object storage; the fakes (Slack, Twilio) and the DMS file feed beside them.

Fixtures: `redis_queue` (a queue name of the test's own on TEST_REDIS_URL; skipped without it,
failed instead under REQUIRE_REDIS); the database is conftest's `postgres_url`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support.harness import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RedisQueue:
    url: str
    name: str  # QUEUE_NAME: this test's keys only, so parallel tests sharing the Redis never meet

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url, "QUEUE_NAME": self.name}


@pytest.fixture
def redis_queue(redis_url):
    """TEST_REDIS_URL (conftest's `redis_url`: skipped without it, failed under REQUIRE_REDIS)
    with a queue name of this test's own, emptied after it."""
    from huey import RedisHuey

    queue = RedisQueue(redis_url, f"topology_{uuid.uuid4().hex[:10]}")
    yield queue
    RedisHuey(queue.name, url=redis_url, clean_name=False).storage.flush_all()


# -- processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env, "DOTENV_PATH": os.devnull},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@dataclass
class Deployment:
    """The processes of one deployment; each role's processes in start order."""

    env: dict[str, str]
    folder: Path
    port: int = field(default_factory=free_port)
    web: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    schedulers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "deployment.log"

    def start(self, workers: int = 2, schedulers: int = 1) -> Deployment:
        # gunicorn directly, as the README allows: two workers, each its own Flask app and pool.
        self.web = _spawn(
            ["-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{self.port}", "bot:create_app()"],
            self.env,
            self.log,
        )
        self.workers = [_spawn(["bot.py", "worker", "--workers", "2"], self.env, self.log) for _ in range(workers)]
        for _ in range(schedulers):
            self.start_scheduler()
        wait_until(self._serving, timeout=90, interval=0.2, message="gunicorn ready (/readyz: database, Redis, bucket)")
        return self

    def start_scheduler(self) -> subprocess.Popen:
        process = _spawn(["bot.py", "scheduler"], self.env, self.log)
        self.schedulers.append(process)
        return process

    def _serving(self) -> bool:
        self.check_alive()
        try:
            return requests.get(self.url + "/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def all(self) -> list[subprocess.Popen]:
        return [p for p in (self.web, *self.workers, *self.schedulers) if p is not None]

    def check_alive(self) -> None:
        """Fail at once, with the log, when a process we did not kill has stopped."""
        for process in self.all():
            if process.poll() is not None and process.returncode != -signal.SIGKILL:
                raise AssertionError(f"process {process.args} exited with {process.returncode}:\n{self.tail()}")

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def by_pid(self, pid: int) -> subprocess.Popen:
        return next(p for p in self.all() if p.pid == pid)

    def stop(self) -> None:
        """SIGTERM to each (graceful: running tasks finish, the lease is let go), SIGKILL after 20 s."""
        for process in self.all():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.all():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def holder_pid(holder: str | None) -> int | None:
    """The process id in a claim or lease holder ("host:pid:started:nonce")."""
    parts = (holder or "").split(":")
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None


def sigkill(process: subprocess.Popen) -> None:
    """No cleanup, no goodbye: the lease and claims it held stay written as they were."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)
