"""Sending files to the customer by text: the message, MMS limits, delivery reports, opt-out,
an SMS gateway that is down, retries, revocation, and the permission checks."""

from __future__ import annotations

import re

import pytest
import requests

from customers.link_tokens import read_token
from storage.models import CustomerSend, SmsOptOut, StaffUser
from tests.support.factories import make_ro
from tests.support.files import (
    PUBLIC_URL,
    crafted,
    files_env,
    jpeg_bytes,
    noisy_jpeg_bytes,
    note_buttons,
    note_of,
    open_files,
    press_note_button,
    send_files,
    stored_file,
    submit,
    told_and_retry_offered,
    wait_send,
    with_ticks,
)
from tests.support.harness import SlackTestClient, start_app, wait_until

TOKEN_URL = re.compile(re.escape(PUBLIC_URL) + r"/c/([A-Za-z0-9_-]{43})")


def _ro(fake_slack, **fields):
    return make_ro(fake_slack, members=("UTECH", "UADVISOR"), **fields)


def _failed_send(app, client, fake_slack, twilio):
    """A send that failed while Twilio was down; Twilio is back up afterwards."""
    ro = _ro(fake_slack)
    twilio.go_down()
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("failed")
    twilio.come_back()
    return ro, send


def _local(app, url: str) -> str:
    return url.replace(PUBLIC_URL, app.url)


def test_a_send_texts_the_customer_in_french_with_a_link(app, client, fake_slack, twilio):
    ro = _ro(fake_slack, language="fr")
    photo = stored_file(app, ro, jpeg_bytes(), "IMG_0001.jpg", "image/jpeg")
    answer = send_files(client, fake_slack, ro, [photo])
    assert answer["response_action"] == "update" and "texto" in str(answer["view"]["blocks"])
    send = wait_send("sent")
    [message] = twilio.messages
    assert message["To"] == "+15145550142" and message["From"] == "+15145550100"
    assert message["StatusCallback"] == f"{PUBLIC_URL}/sms/status"
    body = message["Body"]
    assert body.startswith("Garage Tremblay : les photos de votre 2021 Honda Civic (BT ") and ro.ro_number in body
    token = TOKEN_URL.search(body).group(1)
    assert read_token(app.settings.signing_key(), token) == send.token_id
    assert (send.method, send.destination, send.sent_by, send.provider_id) == ("mms", "+15145550142", "UADVISOR", message["sid"])
    page = requests.get(_local(app, TOKEN_URL.search(body).group(0)), timeout=10)
    assert page.status_code == 200 and "Bon de travail" in page.text

    note = note_of(app, fake_slack, ro.channel_id, send)
    assert "<@UADVISOR>" in note["text"] and "1 photo" in note["text"] and "(514) 555-0142" in note["text"]
    assert "send.revoke" in note_buttons(note) and "send.retry" not in note_buttons(note)


def test_an_english_customer_gets_english(app, client, fake_slack, twilio):
    ro = _ro(fake_slack, language="en")
    clip = stored_file(app, ro, b"\x00\x00\x00\x18ftypmp42 fake", "walk.mp4", "video/mp4")
    send_files(client, fake_slack, ro, [clip])
    wait_send("sent")
    assert twilio.messages[0]["Body"].startswith("Garage Tremblay: the videos of your 2021 Honda Civic (RO ")


