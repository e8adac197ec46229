"""Twilio's webhooks take exactly what Twilio signed. Twilio's signature sorts a field's values, so
a repeated field's order is not signed: a request with any field repeated is refused (403) and
changes nothing, whichever copy the forger put first."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests

from customers.consent_rules import is_opted_out
from storage.models import CustomerSend, SmsMessage, SmsOptOut
from tests.fakes.fake_twilio import FROM_NUMBER
from tests.support.factories import make_ro
from tests.support.files import PUBLIC_URL

CUSTOMER = "+15145550142"
STRANGER = "+15145550199"


def post_signed_with_forged_front(app, twilio, path: str, signed: dict[str, str], forged: dict[str, str]) -> requests.Response:
    """`signed`, signed by Twilio over PUBLIC_URL + path, with `forged` values put in front of it."""
    signature = twilio.sign(PUBLIC_URL.rstrip("/") + path, signed)
    body = urlencode(list(forged.items()) + list(signed.items()))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return requests.post(app.url + path, data=body, headers=headers, timeout=10)


def inbound_params(sid: str, sender: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": FROM_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }


@pytest.mark.parametrize(
    "forged",
    [
        {"MessageSid": "SM" + "f" * 32, "From": STRANGER, "Body": "STOP"},
        {"Body": "Please call me at evil.example"},
        {"From": STRANGER},
    ],
    ids=["sid-from-body", "body", "from"],
)
def test_an_inbound_text_with_forged_repeated_fields_is_refused_and_changes_nothing(app, fake_slack, twilio, forged):
    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)
    posted_before = len(fake_slack.messages.get(ro.channel_id, []))
    genuine = inbound_params("SM" + "a" * 32, CUSTOMER, "Is my car ready?")
    response = post_signed_with_forged_front(app, twilio, "/sms/inbound", genuine, forged)
    assert response.status_code == 403
    app.settle()
    assert SmsMessage.select().count() == 0
    assert SmsOptOut.select().count() == 0 and not is_opted_out(STRANGER) and not is_opted_out(CUSTOMER)
    assert len(fake_slack.messages.get(ro.channel_id, [])) == posted_before


def test_the_same_text_signed_once_without_repeats_is_taken(app, fake_slack, twilio):
    """The control: the genuine request alone passes the same check."""
    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)
    genuine = inbound_params("SM" + "a" * 32, CUSTOMER, "Is my car ready?")
    response = post_signed_with_forged_front(app, twilio, "/sms/inbound", genuine, {})
    assert response.status_code == 200
    app.settle()
    assert [m.body for m in SmsMessage.select()] == ["Is my car ready?"] and ro.id


def test_a_delivery_report_with_a_forged_repeated_status_is_refused(app, fake_slack, twilio):
    signed = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32, "To": CUSTOMER}
    response = post_signed_with_forged_front(app, twilio, "/sms/status", signed, {"MessageStatus": "undelivered"})
    assert response.status_code == 403
    assert CustomerSend.select().count() == 0
