"""A customer text whose attempt ended without knowing whether Twilio took it: the next attempt
asks Twilio first, tells this attempt's text from an earlier one's, and never texts twice.

The app's own delivery (customers.send_rules.deliver) against the fake Twilio over HTTP; the
database failure is a real one (a SQLite trigger refusing the write)."""

from __future__ import annotations

import pytest
from peewee import DatabaseError

from customers import customer_texts as texts
from customers import send_rules
from customers import twilio_gateway as twilio
from storage.db import database
from storage.models import CustomerSend, utcnow
from tests.support.factories import make_ro
from tests.support.files import jpeg_bytes, stored_file


@pytest.fixture
def send(app, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    photo = stored_file(app, ro, jpeg_bytes(), "IMG_0001.jpg", "image/jpeg")
    return send_rules.create_send(ro, "UADVISOR", [photo.id], app.settings)


def _claimed_then_died(send: CustomerSend) -> None:
    """What a worker killed mid-attempt leaves: the send claimed ("sending"), no outcome."""
    CustomerSend.update(status="sending", status_at=utcnow()).where(CustomerSend.id == send.id).execute()


def _text_it_behind_our_back(app, send: CustomerSend) -> str:
    """The died attempt's text, as Twilio took it."""
    ro = send.ro
    body = texts.sms_body(ro, app.settings.shop_name, send_rules.page_url(send, app.settings), send_rules.counts_of(send))
    return twilio.send_message(app.settings, send.destination, body, [], status_callback=None).sid


def test_a_resumed_retry_does_not_take_the_first_attempts_text_for_its_own(app, send, twilio):
    first = send_rules.deliver(send.id, app.settings)
    assert first.status == "sent" and len(twilio.messages) == 1
    from tests.support.files import PUBLIC_URL

    report = twilio.status_callback(app.url, PUBLIC_URL, first.provider_id, "undelivered", error_code="30003")
    assert report.status_code in (200, 204)
    assert CustomerSend.get_by_id(send.id).status == "failed"
    send_rules.retry(send.id, "UADVISOR", app.settings)
    _claimed_then_died(CustomerSend.get_by_id(send.id))

    again = send_rules.deliver(send.id, app.settings)
    assert again.status == "sent" and len(twilio.messages) == 2, "the retry's text went out"
    assert again.provider_id == twilio.messages[1]["sid"] != first.provider_id


@pytest.mark.parametrize("reached_twilio", [True, False], ids=["Twilio had taken it", "Twilio never saw it"])
def test_a_retry_after_the_queue_gave_up_on_an_unsure_attempt_asks_twilio_first(app, send, twilio, reached_twilio):
    _claimed_then_died(send)
    sid = _text_it_behind_our_back(app, send) if reached_twilio else None
    given_up = send_rules.give_up(send.id, "died")
    assert given_up.status == "failed" and given_up.unsure_since is not None
    send_rules.retry(send.id, "UADVISOR", app.settings)

    done = send_rules.deliver(send.id, app.settings)
    assert done.status == "sent" and len(twilio.messages) == 1, "the customer has one text"
    assert done.provider_id == (sid or twilio.messages[0]["sid"])
    assert CustomerSend.get_by_id(send.id).unsure_since is None


def test_a_database_failure_after_twilio_took_the_text_is_not_recorded_as_a_failed_send(app, send, twilio):
    db = database.obj
    with database.connection_context():
        db.execute_sql(
            "CREATE TRIGGER refuse_sent BEFORE UPDATE ON customer_send WHEN NEW.status = 'sent' "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    with pytest.raises(DatabaseError):
        send_rules.deliver(send.id, app.settings)
    assert len(twilio.messages) == 1
    assert CustomerSend.get_by_id(send.id).status == "sending", "not 'failed': a Retry button would text again"
    with database.connection_context():
        db.execute_sql("DROP TRIGGER refuse_sent")

    resumed = send_rules.deliver(send.id, app.settings)  # the task's next attempt
    assert resumed.status == "sent" and resumed.provider_id == twilio.messages[0]["sid"]
    assert len(twilio.messages) == 1
