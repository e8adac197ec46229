"""The durable task queue: huey carries and retries the work, a journal table makes it survive crashes.

huey (by peewee's author) gives us the transport in our own database (its SQL storage on the
same DATABASE_URL, so `serve` stays one command) or in Redis (REDIS_URL), worker threads or
processes, delayed retries with exponential backoff and a scheduler for them. What huey does not
do is acknowledge work: a message is removed from the queue when a worker takes it, so a worker
killed mid-task loses it (huey's docs say so: no at-least-once delivery). That one missing
piece is ours, in `TaskRecord`:

- `enqueue()` writes the record (inside the caller's transaction when there is one; with the SQL
  storage huey's message goes in the same transaction), then hands huey a message naming it;
- a worker claims the record before running it (one conditional UPDATE: queued → running, with
  its holder id and a claim time renewed while it runs); a record that is done, failed or
  claimed by a live holder is not run again, so a duplicate message is harmless;
- `sweep()` (at worker start and every half minute from the scheduler) hands huey a new message
  for every record whose work was lost: queued but never taken, or claimed by a holder that died
  (a process gone from this machine at once, any other after its claim expired).

Work is therefore run at least once and never twice at the same time; task functions are written
to be safe to resume (each checks what is already done, e.g. a send asks Twilio before texting).

Records sharing a `lane` run one at a time (the lane is a lease in the database). A record that
finds its lane taken is parked, not retried: its status becomes "waiting" and its message is
dropped, so a merge queued behind a ten-minute merge costs nothing while it waits. Whoever held
the lane wakes the lane's oldest waiting record when it lets go (done, failed, given up or asked
to wait): "queued" again and one message. A holder that died wakes nobody, so `sweep()` also wakes
the oldest waiting record of every lane whose lease is gone, expired or held by a dead process.
Parking then trying the lane once more closes the gap where the holder let go in between. A lane
also keeps its order: a record that gets the lane while an older one of the lane is due and not
yet run parks and lets the older one go first (a customer's two texts reach the thread in the
order they came, whichever worker picked its message up first).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from huey import RedisHuey
from huey.consumer import Consumer, Worker
from huey.contrib.sql_huey import SqlHuey
from huey.exceptions import RetryTask
from huey.signals import SIGNAL_ENQUEUED
from peewee import IntegrityError, fn

from core.processes import holder_id, holder_is_dead
from storage import leases
from storage.db import database, with_connection
from storage.models import Lease, TaskRecord, utcnow

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 2.0  # first retry; each next one waits RETRY_BACKOFF times longer
RETRY_BACKOFF = 2.0
CLAIM_TTL = timedelta(seconds=60)
LANE_TTL = timedelta(seconds=60)  # at least: a task's lane lasts as long as its claim
MISSING_RECORD_PATIENCE_SECONDS = 300  # a message whose record is not visible this long after: rolled back
# A queued record whose message should have run by now (its retry delay plus this) was lost.
LOST_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: Callable[..., object]
    max_attempts: int
    claim_ttl: timedelta
    on_give_up: Callable[..., object] | None


_REGISTRY: dict[str, TaskSpec] = {}


def task(
    name: str, *, max_attempts: int = 5, claim_ttl: timedelta = CLAIM_TTL, on_give_up: Callable[..., object] | None = None
) -> Callable[[Callable], Callable]:
    """Register `fn(context, *args)` as the task `name`. `on_give_up(context, *args, error=…)` runs
    once when the last attempt failed (tell the user, mark the work failed)."""

    def register(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"task {name!r} registered twice")
        _REGISTRY[name] = TaskSpec(name, fn, max_attempts, claim_ttl, on_give_up)
        return fn

    return register


def registered() -> dict[str, TaskSpec]:
    return dict(_REGISTRY)


def retry_delay(attempts: int, first: float = RETRY_DELAY_SECONDS) -> float:
    """Seconds huey waits before attempt `attempts + 1` (the same numbers it is configured with)."""
    return first * RETRY_BACKOFF ** max(0, attempts - 1)


class _WakingWorker(Worker):
    """A worker that also wakes when this process enqueues, instead of waiting out its poll delay
    (huey polls SQL storage with a growing delay; in-process work should not wait for it)."""

    wake: threading.Event

    def sleep(self) -> None:
        if self.delay > self.max_delay:
            self.delay = self.max_delay
        if self.wake.wait(self.delay):
            self.wake.clear()
            self.delay = self.default_delay
        else:
            self.delay *= self.backoff


class _EmbeddedConsumer(Consumer):
    """huey's consumer inside another server's process (gunicorn, the tests): threads only, and
    the host keeps its own signal handlers."""

    worker_class = _WakingWorker

    def _set_signal_handlers(self) -> None:
        pass


class TaskQueue:
    """One per process: the huey instance, the context handed to task functions, the workers."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        poll_seconds: float = 1.0,
        retry_seconds: float = RETRY_DELAY_SECONDS,
        name: str = "repair-orders",
    ):
        if redis_url:
            # clean_name=False: huey would strip "-" and ".", so "shop-1" and "shop1" would share one queue.
            self.huey = RedisHuey(name, url=redis_url, results=False, utc=True, clean_name=False)
        else:
            # The product's own database (the proxy's bound Database): one file or server to back up.
            self.huey = SqlHuey(name, database=database.obj, results=False, utc=True)
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.context: object = None
        self.wake = threading.Event()
        self._consumer: Consumer | None = None
        self._run = self.huey.task(retries=20, retry_delay=retry_seconds, retry_backoff=RETRY_BACKOFF, name="run")(self._execute)
        # Whatever enqueues in this process (us, huey's scheduler thread for a retry) wakes our workers.
        self.huey.signal(SIGNAL_ENQUEUED)(lambda signal, task, *args, **kwargs: self.wake.set())

    # -- enqueueing ---------------------------------------------------------------------------
    def enqueue(self, name: str, *args: Any, key: str | None = None, lane: str | None = None, delay: float = 0) -> TaskRecord:
        """Store the work, then hand it to huey. With `key`, the same work enqueued again (a
        retried event, a double click) returns the first record and queues nothing."""
        return self.enqueue_once(name, *args, key=key, lane=lane, delay=delay)[0]

    def enqueue_once(
        self, name: str, *args: Any, key: str | None = None, lane: str | None = None, delay: float = 0
    ) -> tuple[TaskRecord, bool]:
        """enqueue(), and whether this call stored the work (False: the key was taken, here or in
        another process; the unique key is the arbiter)."""
        spec = _REGISTRY.get(name)
        if spec is None:
            raise KeyError(f"no task named {name!r}")
        if key is not None:
            existing = TaskRecord.get_or_none(TaskRecord.key == key)
            if existing is not None:
                return existing, False
        try:
            with database.atomic():
                record = TaskRecord.create(
                    name=name,
                    args=json.dumps(list(args)),
                    key=key,
                    lane=lane,
                    max_attempts=spec.max_attempts,
                    run_after=utcnow() + timedelta(seconds=delay),
                )
        except IntegrityError:  # the same key, enqueued by another thread or process a moment ago
            return TaskRecord.get(TaskRecord.key == key), False
        self._push(record.id, delay)
        return record, True

    def _push(self, record_id: int, delay: float = 0) -> None:
        pushed_at = time.time()
        try:
            if delay > 0:
                self._run.schedule(args=(record_id, pushed_at), delay=delay)
            else:
                self._run(record_id, pushed_at)
        except Exception as exc:  # the record is stored: the next sweep pushes it again
            log.warning("task %s stored but not queued (%s); the sweep will queue it", record_id, type(exc).__name__)

    # -- running ------------------------------------------------------------------------------
    def _execute(self, record_id: int, pushed_at: float | None = None) -> None:
        with database.connection_context():
            self._run_record(record_id, pushed_at)

    def _run_record(self, record_id: int, pushed_at: float | None = None) -> None:
        record = TaskRecord.get_or_none(TaskRecord.id == record_id)
        if record is None:
            # huey's message can arrive before the enqueueing transaction is visible (Redis, or an
            # enqueue inside a longer transaction): wait for it, a while. A record that never
            # appears was rolled back with its transaction: there is no work.
            if pushed_at is not None and time.time() - pushed_at > MISSING_RECORD_PATIENCE_SECONDS:
                log.warning("task record %s never appeared (rolled back?): message dropped", record_id)
                return
            raise RetryTask(delay=1)
        spec = _REGISTRY.get(record.name)
        if spec is None:
            self._finish(record, None, "failed", f"no task named {record.name!r} in this version")
            return
        if record.status in ("done", "failed"):
            return
        if record.run_after > utcnow() + timedelta(seconds=1):
            raise RetryTask(delay=max(1, int((record.run_after - utcnow()).total_seconds())))
        holder = holder_id()
        if not record.lane:
            self._claimed_run(record, spec, holder)
            return
        lane_ttl = _lane_ttl(spec)
        if not leases.acquire(_lane_lease(record.lane), holder, lane_ttl):
            self._wait_for_lane(record, lane_ttl)
            return
        if self._older_in_lane(record):
            # A lane keeps its order (a customer's two texts, in the order they came): the older
            # record runs first, and wakes this one when it lets the lane go.
            self._park(record)
            leases.release(_lane_lease(record.lane), holder)
            if self._older_in_lane(record, statuses=("waiting",)):
                self._wake_next(record.lane)
            return
        try:
            # Read again under the lane: the task before it may have changed this one.
            record = TaskRecord.get_by_id(record.id)
            if record.status not in ("done", "failed"):
                self._claimed_run(record, spec, holder)
        finally:
            leases.release(_lane_lease(record.lane), holder)
            self._wake_next(record.lane)

    # -- lanes --------------------------------------------------------------------------------
    def _older_in_lane(self, record: TaskRecord, statuses: tuple[str, ...] = ("queued", "waiting")) -> bool:
        """Is an older record of the record's lane due and not yet run? (One retrying later, with
        its run_after ahead, does not hold the lane's later work back.)"""
        return (
            TaskRecord.select(TaskRecord.id)
            .where(
                (TaskRecord.lane == record.lane)
                & (TaskRecord.id < record.id)
                & TaskRecord.status.in_(statuses)
                & (TaskRecord.run_after <= utcnow())
            )
            .exists()
        )

    def _wait_for_lane(self, record: TaskRecord, lane_ttl: timedelta) -> None:
        """Park the record until its lane's holder lets go; this message ends here."""
        self._park(record)
        # The holder may have let go between our try and the park, seeing nobody to wake: try
        # once more, and if the lane is free now, wake its next record as the holder would have.
        probe = holder_id()
        if leases.acquire(_lane_lease(record.lane), probe, lane_ttl):
            leases.release(_lane_lease(record.lane), probe)
            self._wake_next(record.lane)

    def _park(self, record: TaskRecord) -> None:
        now = utcnow()
        if record.status == "queued":
            parkable = TaskRecord.status == "queued"
        elif record.status == "running" and _claim_lost(record, now):
            # Its worker died mid-run: parked like a queued one, fenced by the claim as read.
            parkable = (
                (TaskRecord.status == "running")
                & (TaskRecord.claimed_by == record.claimed_by)
                & (TaskRecord.claim_until == record.claim_until)
            )
        else:
            return  # already waiting, or a live holder runs it: this message is a duplicate
        TaskRecord.update(status="waiting", claimed_by=None, claim_until=None, updated_at=now).where(
            (TaskRecord.id == record.id) & parkable
        ).execute()

    def _wake_next(self, lane: str, now: datetime | None = None) -> int:
        """Queue the lane's oldest waiting record again, with one message; 1 if this call did."""
        now = now or utcnow()
        waiting = (
            TaskRecord.select(TaskRecord.id)
            .where((TaskRecord.lane == lane) & (TaskRecord.status == "waiting"))
            .order_by(TaskRecord.id)
            .first()
        )
        if waiting is None:
            return 0
        # One waker wins (a holder and a sweeper may both try); run_after now gives the woken
        # record LOST_AFTER before the sweep counts its message as lost.
        woken = (
            TaskRecord.update(status="queued", run_after=now, updated_at=utcnow())
            .where((TaskRecord.id == waiting.id) & (TaskRecord.status == "waiting"))
            .execute()
        )
        if not woken:
            return 0
        self._push(waiting.id)
        return 1

    def _wake_abandoned_lanes(self, now: datetime) -> int:
        """Wake the next waiting record of every lane whose holder will not (it died, or its lease
        lapsed); a lane whose woken record is still on its way is left alone."""
        woken = 0
        lanes = [
            lane
            for (lane,) in TaskRecord.select(TaskRecord.lane)
            .where(TaskRecord.status == "waiting")
            .distinct()
            .limit(1000)
            .tuples()
        ]
        for lane in lanes:
            if _lane_held(lane, now):
                continue
            on_its_way = TaskRecord.select().where(
                (TaskRecord.lane == lane) & (TaskRecord.status == "queued") & (TaskRecord.run_after <= now)
            )
            if not on_its_way.exists():
                woken += self._wake_next(lane, now)
        return woken

    def _claimed_run(self, record: TaskRecord, spec: TaskSpec, holder: str) -> None:
        if not self._claim(record, holder, spec.claim_ttl):
            return  # running elsewhere, or done since
        record = TaskRecord.get_by_id(record.id)
        args = json.loads(record.args)
        keeper = _ClaimKeeper(record.id, holder, spec.claim_ttl, lane=record.lane, lane_ttl=_lane_ttl(spec))
        keeper.start()
        try:
            spec.fn(self.context, *args)
        except RetryTask as wait:
            # The task asked to wait (a resource busy): back to the queue, the attempt given back.
            keeper.stop()
            later = utcnow() + timedelta(seconds=wait.delay or 1)
            self._finish(record, holder, "queued", record.last_error, run_after=later, refund=True)
            raise
        except Exception as exc:
            keeper.stop()
            error = f"{type(exc).__name__}: {exc}"[:2000]
            if record.attempts >= record.max_attempts:
                log.exception("task %s #%s gave up after %s attempts", record.name, record.id, record.attempts)
                # The hook first, under our claim: a death between the two leaves the record to the
                # sweep, which runs the hook again (hooks are idempotent), never to nobody.
                self._give_up(spec, args, error)
                self._finish(record, holder, "failed", error)
                return
            log.warning(
                "task %s #%s attempt %s failed: %s; retried in %.0fs",
                record.name,
                record.id,
                record.attempts,
                error,
                retry_delay(record.attempts, self.retry_seconds),
            )
            self._finish(
                record,
                holder,
                "queued",
                error,
                run_after=utcnow() + timedelta(seconds=retry_delay(record.attempts, self.retry_seconds)),
            )
            raise  # huey schedules the retry with its backoff
        finally:
            keeper.stop()
        self._finish(record, holder, "done", None)

    def _give_up(self, spec: TaskSpec | None, args: list, error: str) -> None:
        if spec is not None and spec.on_give_up is not None:
            try:
                spec.on_give_up(self.context, *args, error=error)
            except Exception:
                log.exception("give-up hook of task %s failed", spec.name)

    def _claim(self, record: TaskRecord, holder: str, ttl: timedelta) -> bool:
        now = utcnow()
        # A waiting record whose message got its lane (a duplicate, a wake raced) runs as well.
        takeover = TaskRecord.status.in_(("queued", "waiting"))
        if record.status == "running" and _claim_lost(record, now):
            # The holder died mid-run (a claim cannot expire while its holder renews it).
            # Fenced by the claim as read: a holder that renewed since is alive after all.
            takeover = (
                (TaskRecord.status == "running")
                & (TaskRecord.claimed_by == record.claimed_by)
                & (TaskRecord.claim_until == record.claim_until)
            )
            log.warning("task %s #%s: taking over from %s, which stopped", record.name, record.id, record.claimed_by)
        return bool(
            TaskRecord.update(
                status="running", claimed_by=holder, claim_until=now + ttl, attempts=TaskRecord.attempts + 1, updated_at=now
            )
            .where((TaskRecord.id == record.id) & takeover & (TaskRecord.attempts < TaskRecord.max_attempts))
            .execute()
        )

    def _finish(
        self,
        record: TaskRecord,
        holder: str | None,
        status: str,
        error: str | None,
        run_after: datetime | None = None,
        refund: bool = False,
    ) -> None:
        fields: dict = {"status": status, "updated_at": utcnow(), "claimed_by": None, "claim_until": None}
        if refund:
            fields["attempts"] = TaskRecord.attempts - 1
        if status != "done":
            fields["last_error"] = error  # a task done after retries keeps the reason it was retried
        if status in ("done", "failed"):
            fields["finished_at"] = utcnow()
        if run_after is not None:
            fields["run_after"] = run_after
        where = TaskRecord.id == record.id
        if holder is not None:
            where &= TaskRecord.claimed_by == holder  # fenced: a holder that lost its claim writes nothing
        if not TaskRecord.update(**fields).where(where).execute():
            log.warning("task %s #%s finished after losing its claim: outcome %s dropped", record.name, record.id, status)

    # -- recovery -----------------------------------------------------------------------------
    def sweep(self, now: datetime | None = None) -> int:
        """Queue again every record whose message was lost; how many."""
        now = now or utcnow()
        pushed = 0
        candidates = list(
            TaskRecord.select()
            .where(
                ((TaskRecord.status == "queued") & (TaskRecord.run_after < now - LOST_AFTER)) | (TaskRecord.status == "running")
            )
            .order_by(TaskRecord.id)
            .limit(1000)
        )
        for record in candidates:
            if record.status == "running":
                expired = record.claim_until is not None and record.claim_until < now
                if not (expired or holder_is_dead(record.claimed_by)):
                    continue
            if record.attempts >= record.max_attempts:
                # Its last attempt died with its worker (or failed without being written down).
                # Claimed first (one sweeper wins), the hook run, then failed: a sweeper that dies
                # in between leaves a record the next sweep gives up again.
                error = record.last_error or "the worker running its last attempt stopped"
                holder = holder_id()
                claimed = (
                    TaskRecord.update(status="running", claimed_by=holder, claim_until=now + CLAIM_TTL, updated_at=utcnow())
                    .where(
                        (TaskRecord.id == record.id)
                        & (TaskRecord.status == record.status)
                        & (TaskRecord.updated_at == record.updated_at)
                    )
                    .execute()
                )
                if claimed:
                    self._give_up(_REGISTRY.get(record.name), json.loads(record.args), error)
                    self._finish(record, holder, "failed", error)
                continue
            if record.status == "queued":
                # Not again at the next sweep if the workers are only busy: it gets LOST_AFTER more.
                TaskRecord.update(run_after=now).where(TaskRecord.id == record.id).execute()
            self._push(record.id)
            pushed += 1
        pushed += self._wake_abandoned_lanes(now)
        if pushed:
            log.info("task sweep: %s record(s) queued again", pushed)
        return pushed

    def backlog(self) -> dict[str, int]:
        """How many records wait, run and failed: for `check` and the README's operations."""
        counts = {status: 0 for status in ("queued", "running", "failed")}
        for status, n in (
            TaskRecord.select(TaskRecord.status, fn.COUNT(TaskRecord.id))
            .where(TaskRecord.status.in_([*counts, "waiting"]))
            .group_by(TaskRecord.status)
            .tuples()
        ):
            counts["queued" if status == "waiting" else status] += n  # waiting for a lane is queued work
        return counts

    # -- workers ------------------------------------------------------------------------------
    def _consumer_options(self) -> dict:
        # Threads (tasks wait on Slack, Twilio and ffmpeg, not on Python); no huey periodic tasks: the
        # scheduler process times jobs. Polls start at 50 ms and back off to QUEUE_POLL_MS.
        return dict(
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=self.poll_seconds,
            scheduler_interval=1,
        )

    def start_workers(self, workers: int = 3) -> None:
        """Worker threads in this process (`serve`, the tests); `stop_workers` ends them."""
        consumer = _EmbeddedConsumer(self.huey, workers=workers, check_worker_health=False, **self._consumer_options())
        for worker, _ in consumer.worker_threads:
            worker.wake = self.wake
        with_connection(self.sweep)()  # work a dead predecessor left claimed on this machine runs now
        consumer.start()
        self._consumer = consumer

    def stop_workers(self, timeout: float = 60) -> None:
        """Let running tasks finish (up to `timeout`), then stop."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.shutdown_timeout = timeout
            consumer.stop(graceful=True)

    def run_workers(self, workers: int) -> None:
        """`bot.py worker`: huey's own consumer in the foreground (SIGTERM stops it gracefully; a
        second signal, or Ctrl-C, at once: the journal resumes what it cut)."""
        # SIGTERM (systemd, docker stop) is the graceful stop: running tasks finish first.
        consumer = self.huey.create_consumer(
            workers=workers, check_worker_health=True, graceful_signal="TERM", **self._consumer_options()
        )
        with_connection(self.sweep)()
        consumer.run()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until no record is queued or running (tests, and `sync` before it exits)."""
        deadline = time.monotonic() + timeout
        while True:
            with database.connection_context():
                busy = TaskRecord.select().where(TaskRecord.status.in_(("queued", "waiting", "running"))).count()
            if not busy:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{busy} task(s) still queued or running after {timeout}s")
            time.sleep(0.02)


