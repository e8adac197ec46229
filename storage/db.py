"""The database: one peewee proxy, bound at start from DATABASE_URL.

SQLite gets WAL, foreign keys and a busy timeout so the web process and the scheduler can share
a file, and its transactions begin IMMEDIATE: a deferred transaction that reads, then writes after
another connection has committed cannot wait (SQLITE_BUSY_SNAPSHOT bypasses the busy timeout) and
fails at once with "database is locked". PostgreSQL gets a connection pool because Bolt runs
listeners on a thread pool.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from peewee import Database, DatabaseProxy
from playhouse.db_url import connect

database = DatabaseProxy()

SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000, "synchronous": "normal"}
# Every thread of a process can hold a connection while it works: 8 web threads (--threads),
# 10 Bolt listeners, 3 background jobs, up to 10 scheduler jobs and the lease renewers. A smaller
# pool made Slack wait 10 s and then answered 500 in a burst. PostgreSQL allows 100 by default.
PG_POOL_SIZE = 40
T = TypeVar("T")


def _pooled(url: str) -> str:
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+pool://" + url[len(scheme) :]
    return url


def open_database(url: str) -> Database:
    """Create (not connect) the Database for `url` and bind the proxy to it."""
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = connect(url, pragmas=SQLITE_PRAGMAS, timeout=10, lock_type="IMMEDIATE")
    else:
        db = connect(_pooled(url), max_connections=PG_POOL_SIZE, stale_timeout=300, timeout=10)
    database.initialize(db)
    return db


def with_connection(fn: Callable[..., T]) -> Callable[..., T]:
    """Run `fn` inside its own connection (returned to the pool after), for threads Flask doesn't manage."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with database.connection_context():
            return fn(*args, **kwargs)

    return wrapper


def is_postgres() -> bool:
    return "postgres" in type(database.obj).__name__.lower()
