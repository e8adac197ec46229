"""Who holds a claim or a lease: "host:pid:started:nonce", and whether that holder is gone.

A holder on this machine whose process is gone (or whose pid now belongs to another process,
told apart by its start time) can be taken over at once; a holder on another machine only
after its time-to-live, since we cannot see its processes.
"""

from __future__ import annotations

import os
import socket
import uuid
from functools import lru_cache

import psutil


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def _started(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).create_time() * 1000)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def holder_id() -> str:
    """A new holder id for this process (a fresh nonce each call: two claims of one process differ)."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_started(pid) or 0}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str | None) -> bool:
    """True only when `holder` ran on this machine and its process is gone (or was reaped and its
    pid reused, or is a zombie). Unknown shapes and other machines: False (wait for the TTL)."""
    parts = (holder or "").split(":")
    if len(parts) != 4 or parts[0] != _host() or not parts[1].isdigit() or not parts[2].isdigit():
        return False
    pid, started = int(parts[1]), int(parts[2])
    if pid == os.getpid():
        return False
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False
    now_started = _started(pid)
    return now_started is None or (started != 0 and now_started != started)