def _lane_lease(lane: str) -> str:
    return f"lane:{lane}"


def _lane_ttl(spec: TaskSpec) -> timedelta:
    # Renewed with the claim (every third of its TTL): a shorter lane would lapse between renewals.
    return max(LANE_TTL, spec.claim_ttl)


def _claim_lost(record: TaskRecord, now: datetime) -> bool:
    """A running record whose holder died (a claim cannot expire while its holder renews it)."""
    return bool(record.claimed_by) and (
        (record.claim_until is not None and record.claim_until < now) or holder_is_dead(record.claimed_by)
    )


def _lane_held(lane: str, now: datetime) -> bool:
    """Whether a live holder has the lane: one that will wake its waiters when it lets go."""
    lease = Lease.get_or_none(Lease.name == _lane_lease(lane))
    return lease is not None and lease.expires_at >= now and not holder_is_dead(lease.holder)


class _ClaimKeeper:
    """Renews a running record's claim (and its lane) while the task runs, so only a dead worker loses it."""

    def __init__(self, record_id: int, holder: str, ttl: timedelta, lane: str | None, lane_ttl: timedelta = LANE_TTL):
        self.record_id, self.holder, self.ttl, self.lane, self.lane_ttl = record_id, holder, ttl, lane, lane_ttl
        self._done = threading.Event()
        self._thread = threading.Thread(target=with_connection(self._loop), name=f"claim-{record_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self.ttl.total_seconds() / 3):
            try:
                kept = (
                    TaskRecord.update(claim_until=utcnow() + self.ttl)
                    .where((TaskRecord.id == self.record_id) & (TaskRecord.claimed_by == self.holder))
                    .execute()
                )
            except Exception as exc:  # a missed renewal is retried; the claim still has time left
                log.warning("could not renew the claim of task %s: %s", self.record_id, type(exc).__name__)
                continue
            if not kept:
                log.warning("task %s lost its claim; its outcome will be dropped", self.record_id)
                return
            if self.lane:
                leases.acquire(_lane_lease(self.lane), self.holder, self.lane_ttl)
