"""A text to the customer whose attempt ended without knowing whether Twilio took it (a read
time-out, a worker killed on the way) is looked up in Twilio before any new attempt, automatic
or pressed: the customer gets it exactly once. The lookup tells this text from any other by its
exact body and by the sids already recorded, never by a part of the body.

Staff replies (the "sms.reply" task) and Files sends ("send.deliver") alike, driven over HTTP
against the fake Twilio, whose held send answers only once the client has given up (its time-out,
TWILIO_TIMEOUT_MS, made short here); the crash is a real worker process killed with SIGKILL."""

from __future__ import annotations

import time

import pytest

from blocks import ids
from blocks.codec import SmsRef
from customers import conversation_flow, send_rules, twilio_gateway
from customers import conversation_rules as rules
from storage.models import CustomerSend, RepairOrder, SmsMessage, TaskRecord
from tests.customers.test_conversation import CUSTOMER, text_in
from tests.support.factories import make_ro
from tests.support.files import (
    PUBLIC_URL,
    files_env,
    jpeg_bytes,
    note_buttons,
    note_of,
    press_note_button,
    send_files,
    stored_file,
    wait_send,
)
from tests.support.harness import SlackTestClient, start_app, wait_until
from tests.support.processes import kill, stop, worker

TOOK_IT = pytest.mark.parametrize("took_it", [True, False], ids=["Twilio took it", "Twilio never saw it"])


@pytest.fixture
def app(fake_slack, sqlite_url, tmp_path, twilio):
    """The app with a short Twilio time-out, and replies unsigned (the body is what staff typed)."""
    env = files_env(fake_slack, sqlite_url, tmp_path, twilio, None, TWILIO_TIMEOUT_MS="1000", SMS_SIGNATURE="false")
    running = start_app(env)
    yield running
    running.stop()


@pytest.fixture
def ro(app, fake_slack):
    return make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)


def reply(app, client: SlackTestClient, ro, text: str) -> SmsMessage:
    ts = f"{time.time():.6f}"
    thread_ts = RepairOrder.get_by_id(ro.id).conversation_ts
    assert thread_ts, "no conversation thread"
    client.event(
        {
            "type": "message",
            "channel": ro.channel_id,
            "user": "UADVISOR",
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "channel_type": "channel",
        }
    )
    app.listeners.settle()
    return wait_until(lambda: SmsMessage.get_or_none(SmsMessage.slack_ts == ts), message="the reply recorded")


def press_reply_retry(client: SlackTestClient, ro, message_id: int) -> None:
    client.action(
        {
            "type": "block_actions",
            "user": {"id": "UADVISOR"},
            "team": {"id": "T0001"},
            "channel": {"id": ro.channel_id},
            "container": {"type": "message", "channel_id": ro.channel_id},
            "actions": [
                {
                    "type": "button",
                    "action_id": ids.CONVERSATION_RETRY,
                    "block_id": "sms_actions",
                    "value": SmsRef(message_id).encode(),
                }
            ],
        }
    )


def reply_status(message_id: int, *wanted: str) -> SmsMessage:
    return wait_until(
        lambda: (row := SmsMessage.get_by_id(message_id)).status in wanted and row,
        timeout=60,
        message=f"the reply {wanted}",
    )


def bodies(twilio) -> list[str]:
    return [m["Body"] for m in twilio.messages]


# -- an ambiguous time-out: replies ------------------------------------------------------------------


@TOOK_IT
def test_a_reply_answered_after_our_time_out_is_texted_once_by_the_automatic_retry(app, client, twilio, ro, took_it):
    text_in(app, twilio, "Is it ready?")
    twilio.hold_sends(accept=took_it, until_client_gone=True)
    out = reply(app, client, ro, "Ready at 4")
    done = reply_status(out.id, "sent", "failed")
    assert twilio.client_gave_up.wait(10), "the first attempt timed out while Twilio held it"
    assert done.status == "sent" and bodies(twilio) == ["Ready at 4"], "the customer got it once"
    assert done.provider_sid == twilio.messages[0]["sid"]
    app.settle()
    assert bodies(twilio) == ["Ready at 4"]


