"""A lease in the database: at most one holder at a time, across processes and machines.

The scheduler holds "scheduler" while it runs jobs and renews it; a second scheduler process
keeps trying and takes over only after the first stops renewing. A sync (scheduled or from the
command line) holds "sync" for its duration, so two syncs never publish at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from peewee import IntegrityError

from core.processes import holder_id, holder_is_dead
from storage.db import database, with_connection
from storage.models import Lease, utcnow

log = logging.getLogger(__name__)


def acquire(name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease; True when `holder` has it now. A lease held by a process of this
    machine that is gone is taken at once; one held elsewhere, once its time-to-live has passed."""
    now = utcnow()
    with database.atomic():
        taken = (
            Lease.update(holder=holder, expires_at=now + ttl)
            .where((Lease.name == name) & ((Lease.holder == holder) | (Lease.expires_at < now)))
            .execute()
        )
        if taken:
            return True
    current = Lease.get_or_none(Lease.name == name)
    if current is not None and holder_is_dead(current.holder):
        log.info("lease %s: its holder %s is gone, taken over", name, current.holder)
        with database.atomic():
            if (
                Lease.update(holder=holder, expires_at=now + ttl)
                .where((Lease.name == name) & (Lease.holder == current.holder))
                .execute()
            ):
                return True
    try:
        with database.atomic():
            Lease.create(name=name, holder=holder, expires_at=now + ttl)
        return True
    except IntegrityError:
        return False


def release(name: str, holder: str) -> None:
    Lease.delete().where((Lease.name == name) & (Lease.holder == holder)).execute()


class LeaseBusy(Exception):
    """Someone else holds the lease."""


@contextmanager
def held(name: str, ttl: timedelta, holder: str | None = None) -> Iterator[str]:
    """Hold the lease for the block, renewed in the background: a long DMS read or a sync waiting
    out Slack's limits keeps it, a dead process loses it after `ttl`."""
    holder = holder or holder_id()
    if not acquire(name, holder, ttl):
        raise LeaseBusy(name)
    done = threading.Event()
    renew = with_connection(acquire)

    def keep_alive() -> None:
        while not done.wait(ttl.total_seconds() / 3):
            try:
                renew(name, holder, ttl)
            except Exception:  # a missed renewal is retried; the lease still has time left
                log.warning("could not renew lease %s", name)

    thread = threading.Thread(target=keep_alive, name=f"lease-{name}", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        done.set()
        thread.join()
        release(name, holder)
