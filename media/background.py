"""Work that must not hold up Slack's 3-second acknowledgement: file copies, transcoding, delivery.

One small pool per process; every job gets its own database connection and its failures are
logged (never raised into a thread nobody watches).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from storage.db import with_connection

log = logging.getLogger(__name__)
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
WORKERS = 3


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="media")
        return _pool


def submit(name: str, fn: Callable[..., object], *args: object, **kwargs: object) -> Future:
    """Run `fn(*args, **kwargs)` in the background, inside its own database connection."""
    job = with_connection(fn)

    def run() -> object:
        try:
            return job(*args, **kwargs)
        except Exception:
            log.exception("background job %s failed", name)
            return None

    return _executor().submit(run)


def drain() -> None:
    """Wait for the jobs already submitted: a stopping server finishes the sends it started
    instead of dropping them. A later submit starts a new pool."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)