@TOOK_IT
def test_retry_on_a_reply_whose_time_out_was_never_resolved_asks_twilio_first(app, client, fake_slack, twilio, ro, took_it):
    text_in(app, twilio, "Is it ready?")
    twilio.fail_with(20500, status=500, times=1000, on="list")  # Twilio cannot say, until it can
    twilio.hold_sends(accept=took_it, until_client_gone=True)
    out = reply(app, client, ro, "Ready at 4")
    failed = reply_status(out.id, "failed", "sent")
    assert failed.status == "failed" and twilio.client_gave_up.wait(10)
    app.settle()
    note = next(m for m in fake_slack.messages[ro.channel_id] if m["ts"] == SmsMessage.get_by_id(out.id).note_ts)
    assert ids.CONVERSATION_RETRY in str(note["blocks"]), "Retry is offered"

    twilio.clear_faults()
    press_reply_retry(client, ro, out.id)
    press_reply_retry(client, ro, out.id)  # pressed twice
    done = reply_status(out.id, "sent")
    app.settle()
    assert bodies(twilio) == ["Ready at 4"], "the customer got it once"
    assert done.provider_sid == twilio.messages[0]["sid"]


# -- an ambiguous time-out: Files sends -------------------------------------------------------------


def _files_ro(app, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH", "UADVISOR"))
    return ro, stored_file(app, ro, jpeg_bytes(), "IMG_0001.jpg", "image/jpeg")


@TOOK_IT
def test_a_files_send_answered_after_our_time_out_is_texted_once_by_the_automatic_retry(app, client, fake_slack, twilio, took_it):
    ro, photo = _files_ro(app, fake_slack)
    twilio.hold_sends(accept=took_it, until_client_gone=True)
    send_files(client, fake_slack, ro, [photo])
    done = wait_send(("sent", "failed"), timeout=60)
    assert twilio.client_gave_up.wait(10), "the first attempt timed out while Twilio held it"
    assert done.status == "sent" and len(twilio.messages) == 1, "the customer got it once"
    assert done.provider_id == twilio.messages[0]["sid"]
    app.settle()
    assert len(twilio.messages) == 1
    attempts = [(a.status, a.provider_id) for a in send_rules.history(done.id) if a.kind == "attempt"]
    assert attempts == [("unsure", None), ("sent", done.provider_id)], "the unsure attempt is in the history"


@TOOK_IT
def test_retry_on_a_files_send_whose_time_out_was_never_resolved_asks_twilio_first(app, client, fake_slack, twilio, took_it):
    ro, photo = _files_ro(app, fake_slack)
    twilio.fail_with(20500, status=500, times=1000, on="list")
    twilio.hold_sends(accept=took_it, until_client_gone=True)
    send_files(client, fake_slack, ro, [photo])
    send = wait_send(("failed", "sent"), timeout=60)
    assert send.status == "failed" and twilio.client_gave_up.wait(10)
    assert "send.retry" in note_buttons(note_of(app, fake_slack, ro.channel_id, send)), "Retry is offered"

    twilio.clear_faults()
    press_note_button(client, ro, "send.retry", send.id)
    press_note_button(client, ro, "send.retry", send.id)  # pressed twice
    done = wait_until(lambda: (s := CustomerSend.get_by_id(send.id)).status == "sent" and s, timeout=60, message="sent")
    app.settle()
    assert len(twilio.messages) == 1, "the customer got it once"
    assert done.provider_id == twilio.messages[0]["sid"]


# -- the lookup matches exactly ----------------------------------------------------------------------


def _sent_reply(app, client, twilio, ro, text: str) -> SmsMessage:
    out = reply(app, client, ro, text)
    done = reply_status(out.id, "sent", "failed")
    assert done.status == "sent"
    app.settle()
    return done


def _claimed_then_died(app, ro, text: str) -> SmsMessage:
    """A reply whose worker died after claiming it: "sending", no outcome recorded."""
    message = rules.create_reply(ro, "UADVISOR", text, f"{time.time():.6f}", app.settings)
    rules.set_status(message, "sending")
    return SmsMessage.get_by_id(message.id)


@pytest.mark.parametrize(
    "earlier, this",
    [("Ok, see you at 3", "Ok"), ("Ok", "Ok, see you at 3"), ("Ok", "Ok")],
    ids=["a longer earlier reply", "a shorter earlier reply", "an identical earlier reply"],
)
def test_another_reply_is_never_taken_for_this_one(app, client, twilio, ro, earlier, this):
    text_in(app, twilio, "Is it ready?")
    _sent_reply(app, client, twilio, ro, earlier)
    died = _claimed_then_died(app, ro, this)  # Twilio never saw it

    conversation_flow.deliver_reply(app.services, died.id)  # the task's next attempt
    done = SmsMessage.get_by_id(died.id)
    assert done.status == "sent" and bodies(twilio) == [earlier, this], "this reply was texted"
    assert done.provider_sid == twilio.messages[1]["sid"]


def test_an_identical_reply_twilio_took_before_the_crash_is_found_and_not_texted_again(app, client, twilio, ro):
    text_in(app, twilio, "Is it ready?")
    _sent_reply(app, client, twilio, ro, "Ok")
    died = _claimed_then_died(app, ro, "Ok")
    sid = twilio_gateway.send_message(app.settings, CUSTOMER, "Ok").sid  # the died attempt's text

    conversation_flow.deliver_reply(app.services, died.id)
    done = SmsMessage.get_by_id(died.id)
    assert done.status == "sent" and done.provider_sid == sid and bodies(twilio) == ["Ok", "Ok"]


def test_a_reply_retried_twice_does_not_take_its_own_earlier_texts_for_this_attempts(app, client, twilio, ro):
    text_in(app, twilio, "Is it ready?")
    out = _sent_reply(app, client, twilio, ro, "Ok")
    for round_ in (1, 2):
        sid = SmsMessage.get_by_id(out.id).provider_sid
        assert twilio.status_callback(app.url, PUBLIC_URL, sid, "undelivered", error_code="30003").status_code == 204
        reply_status(out.id, "failed")
        app.settle()
        if round_ == 1:
            conversation_flow.retry(app.services, out.id, "UADVISOR")
            reply_status(out.id, "sent")
            app.settle()
    rules.retry_reply(out.id, "UADVISOR", app.settings)
    rules.set_status(SmsMessage.get_by_id(out.id), "sending")  # the third attempt's worker died; Twilio never saw it

    conversation_flow.deliver_reply(app.services, out.id)
    done = SmsMessage.get_by_id(out.id)
    assert bodies(twilio) == ["Ok", "Ok", "Ok"], "the third attempt was texted"
    assert done.status == "sent" and done.provider_sid == twilio.messages[2]["sid"]


# -- a worker killed on the way ----------------------------------------------------------------------


@pytest.fixture
def web(fake_slack, database_url, tmp_path, twilio):
    """The web process alone (no task workers in it): replies wait for a worker process."""
    env = files_env(fake_slack, database_url, tmp_path, twilio, None)
    running = start_app(env, workers=0)
    yield running, env
    running.stop()


@TOOK_IT
def test_a_worker_killed_after_twilio_took_a_reply_does_not_text_it_again(web, fake_slack, twilio, tmp_path, took_it):
    running, env = web
    log = tmp_path / "workers.log"
    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)
    out = rules.create_reply(ro, "UADVISOR", "Ready at 4", f"{time.time():.6f}", running.settings)
    running.services.tasks.enqueue("sms.reply", out.id, key=f"sms-reply:{out.id}:0", lane=f"sms-out:{out.id}")

    twilio.hold_sends(accept=took_it)
    first = worker(env, log)
    try:
        assert twilio.send_held.wait(60), "the first worker never reached Twilio:\n" + log.read_text()
        assert SmsMessage.get_by_id(out.id).status == "sending"
        [claimed] = TaskRecord.select().where((TaskRecord.name == "sms.reply") & (TaskRecord.status == "running"))
        kill(first)
    finally:
        stop(first)
    twilio.release_sends()  # the held request ends; its client is gone
    assert twilio.held_send_finished.wait(10)
    assert len(twilio.messages) == (1 if took_it else 0)
    assert SmsMessage.get_by_id(out.id).status == "sending", "nothing recorded: the worker died first"

    second = worker(env, log)
    try:
        done = reply_status(out.id, "sent", "failed")
        running.services.tasks.wait_idle(timeout=60)
    finally:
        stop(second)
    assert done.status == "sent", log.read_text()
    assert [m["Body"] for m in twilio.messages] == [out.body], "the customer got one text"
    assert done.provider_sid == twilio.messages[0]["sid"]
    record = TaskRecord.get_by_id(claimed.id)
    assert (record.status, record.attempts) == ("done", 2), "taken over from the dead worker, not given up"
