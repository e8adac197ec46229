"""The durable task queue (messages in the database or in Redis): stored before it runs, retried with backoff, run once, lanes one at a time,
and work whose worker died queued again by the sweep."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from huey.exceptions import RetryTask
from huey.signals import SIGNAL_COMPLETE, SIGNAL_ENQUEUED, SIGNAL_ERROR, SIGNAL_EXECUTING, SIGNAL_RETRYING

from storage.db import database
from storage.models import TaskRecord, utcnow
from taskqueue.queue import LOST_AFTER, TaskQueue, retry_delay, task
from tests.support.harness import wait_until

CALLS: dict[str, list] = {}
HOLDS: dict[str, threading.Event] = {}  # a test.held task runs until its key is set
_LOCK = threading.Lock()


def _note(name: str, *values) -> None:
    with _LOCK:
        CALLS.setdefault(name, []).append(values)


@task("test.echo")
def echo(context, value):
    _note("echo", value, context)


@task("test.flaky", max_attempts=4)
def flaky(context, key, failures):
    _note(key, time.monotonic())
    if len(CALLS[key]) <= failures:
        raise RuntimeError(f"failure {len(CALLS[key])}")


def _gave_up(context, key, *, error):
    _note(f"{key}:gave_up", error)


@task("test.always_fails", max_attempts=2, on_give_up=_gave_up)
def always_fails(context, key):
    _note(key, "attempt")
    raise ValueError("nope")


@task("test.waits_once", max_attempts=1)
def waits_once(context, key):
    _note(key, "called")
    if len(CALLS[key]) == 1:
        raise RetryTask(delay=1)  # what a task says when what it needs is busy (merge.run's slots)


@task("test.held", claim_ttl=timedelta(hours=1))
def held(context, key):
    # Caught at an observable point until the test releases it. Its claim (so its lane) lasts an
    # hour, so a sweep run with the clock moved on minutes still sees a live holder.
    _note(key, "start")
    released = HOLDS[key].wait(60)  # a guard: the test releases it long before
    _note(key, "end")
    if not released:
        raise RuntimeError(f"{key} was never released")


class Messages:
    """huey's signals in this process, per task record: how often its message was queued and run."""

    def __init__(self, huey):
        self.seen: list[tuple[str, int]] = []
        huey.signal()(self._saw)

    def _saw(self, signal, task, *args, **kwargs):
        if task.args:
            with _LOCK:
                self.seen.append((signal, task.args[0]))

    def count(self, record_id: int, *signals: str) -> int:
        with _LOCK:
            return sum(1 for signal, seen_id in self.seen if seen_id == record_id and signal in signals)

    def runs_ended(self, record_id: int) -> int:
        """Executions of the record's message that returned (done, retried or failed)."""
        return self.count(record_id, SIGNAL_COMPLETE, SIGNAL_RETRYING, SIGNAL_ERROR)


@pytest.fixture
def queue(db, transport):
    CALLS.clear()
    HOLDS.clear()
    tasks = TaskQueue(poll_seconds=0.1, retry_seconds=0.05, **transport)
    tasks.context = "the context"
    tasks.start_workers(3)
    yield tasks
    for hold in list(HOLDS.values()):  # a failed test leaves no task held for stop_workers to wait out
        hold.set()
    tasks.stop_workers()


def test_a_task_is_stored_then_run_with_its_arguments_and_the_context(queue):
    record = queue.enqueue("test.echo", {"a": [1, 2]})
    assert TaskRecord.get_by_id(record.id).name == "test.echo"
    queue.wait_idle()
    assert CALLS["echo"] == [({"a": [1, 2]}, "the context")]
    done = TaskRecord.get_by_id(record.id)
    assert (done.status, done.attempts, done.claimed_by) == ("done", 1, None) and done.finished_at


def test_a_failing_task_is_retried_with_growing_delays_until_it_succeeds(queue):
    record = queue.enqueue("test.flaky", "flaky-3", 2)
    queue.wait_idle(timeout=60)
    times = [t for (t,) in CALLS["flaky-3"]]
    assert len(times) == 3 and TaskRecord.get_by_id(record.id).status == "done"
    assert TaskRecord.get_by_id(record.id).attempts == 3 and "failure 2" in TaskRecord.get_by_id(record.id).last_error
    assert times == sorted(times)


