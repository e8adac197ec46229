"""A worker process killed with SIGKILL while it holds a customer send: a new worker delivers it,
and the customer gets exactly one text, whether or not Twilio took the first attempt.

Real processes (`python bot.py worker`), a real SIGKILL, the fake Twilio holding the send in flight.
"""

from __future__ import annotations

import signal

import pytest

from customers import send_rules
from storage.models import CustomerSend, TaskRecord
from tests.support.factories import make_ro
from tests.support.files import files_env, jpeg_bytes, stored_file
from tests.support.harness import start_app, wait_until
from tests.support.processes import stop, worker


@pytest.fixture
def web(fake_slack, database_url, tmp_path, twilio, transport):
    """The web process alone (no task workers in it): sends wait for a worker process. The
    queue's messages in the database or in Redis (the journal is in the database either way)."""
    env = files_env(fake_slack, database_url, tmp_path, twilio, None)
    if transport:
        env.update(REDIS_URL=transport["redis_url"], QUEUE_NAME=transport["name"])
    running = start_app(env, workers=0)
    yield running, env
    running.stop()


@pytest.mark.parametrize("twilio_took_it", [True, False], ids=["Twilio took the first attempt", "Twilio never saw it"])
def test_a_worker_killed_holding_a_send_leaves_the_customer_exactly_one_text(web, fake_slack, twilio, tmp_path, twilio_took_it):
    running, env = web
    log = tmp_path / "workers.log"
    ro = make_ro(fake_slack, members=("UTECH",))
    photo = stored_file(running, ro, jpeg_bytes(), "IMG_0001.jpg", "image/jpeg")
    send = send_rules.create_send(ro, "UADVISOR", [photo.id], running.settings)
    running.services.tasks.enqueue("send.deliver", send.id, True, lane=f"deliver:{send.id}")

    twilio.hold_sends(accept=twilio_took_it)
    first = worker(env, log)
    try:
        assert twilio.send_held.wait(60), "the first worker never reached Twilio:\n" + log.read_text()
        assert CustomerSend.get_by_id(send.id).status == "sending"
        [claimed] = TaskRecord.select().where((TaskRecord.name == "send.deliver") & (TaskRecord.status == "running"))
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        stop(first)
    twilio.release_sends()  # the held request ends; its client is gone
    assert twilio.held_send_finished.wait(10)
    assert len(twilio.messages) == (1 if twilio_took_it else 0)

    second = worker(env, log)
    try:
        done = wait_until(
            lambda: CustomerSend.get_by_id(send.id).status in ("sent", "failed") and CustomerSend.get_by_id(send.id),
            timeout=60,
            message="the send finished by the second worker",
        )
        running.services.tasks.wait_idle(timeout=60)
    finally:
        stop(second)
    assert done.status == "sent", log.read_text()
    assert len(twilio.messages) == 1, "the customer got one text"
    assert done.provider_id == twilio.messages[0]["sid"]
    record = TaskRecord.get_by_id(claimed.id)
    assert (record.status, record.attempts) == ("done", 2), "taken over from the dead worker, not given up"
