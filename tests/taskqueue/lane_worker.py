"""Tasks for the lane crash test, and the worker process that runs them (`python -m
tests.taskqueue.lane_worker DATABASE_URL [REDIS_URL QUEUE_NAME]`): the test and its worker both register them."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from taskqueue.queue import TaskQueue, task


@task("test.lane_hold", max_attempts=3)
def lane_hold(context, path: str) -> None:
    """Says it started (`path`.started), then holds its lane until `path`.release exists."""
    hold = Path(path)
    hold.with_suffix(".started").touch()
    deadline = time.monotonic() + 120  # a guard: the test releases or kills it long before
    while not hold.with_suffix(".release").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("never released")
        time.sleep(0.05)


@task("test.lane_note")
def lane_note(context, path: str) -> None:
    """One line in `path` per run."""
    with open(path, "a") as runs:
        runs.write("ran\n")


def main(url: str, redis_url: str | None = None, name: str = "repair-orders") -> None:
    from storage.db import open_database

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    open_database(url)
    TaskQueue(poll_seconds=0.1, redis_url=redis_url, name=name).run_workers(2)


if __name__ == "__main__":
    main(*sys.argv[1:4])
