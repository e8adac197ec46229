"""Task-queue benchmark: how many tasks a second one worker process drains, messages in the
database (huey's SQL storage, the default) against Redis (REDIS_URL), in one run.

    .venv/bin/python bench/task_queue.py                       # 400 tasks, SQLite, and Redis if it answers
    .venv/bin/python bench/task_queue.py --tasks 2000 --postgres postgresql://postgres@127.0.0.1:5432/postgres

Each task is what a light real task costs the queue: its journal row claimed, one small write of
its own (a lease renewed), the row marked done. The baseline is the database queue on SQLite, the
`./start.sh` default. Each configuration runs in a process of its own, with WORKERS threads:
time to enqueue (records stored and messages handed over), time to drain, tasks a second.
For sizing (README, "Deploying at scale"). Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _child(database_url: str, redis_url: str | None, tasks: int, workers: int) -> dict:
    from datetime import timedelta

    from storage.db import database, open_database
    from storage.migrations import migrate
    from storage.models import Lease, utcnow
    from taskqueue.queue import TaskQueue, task

    @task("bench.touch")
    def touch(context, n: int) -> None:
        Lease.update(expires_at=utcnow() + timedelta(seconds=n % 7)).where(Lease.name == "bench").execute()

    open_database(database_url)
    migrate()
    name = "bench-" + uuid.uuid4().hex[:8]
    queue = TaskQueue(redis_url=redis_url, name=name, poll_seconds=0.05)
    with database.connection_context():
        Lease.create(name="bench", holder="bench", expires_at=utcnow())
        started = time.perf_counter()
        for n in range(tasks):
            queue.enqueue("bench.touch", n)
        enqueued = time.perf_counter() - started
    started = time.perf_counter()
    queue.start_workers(workers)
    queue.wait_idle(timeout=600)
    drained = time.perf_counter() - started
    queue.stop_workers()
    if redis_url:
        queue.huey.storage.flush_all()
    with database.connection_context():
        from storage.models import TaskRecord

        done = TaskRecord.select().where(TaskRecord.status == "done").count()
    return {"enqueue_s": enqueued, "drain_s": drained, "done": done}


def _run(label: str, database_url: str, redis_url: str | None, tasks: int, workers: int) -> dict:
    args = [sys.executable, __file__, "--child", database_url, redis_url or "-", str(tasks), str(workers)]
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=900, cwd=ROOT, env={**os.environ, "DOTENV_PATH": os.devnull}
    )
    if out.returncode != 0:
        raise SystemExit(f"{label} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["done"] != tasks:
        raise SystemExit(f"{label}: {result['done']} of {tasks} tasks done")
    return result


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _fresh_postgres(url: str) -> str:
    import psycopg2

    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = psycopg2.connect(url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE SCHEMA {schema}")
    admin.close()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, url, redis_url, tasks, workers = sys.argv
        print(json.dumps(_child(url, None if redis_url == "-" else redis_url, int(tasks), int(workers))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--workers", type=int, default=3, help="worker threads (QUEUE_WORKERS' default)")
    parser.add_argument("--postgres", help="also on PostgreSQL (a fresh schema of this server)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    runs = [("baseline  database queue, SQLite", f"sqlite:///{folder}/a.db", None)]
    if _redis_answers(args.redis):
        runs.append(("Redis queue, journal on SQLite", f"sqlite:///{folder}/b.db", args.redis))
    if args.postgres:
        runs.append(("database queue, PostgreSQL", _fresh_postgres(args.postgres), None))
        if _redis_answers(args.redis):
            runs.append(("Redis queue, journal on PostgreSQL", _fresh_postgres(args.postgres), args.redis))
    print(f"tasks: {args.tasks}, one worker process with {args.workers} threads, each task one small write")
    for label, url, redis_url in runs:
        result = _run(label, url, redis_url, args.tasks, args.workers)
        rate = args.tasks / result["drain_s"]
        print(f"{label:<38} enqueue {result['enqueue_s']:6.2f} s   drain {result['drain_s']:6.2f} s   {rate:7.1f} tasks/s")


if __name__ == "__main__":
    main()