def test_each_retry_waits_twice_as_long_as_the_one_before():
    assert [retry_delay(attempts, 2.0) for attempts in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


def test_a_task_that_keeps_failing_gives_up_once_and_says_why(queue):
    record = queue.enqueue("test.always_fails", "doomed")
    queue.wait_idle(timeout=60)
    assert len(CALLS["doomed"]) == 2
    assert CALLS["doomed:gave_up"] == [("ValueError: nope",)]
    failed = TaskRecord.get_by_id(record.id)
    assert (failed.status, failed.attempts) == ("failed", 2) and "nope" in failed.last_error


def test_a_task_that_asks_to_wait_runs_again_without_spending_an_attempt(queue):
    record = queue.enqueue("test.waits_once", "patient")
    wait_until(lambda: TaskRecord.get_by_id(record.id).status == "done", timeout=30, message="the second call")
    assert len(CALLS["patient"]) == 2
    done = TaskRecord.get_by_id(record.id)
    assert (done.status, done.attempts) == ("done", 1), "one attempt allowed, one spent: the wait was not one"


def test_the_same_key_is_the_same_work(queue):
    first = queue.enqueue("test.echo", "once", key="echo:once")
    again = queue.enqueue("test.echo", "twice", key="echo:once")
    queue.wait_idle()
    assert again.id == first.id and CALLS["echo"] == [("once", "the context")]
    assert queue.enqueue("test.echo", "later", key="echo:once").id == first.id  # done work is not redone
    queue.wait_idle()
    assert len(CALLS["echo"]) == 1


def test_a_lane_runs_one_task_at_a_time_and_other_lanes_meanwhile(queue):
    messages = Messages(queue.huey)
    HOLDS["lane-a"] = threading.Event()
    lane_a = [queue.enqueue("test.held", "lane-a", lane="ro:1") for _ in range(3)]
    other = queue.enqueue("test.echo", "lane-b", lane="ro:2")

    def starts() -> int:
        with _LOCK:
            return sum(1 for (kind,) in CALLS.get("lane-a", []) if kind == "start")

    # While one holds the lane, the state the others settle in is "waiting" (parked): a task that
    # tried the lane once may have been woken to try again, so runs ended are no proof they are
    # done trying; their status is.
    wait_until(
        lambda: sorted(TaskRecord.get_by_id(r.id).status for r in lane_a) == ["running", "waiting", "waiting"],
        timeout=30,
        message="one task of the lane running, the others parked",
    )
    parked = [r for r in lane_a if TaskRecord.get_by_id(r.id).status == "waiting"]
    wait_until(lambda: all(messages.runs_ended(r.id) for r in parked), timeout=30, message="the parked tasks' runs over")
    assert starts() == 1, "one task of the lane runs while the first is held"
    wait_until(lambda: TaskRecord.get_by_id(other.id).status == "done", timeout=30, message="the other lane's task")
    assert starts() == 1, "another lane does not wait for this one"

    HOLDS["lane-a"].set()
    queue.wait_idle(timeout=60)
    assert CALLS["lane-a"] == [("start",), ("end",)] * 3, "each began after the one before ended"


def test_a_task_waiting_for_its_lane_holds_one_message_and_does_not_poll(queue):
    messages = Messages(queue.huey)
    HOLDS["holder"] = threading.Event()
    queue.enqueue("test.held", "holder", lane="ro:7")
    wait_until(lambda: CALLS.get("holder"), timeout=30, message="the first task holding the lane")
    waiting = queue.enqueue("test.echo", "waiting", lane="ro:7")
    wait_until(lambda: messages.runs_ended(waiting.id), timeout=30, message="the second task trying the lane")

    later = utcnow()
    for _ in range(4):  # two minutes of sweeps, the holder alive all along
        later += LOST_AFTER + timedelta(seconds=1)
        queue.sweep(now=later)
    assert messages.count(waiting.id, SIGNAL_ENQUEUED) == 1, "one message for a task that waits for its lane"
    assert messages.count(waiting.id, SIGNAL_EXECUTING) == 1, "no lease attempt after the first"
    in_huey = [t for t in queue.huey.pending() + queue.huey.scheduled() if t.args and t.args[0] == waiting.id]
    assert in_huey == [], "nothing polls for it while it waits"
    assert "echo" not in CALLS

    HOLDS["holder"].set()
    queue.wait_idle(timeout=60)
    assert CALLS["echo"] == [("waiting", "the context")], "run once, after the holder"
    done = TaskRecord.get_by_id(waiting.id)
    assert (done.status, done.attempts) == ("done", 1)
    assert messages.count(waiting.id, SIGNAL_ENQUEUED) == 2, "woken once by the holder's end"


def test_a_lane_runs_its_records_in_the_order_they_were_queued(db, transport):
    """The later record's message is picked up first (another worker was quicker): it parks, the
    older one runs, then wakes it. Messages are handed to the worker entry point in that order."""
    CALLS.clear()
    tasks = TaskQueue(poll_seconds=0.1, retry_seconds=0.05, **transport)
    first = tasks.enqueue("test.echo", "first text", lane="sms:+15145550142")
    second = tasks.enqueue("test.echo", "second text", lane="sms:+15145550142")
    tasks._run_record(second.id)
    assert "echo" not in CALLS and TaskRecord.get_by_id(second.id).status == "waiting"
    tasks._run_record(first.id)
    assert TaskRecord.get_by_id(second.id).status == "queued", "woken by the older one's end"
    tasks._run_record(second.id)
    assert [value for value, _ in CALLS["echo"]] == ["first text", "second text"]
    assert {TaskRecord.get_by_id(r.id).status for r in (first, second)} == {"done"}


def test_a_retry_scheduled_later_does_not_hold_its_lane_back(db, transport):
    CALLS.clear()
    tasks = TaskQueue(poll_seconds=0.1, retry_seconds=0.05, **transport)
    later = tasks.enqueue("test.echo", "retrying later", lane="ro:9")
    TaskRecord.update(run_after=utcnow() + timedelta(minutes=5)).where(TaskRecord.id == later.id).execute()
    now = tasks.enqueue("test.echo", "now", lane="ro:9")
    tasks._run_record(now.id)
    assert [value for value, _ in CALLS["echo"]] == ["now"]


def test_work_stored_but_never_handed_to_huey_is_queued_by_the_sweep(db, transport):
    CALLS.clear()
    tasks = TaskQueue(poll_seconds=0.1, retry_seconds=0.05, **transport)
    lost = TaskRecord.create(name="test.echo", args=json.dumps(["lost"]), run_after=utcnow() - timedelta(minutes=5))
    fresh = TaskRecord.create(name="test.echo", args=json.dumps(["fresh"]))  # its message may still be on its way
    assert tasks.sweep() == 1
    tasks.start_workers(1)
    try:
        wait = time.monotonic() + 20
        while TaskRecord.get_by_id(lost.id).status != "done" and time.monotonic() < wait:
            time.sleep(0.05)
    finally:
        tasks.stop_workers()
    assert TaskRecord.get_by_id(lost.id).status == "done" and CALLS["echo"][0][0] == "lost"
    assert TaskRecord.get_by_id(fresh.id).status == "queued"


def test_the_sweep_takes_work_from_a_dead_holder_at_once_and_leaves_a_live_one_alone(db, transport):
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    from core.processes import holder_id

    mine = holder_id().split(":")
    dead = f"{mine[0]}:{gone.pid}:1:deadbeef"
    elsewhere = "another-host:1234:1:cafe"
    later = utcnow() + timedelta(minutes=1)
    orphan = TaskRecord.create(name="test.echo", args="[1]", status="running", claimed_by=dead, claim_until=later, attempts=1)
    remote = TaskRecord.create(
        name="test.echo", args="[2]", status="running", claimed_by=elsewhere, claim_until=later, attempts=1
    )
    expired = TaskRecord.create(
        name="test.echo",
        args="[3]",
        status="running",
        claimed_by=elsewhere,
        claim_until=utcnow() - timedelta(seconds=1),
        attempts=1,
    )
    tasks = TaskQueue(poll_seconds=0.1, **transport)
    assert tasks.sweep() == 2
    tasks.start_workers(1)
    try:
        deadline = time.monotonic() + 20
        while {TaskRecord.get_by_id(r.id).status for r in (orphan, expired)} != {"done"} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tasks.stop_workers()
    assert TaskRecord.get_by_id(orphan.id).status == "done" and TaskRecord.get_by_id(orphan.id).attempts == 2
    assert TaskRecord.get_by_id(expired.id).status == "done"
    assert TaskRecord.get_by_id(remote.id).status == "running", "a live holder on another machine keeps its claim"


def test_a_record_whose_last_attempt_died_fails_once_with_its_give_up(db, transport):
    CALLS.clear()
    record = TaskRecord.create(
        name="test.always_fails",
        args=json.dumps(["died"]),
        status="running",
        claimed_by="h:1:1:x",
        claim_until=utcnow() - timedelta(seconds=1),
        attempts=2,
        max_attempts=2,
    )
    tasks = TaskQueue(**transport)
    assert tasks.sweep() == 0 and tasks.sweep() == 0
    assert TaskRecord.get_by_id(record.id).status == "failed"
    assert CALLS["died:gave_up"] == [("the worker running its last attempt stopped",)]


def test_an_unknown_task_name_is_refused_at_once(db, transport):
    with pytest.raises(KeyError):
        TaskQueue(**transport).enqueue("test.no_such_task")
    assert TaskRecord.select().count() == 0


def test_the_backlog_counts_waiting_running_and_failed_work(db, transport):
    TaskRecord.create(name="test.echo", status="queued")
    TaskRecord.create(name="test.echo", status="running")
    TaskRecord.create(name="test.echo", status="failed")
    TaskRecord.create(name="test.echo", status="done")
    with database.atomic():
        assert TaskQueue(**transport).backlog() == {"queued": 1, "running": 1, "failed": 1}


def test_queue_names_that_differ_only_by_punctuation_are_separate_queues_in_redis(db, redis_url):
    """QUEUE_NAME lets shops share one Redis: "shop-1" and "shop1" must not share messages."""
    suffix = uuid.uuid4().hex[:8]
    dashed, plain = TaskQueue(redis_url=redis_url, name=f"shop-{suffix}"), TaskQueue(redis_url=redis_url, name=f"shop{suffix}")
    try:
        dashed.enqueue("test.echo", "for the dashed shop")
        assert dashed.huey.pending_count() == 1 and plain.huey.pending_count() == 0
    finally:
        dashed.huey.storage.flush_all()
        plain.huey.storage.flush_all()