def test_photos_ride_as_mms_within_limits_and_videos_only_as_the_link(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    photos = [stored_file(app, ro, jpeg_bytes(color=(i, 9, 9)), f"p{i}.jpg", "image/jpeg", minutes_ago=i) for i in range(12)]
    clip_bytes = b"\x00\x00\x00\x18ftypmp42 fake"
    clip = stored_file(app, ro, clip_bytes, "walk.mp4", "video/mp4")
    view = open_files(client, fake_slack, ro)
    from tests.support.files import press_page

    second = press_page(client, fake_slack, with_ticks(view, [f.id for f in [clip, *photos[:9]]]), "files.next", "1")
    submit(client, with_ticks(second, [f.id for f in photos[9:]]))
    send = wait_send("sent")
    [message] = twilio.messages
    assert len(message["MediaUrl"]) == 10 and send.method == "mms"
    for url in message["MediaUrl"]:
        assert url.startswith(f"{PUBLIC_URL}/c/")
        served = requests.get(_local(app, url), timeout=10)
        assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    served = [requests.get(_local(app, u), timeout=10).content for u in message["MediaUrl"]]
    assert clip_bytes not in served, "the video never rides as MMS"
    assert sorted(served) == sorted(jpeg_bytes(color=(i, 9, 9)) for i in range(2, 12)), "the first ten photos in recording order"


def test_mms_media_stay_under_five_megabytes(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    big = [stored_file(app, ro, noisy_jpeg_bytes(1600, 1600), f"big{i}.jpg", "image/jpeg", minutes_ago=i) for i in range(3)]
    assert all(2_000_000 < f.size < 5_000_000 for f in big)
    send_files(client, fake_slack, ro, big)
    wait_send("sent")
    media = twilio.messages[0]["MediaUrl"]
    total = sum(len(requests.get(_local(app, u), timeout=10).content) for u in media)
    assert 1 <= len(media) < 3 and total <= 5_000_000


def test_with_mms_off_photos_go_as_the_link(fake_slack, sqlite_url, tmp_path, twilio):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, None, SEND_MMS="false"))
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack)
        send_files(client, fake_slack, ro, [stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
        assert wait_send("sent").method == "sms"
        assert twilio.messages[0]["MediaUrl"] == []
    finally:
        running.stop()


def test_delivery_reports_update_the_send_and_the_note(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("sent")
    sid = twilio.messages[0]["sid"]

    assert twilio.status_callback(app.url, PUBLIC_URL, sid, "delivered", signature="bad").status_code == 403
    # Signed over the URL we see rather than the public one Twilio called: also refused.
    assert twilio.status_callback(app.url, app.url, sid, "delivered").status_code == 403
    assert CustomerSend.get_by_id(send.id).status == "sent"

    assert twilio.status_callback(app.url, PUBLIC_URL, sid, "delivered").status_code == 204
    assert CustomerSend.get_by_id(send.id).status == "delivered"
    wait_until(
        lambda: "livré" in str(note_of(app, fake_slack, ro.channel_id, send).get("blocks")), message="note shows delivered"
    )
    # A late "sent" report never takes "delivered" back.
    assert twilio.status_callback(app.url, PUBLIC_URL, sid, "sent").status_code == 204
    assert CustomerSend.get_by_id(send.id).status == "delivered"
    assert twilio.status_callback(app.url, PUBLIC_URL, "SMunknown", "delivered").status_code == 204


def test_an_undelivered_report_fails_the_send_and_tells_the_sender(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("sent")
    twilio.status_callback(app.url, PUBLIC_URL, twilio.messages[0]["sid"], "undelivered", error_code="30005")
    send = CustomerSend.get_by_id(send.id)
    assert (send.status, send.error) == ("failed", "sms_undelivered:30005")
    told = wait_until(lambda: [e for e in fake_slack.ephemerals if e["user"] == "UADVISOR"], message="the sender told")
    assert "30005" in told[0]["text"]
    wait_until(lambda: "send.retry" in note_buttons(note_of(app, fake_slack, ro.channel_id, send)), message="a Retry button")


def test_a_customer_who_opted_out_gets_no_more_texts(app, client, fake_slack, twilio):
    ro = _ro(fake_slack, email=None)
    photo = stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    twilio.fail_with(21610, message="Attempt to send to unsubscribed recipient")
    stale = with_ticks(open_files(client, fake_slack, ro), [photo.id])
    submit(client, stale)
    send = wait_send("opted_out")
    assert SmsOptOut.get_or_none(SmsOptOut.phone == "+15145550142") is not None
    told = wait_until(lambda: [e for e in fake_slack.ephemerals if e["user"] == "UADVISOR"], message="the sender told")
    assert "STOP" in told[0]["text"]
    note = note_of(app, fake_slack, ro.channel_id, send)
    assert "STOP" in note["text"] and "send.retry" not in note_buttons(note), "no email to fall back on"

    view = open_files(client, fake_slack, ro)
    assert "submit" not in view and "STOP" in str(view["blocks"])
    answer = submit(client, stale)  # the modal opened before the opt-out, submitted again
    assert answer["response_action"] == "errors" and "STOP" in next(iter(answer["errors"].values()))
    assert len(twilio.rejected) == 1 and twilio.messages == []
    assert CustomerSend.select().count() == 1


def test_after_an_opt_out_the_note_offers_email_and_it_works(app, client, fake_slack, twilio, smtp):
    ro = _ro(fake_slack, email="jean@example.com")
    twilio.fail_with(21610)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("opted_out")
    note = wait_until(
        lambda: (lambda n: n if "send.retry" in note_buttons(n) else None)(note_of(app, fake_slack, ro.channel_id, send)),
        message="a Send by email button",
    )
    assert note_buttons(note)["send.retry"]["text"]["text"] == "Envoyer par courriel"
    press_note_button(client, ro, "send.retry", send.id)
    send = wait_send("sent")
    assert (send.method, send.destination) == ("email", "jean@example.com")
    wait_until(lambda: smtp.messages, message="the email")
    assert smtp.messages[0]["to"] == ["jean@example.com"] and twilio.messages == []


def test_twilio_down_fails_the_send_tells_the_sender_and_retry_works(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    twilio.go_down()
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("failed")
    assert send.error == "sms_unreachable"
    told, note = told_and_retry_offered(app, fake_slack, ro, send)
    assert "Twilio" in told and "échoué" in note["text"]

    twilio.come_back()
    press_note_button(client, ro, "send.retry", send.id)
    wait_until(lambda: CustomerSend.get_by_id(send.id).status == "sent", timeout=10, message="the retry sent")
    assert len(twilio.messages) == 1 and twilio.messages[0]["MediaUrl"] == [], "a retry goes as a plain text with the link"
    wait_until(lambda: "send.retry" not in note_buttons(note_of(app, fake_slack, ro.channel_id, send)), message="note updated")


def test_twilio_5xx_and_rejections_are_failures_with_reasons(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    photo = stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    twilio.fail_with(20500, status=500)
    send_files(client, fake_slack, ro, [photo])
    assert wait_send("failed").error == "sms_unreachable"
    twilio.fail_with(21211, message="Invalid 'To' Phone Number")
    send_files(client, fake_slack, ro, [photo])
    wait_until(lambda: CustomerSend.select().where(CustomerSend.error == "sms_rejected:21211").exists(), message="rejected")


def test_a_double_pressed_retry_sends_once(app, client, fake_slack, twilio):
    ro, send = _failed_send(app, client, fake_slack, twilio)
    press_note_button(client, ro, "send.retry", send.id)
    press_note_button(client, ro, "send.retry", send.id)
    wait_until(lambda: CustomerSend.get_by_id(send.id).status == "sent", message="sent")
    app.settle()  # the second press, and anything it queued, has run
    assert len(twilio.messages) == 1


def test_a_user_without_permission_pressing_send_sends_nothing(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    photo = stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    view = open_files(client, fake_slack, ro, user="UADVISOR")  # someone allowed opened it…
    StaffUser.create(slack_user_id="UTECH", name="luc", locale="en-US", can_message_customers=False)
    answer = submit(client, with_ticks(view, [photo.id]), user="UTECH")  # …someone who is not pressed Send
    assert answer["response_action"] == "errors"
    assert "not allowed" in next(iter(answer["errors"].values()))
    assert CustomerSend.select().count() == 0 and twilio.messages == [] and twilio.rejected == []


def test_the_default_permission_is_configurable_and_admins_always_may(fake_slack, sqlite_url, tmp_path, twilio):
    env = files_env(
        fake_slack, sqlite_url, tmp_path, twilio, None, DEFAULT_CAN_MESSAGE_CUSTOMERS="false", ADMIN_SLACK_USER_IDS="UADVISOR"
    )
    running = start_app(env)
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack)
        photo = stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
        view = open_files(client, fake_slack, ro, user="UADVISOR")
        assert "submit" in view
        assert submit(client, with_ticks(view, [photo.id]), user="UTECH")["response_action"] == "errors"
        assert CustomerSend.select().count() == 0
        assert submit(client, with_ticks(view, [photo.id]), user="UADVISOR")["response_action"] == "update"
        wait_send("sent")
    finally:
        running.stop()


def test_a_customer_with_neither_mobile_nor_email_cannot_be_sent_to(app, client, fake_slack, twilio):
    ro = _ro(fake_slack, mobile_phone=None, email=None)
    photo = stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    view = open_files(client, fake_slack, ro, user="UTECH")
    assert "submit" not in view and "neither a mobile number nor an email" in str(view["blocks"])
    # A submission crafted anyway is refused by the server too.
    answer = submit(client, crafted(view, [photo]), user="UTECH")
    assert answer["response_action"] == "errors" and "neither" in next(iter(answer["errors"].values()))
    assert CustomerSend.select().count() == 0 and twilio.messages == []


def test_nothing_ticked_is_refused(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    answer = submit(client, with_ticks(open_files(client, fake_slack, ro), []))
    assert answer["response_action"] == "errors" and "au moins un fichier" in next(iter(answer["errors"].values()))


def test_a_file_of_another_ro_cannot_be_smuggled_in(app, client, fake_slack, twilio):
    ro, other = _ro(fake_slack), _ro(fake_slack)
    mine = stored_file(app, ro, jpeg_bytes(), "mine.jpg", "image/jpeg")
    theirs = stored_file(app, other, jpeg_bytes(color=(0, 0, 0)), "theirs.jpg", "image/jpeg")
    view = open_files(client, fake_slack, ro)
    view["blocks"][[b.get("type") for b in view["blocks"]].index("input")]["element"]["options"].append(
        {"text": {"type": "plain_text", "text": "x"}, "value": str(theirs.id)}
    )
    answer = submit(client, with_ticks(view, [mine.id, theirs.id]))
    assert answer["response_action"] == "errors" and CustomerSend.select().count() == 0


def test_revoking_the_link_closes_the_page_and_updates_the_note(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("sent")
    page_url = _local(app, TOKEN_URL.search(twilio.messages[0]["Body"]).group(0))
    media_url = _local(app, twilio.messages[0]["MediaUrl"][0])
    assert requests.get(page_url, timeout=10).status_code == 200
    note_of(app, fake_slack, ro.channel_id, send)

    StaffUser.create(slack_user_id="UTECH", name="luc", locale="en-US", can_message_customers=False)
    press_note_button(client, ro, "send.revoke", send.id, user="UTECH")
    wait_until(lambda: any("not allowed" in r.get("text", "") for r in fake_slack.responses), message="refusal")
    assert CustomerSend.get_by_id(send.id).revoked_at is None and requests.get(page_url, timeout=10).status_code == 200

    press_note_button(client, ro, "send.revoke", send.id, user="UADVISOR")
    wait_until(lambda: CustomerSend.get_by_id(send.id).revoked_at is not None, message="revoked")
    gone = requests.get(page_url, timeout=10)
    assert gone.status_code == 410 and "514 555-0100" in gone.text
    assert requests.get(media_url, timeout=10).status_code == 410
    wait_until(lambda: "révoqué" in note_of(app, fake_slack, ro.channel_id, send)["text"], message="note says revoked")
    assert "send.revoke" not in note_buttons(note_of(app, fake_slack, ro.channel_id, send))


def test_retry_needs_permission_too(app, client, fake_slack, twilio):
    ro, send = _failed_send(app, client, fake_slack, twilio)
    StaffUser.create(slack_user_id="UTECH", name="luc", locale="en-US", can_message_customers=False)
    press_note_button(client, ro, "send.retry", send.id, user="UTECH")
    wait_until(lambda: any("not allowed" in r.get("text", "") for r in fake_slack.responses), message="refusal")
    assert CustomerSend.get_by_id(send.id).status == "failed" and twilio.messages == []


def test_a_late_failure_report_never_takes_delivered_back(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("sent")
    sid = twilio.messages[0]["sid"]
    assert twilio.status_callback(app.url, PUBLIC_URL, sid, "delivered").status_code == 204
    wait_until(
        lambda: "livré" in str(note_of(app, fake_slack, ro.channel_id, send).get("blocks")), message="note shows delivered"
    )
    for late, code in (("undelivered", "30005"), ("failed", "30008")):
        assert twilio.status_callback(app.url, PUBLIC_URL, sid, late, error_code=code).status_code == 204
        current = CustomerSend.get_by_id(send.id)
        assert (current.status, current.error) == ("delivered", None)
    note = note_of(app, fake_slack, ro.channel_id, send)  # settled: every report's redraw and note has run
    assert not [e for e in fake_slack.ephemerals if e["user"] == "UADVISOR"], "nobody is told of a failure"
    assert "livré" in str(note["blocks"]) and "send.retry" not in note_buttons(note)


@pytest.fixture
def app_any_db(fake_slack, database_url, tmp_path, twilio):
    running = start_app(files_env(fake_slack, database_url, tmp_path, twilio, None))
    yield running
    running.stop()


def test_a_delivery_report_during_the_sent_redraw_still_ends_as_delivered(app_any_db, fake_slack, twilio):
    """The deliver thread's "sent" redraw is slow to reach Slack; the "delivered" report comes in meanwhile.
    Whatever order the two redraws reach Slack in, the note ends up showing the latest state."""
    app, client = app_any_db, SlackTestClient(app_any_db.url, fake_slack)
    ro = _ro(fake_slack)
    in_flight = fake_slack.hold("chat.update", lambda args: "Livraison : envoyé" in str(args.get("blocks")), seconds=1.0)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    wait_until(in_flight.arrived.is_set, timeout=20, message="the 'sent' redraw on its way to Slack")
    send = wait_send("sent")
    assert twilio.status_callback(app.url, PUBLIC_URL, twilio.messages[0]["sid"], "delivered").status_code == 204
    wait_until(in_flight.answered.is_set, message="the 'sent' redraw answered")
    wait_until(
        lambda: "livré" in str(note_of(app, fake_slack, ro.channel_id, send).get("blocks")), message="the note shows delivered"
    )


def test_an_opt_out_reported_by_the_delivery_callback_is_recorded_and_the_sender_told(app, client, fake_slack, twilio):
    ro = _ro(fake_slack, email=None)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("sent")
    assert SmsOptOut.select().count() == 0
    assert (
        twilio.status_callback(app.url, PUBLIC_URL, twilio.messages[0]["sid"], "undelivered", error_code="21610").status_code
        == 204
    )
    send = CustomerSend.get_by_id(send.id)
    assert (send.status, send.error) == ("opted_out", "opted_out")
    assert SmsOptOut.get_or_none(SmsOptOut.phone == "+15145550142") is not None
    told = wait_until(lambda: [e for e in fake_slack.ephemerals if e["user"] == "UADVISOR"], message="the sender told")
    assert "STOP" in told[0]["text"]
    wait_until(lambda: "STOP" in note_of(app, fake_slack, ro.channel_id, send)["text"], message="the note says so")
    view = open_files(client, fake_slack, ro)
    assert "submit" not in view and "STOP" in str(view["blocks"]), "no more texts to that number"


@pytest.mark.parametrize("env,days", [({}, 30), ({"SHARE_TTL_DAYS": "3"}, 3)])
def test_links_expire_after_share_ttl_days(fake_slack, sqlite_url, tmp_path, twilio, env, days):
    from datetime import timedelta

    from storage.models import utcnow

    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, None, **env))
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack)
        before = utcnow()
        send_files(client, fake_slack, ro, [stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
        after = utcnow()
        send = wait_send("sent")
        assert before + timedelta(days=days) <= send.expires_at <= after + timedelta(days=days)
    finally:
        running.stop()


def test_every_attempt_and_report_is_kept_in_the_history(app, client, fake_slack, twilio):
    from customers.send_rules import history

    ro, send = _failed_send(app, client, fake_slack, twilio)
    press_note_button(client, ro, "send.retry", send.id)
    wait_until(lambda: CustomerSend.get_by_id(send.id).status == "sent", timeout=10, message="the retry sent")
    sid = twilio.messages[0]["sid"]
    twilio.status_callback(app.url, PUBLIC_URL, sid, "delivered")
    twilio.status_callback(app.url, PUBLIC_URL, sid, "undelivered", error_code="30005")  # late: kept, not applied
    rows = history(send.id)
    assert [(r.kind, r.status, r.error, r.applied) for r in rows] == [
        ("attempt", "failed", "sms_unreachable", True),
        ("attempt", "sent", None, True),
        ("report", "delivered", None, True),
        ("report", "failed", "sms_undelivered:30005", False),
    ]
    assert [r.provider_id for r in rows] == [None, sid, sid, sid]
    assert {(r.method, r.destination) for r in rows} == {("sms", "+15145550142")}
    assert CustomerSend.get_by_id(send.id).status == "delivered"


def test_an_opt_out_then_a_retry_by_email_keeps_both_in_the_history(app, client, fake_slack, twilio, smtp):
    from customers.send_rules import history

    ro = _ro(fake_slack, email="jean@example.com")
    twilio.fail_with(21610)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("opted_out")
    wait_until(lambda: "send.retry" in note_buttons(note_of(app, fake_slack, ro.channel_id, send)), message="Send by email")
    press_note_button(client, ro, "send.retry", send.id)
    wait_until(lambda: CustomerSend.get_by_id(send.id).status == "sent", timeout=10, message="emailed")
    assert [(r.method, r.destination, r.status) for r in history(send.id)] == [
        ("sms", "+15145550142", "opted_out"),
        ("email", "jean@example.com", "sent"),
    ]


def test_a_sender_who_lost_the_permission_cannot_revoke_their_send(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("sent")
    page_url = _local(app, TOKEN_URL.search(twilio.messages[0]["Body"]).group(0))
    note_of(app, fake_slack, ro.channel_id, send)
    StaffUser.get_or_create(slack_user_id="UADVISOR")
    StaffUser.update(can_message_customers=False).where(StaffUser.slack_user_id == "UADVISOR").execute()  # an admin took it away
    press_note_button(client, ro, "send.revoke", send.id, user="UADVISOR")
    wait_until(lambda: any("pas la permission" in r.get("text", "") for r in fake_slack.responses), message="refusal")
    assert CustomerSend.get_by_id(send.id).revoked_at is None and requests.get(page_url, timeout=10).status_code == 200

    press_note_button(client, ro, "send.revoke", send.id, user="UTECH")  # allowed by default
    wait_until(lambda: CustomerSend.get_by_id(send.id).revoked_by == "UTECH", message="revoked by someone allowed")
    assert requests.get(page_url, timeout=10).status_code == 410
