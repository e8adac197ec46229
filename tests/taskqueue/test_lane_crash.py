"""A worker process killed with SIGKILL while its task holds a lane: the task waiting for that lane
is woken once by the sweep and runs once. Real processes, a real SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from huey.signals import SIGNAL_ENQUEUED

from storage.models import TaskRecord
from taskqueue.queue import TaskQueue
from tests.support.harness import wait_until
from tests.support.processes import ROOT, kill, stop
from tests.taskqueue import lane_worker  # noqa: F401  (registers the tasks in this process too)
from tests.taskqueue.test_queue import Messages


def _lane_worker(database_url: str, log: Path, transport: dict) -> subprocess.Popen:
    redis = [transport["redis_url"], transport["name"]] if transport else []
    return subprocess.Popen(
        [sys.executable, "-m", "tests.taskqueue.lane_worker", database_url, *redis],
        cwd=ROOT,
        env={**os.environ, "DOTENV_PATH": os.devnull},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_a_task_waiting_for_the_lane_of_a_killed_worker_is_woken_once_and_runs_once(db, database_url, tmp_path, transport):
    tasks = TaskQueue(poll_seconds=0.1, retry_seconds=0.05, **transport)
    messages = Messages(tasks.huey)
    log, hold, runs = tmp_path / "worker.log", tmp_path / "hold", tmp_path / "runs"
    holder = tasks.enqueue("test.lane_hold", str(hold), lane="ro:9")
    child = _lane_worker(database_url, log, transport)
    try:
        wait_until(lambda: hold.with_suffix(".started").exists(), timeout=60, message="the first task holding the lane")
        waiting = tasks.enqueue("test.lane_note", str(runs), lane="ro:9")
        wait_until(
            lambda: TaskRecord.get_by_id(waiting.id).status == "waiting",
            timeout=60,
            message="the second task parked behind the first (see worker.log)",
        )
        kill(child)
    finally:
        stop(child)
    hold.with_suffix(".release").touch()  # the first task's next attempt does not hold

    before = messages.count(waiting.id, SIGNAL_ENQUEUED)
    for _ in range(3):
        tasks.sweep()
    assert messages.count(waiting.id, SIGNAL_ENQUEUED) - before == 1, "three sweeps woke it once"
    assert TaskRecord.get_by_id(waiting.id).status == "queued"

    tasks.start_workers(2)
    try:
        tasks.wait_idle(timeout=60)
    finally:
        tasks.stop_workers()
    assert runs.read_text().splitlines() == ["ran"], "it ran once"
    assert TaskRecord.get_by_id(waiting.id).status == "done"
    taken_over = TaskRecord.get_by_id(holder.id)
    assert (taken_over.status, taken_over.attempts) == ("done", 2), "the killed task resumed, not lost"
