"""The customer conversation: texts from the customer in the RO's thread, staff replies texted back,
consent keywords, MMS media, unmatched numbers. Driven over HTTP: Twilio's webhook signed by the
fake Twilio, Slack events signed with slack_sdk's verifier, the fake Slack's call log."""

from __future__ import annotations

import re
import time

import pytest

from blocks import ids
from blocks.codec import HomeState, SmsRef
from blocks.conversation_view import ROOT_BLOCK
from customers.consent_rules import is_opted_out
from storage.models import Activity, CustomerSend, RepairOrder, RoFile, SmsMessage, SmsOptOut, StaffUser
from tests.fakes.fake_twilio import FakeTwilio
from tests.support.factories import make_ro
from tests.support.files import PUBLIC_URL, SHOP_PHONE, files_env, jpeg_bytes, open_files
from tests.support.harness import SlackTestClient, start_app, wait_until

CUSTOMER = "+15145550142"
HOSTILE = "<!channel> Roy & Fils <https://evil.example|Cliquez ici> <@U0EVIL>"


@pytest.fixture
def ro(app, fake_slack):
    return make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)


def text_in(app, twilio: FakeTwilio, body: str, sender: str = CUSTOMER, **fields):
    response = twilio.inbound(app.url, PUBLIC_URL, sender, body, **fields)
    app.settle()
    return response


def thread_of(fake_slack, ro) -> list[dict]:
    ts = RepairOrder.get_by_id(ro.id).conversation_ts
    assert ts, "no conversation thread"
    return [m for m in fake_slack.messages[ro.channel_id] if m.get("thread_ts") == ts and m["ts"] != ts]


def texts_in_thread(fake_slack, ro) -> list[str]:
    return [b["text"]["text"] for m in thread_of(fake_slack, ro) for b in m.get("blocks") or [] if b.get("type") == "section"]


def reply(app, client, ro, text: str, user: str = "UADVISOR", **fields) -> str:
    ts = f"{time.time():.6f}"
    event = {
        "type": "message",
        "channel": ro.channel_id,
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": RepairOrder.get_by_id(ro.id).conversation_ts,
        "channel_type": "channel",
        **fields,
    }
    client.event(event)
    app.settle()
    return ts


def ephemerals(fake_slack, user: str) -> list[str]:
    return [e["text"] for e in fake_slack.ephemerals if e["user"] == user]


# -- in -------------------------------------------------------------------------------------------


def test_a_customer_text_opens_the_conversation_thread_shown_as_text(app, fake_slack, twilio, ro):
    response = text_in(app, twilio, f"Bonjour, is my car ready? {HOSTILE}")
    assert (
        response.status_code == 200
        and response.headers["Content-Type"].startswith("text/xml")
        and "<Message>" not in response.text
    )
    stored = RepairOrder.get_by_id(ro.id)
    root = next(m for m in fake_slack.messages[ro.channel_id] if m["ts"] == stored.conversation_ts)
    assert root["blocks"][0]["block_id"] == ROOT_BLOCK and "Jean Tremblay" in root["text"]
    [post] = texts_in_thread(fake_slack, ro)
    assert "Bonjour, is my car ready?" in post and "(514) 555-0142" in post
    assert "&lt;!channel&gt; Roy &amp; Fils &lt;https://evil.example|Cliquez ici&gt; &lt;@U0EVIL&gt;" in post
    assert "<!channel>" not in str(thread_of(fake_slack, ro))
    message = SmsMessage.get()
    assert (message.direction, message.status, message.ro_id, message.phone) == ("in", "posted", ro.id, CUSTOMER)


def test_the_card_gets_its_view_conversation_button_linking_to_the_thread(app, fake_slack, twilio, ro):
    text_in(app, twilio, "Hello")
    stored = RepairOrder.get_by_id(ro.id)
    cards = [
        c
        for c in fake_slack.calls_to("chat.postMessage") + fake_slack.calls_to("chat.update")
        if ids.RO_CONVERSATION in str(c.args.get("blocks"))
    ]
    assert cards, "the card was redrawn with the button"
    button = next(
        e
        for b in cards[-1].args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == ids.RO_CONVERSATION
    )
    assert button["url"].endswith("p" + stored.conversation_ts.replace(".", ""))


def test_later_texts_go_in_the_same_thread_and_count_as_unread(app, fake_slack, twilio, ro):
    text_in(app, twilio, "First")
    text_in(app, twilio, "Second")
    roots = [m for m in fake_slack.messages[ro.channel_id] if (m.get("blocks") or [{}])[0].get("block_id") == ROOT_BLOCK]
    assert len(roots) == 1 and len(texts_in_thread(fake_slack, ro)) == 2
    from people.unread_rules import unread_counts

    assert unread_counts("UTECH", [ro.id]) == {ro.id: 2} and unread_counts("UADVISOR", [ro.id]) == {ro.id: 2}
    assert {a.kind for a in Activity.select()} == {"customer_message"}


def test_a_redelivered_webhook_is_processed_once(app, fake_slack, twilio, ro):
    first = text_in(app, twilio, "Once", message_sid="SM" + "7" * 32)
    again = text_in(app, twilio, "Once", message_sid="SM" + "7" * 32)
    assert first.status_code == again.status_code == 200
    assert len(texts_in_thread(fake_slack, ro)) == 1 and SmsMessage.select().count() == 1


def test_a_thread_posted_but_not_recorded_is_found_again(app, fake_slack, twilio, ro):
    """Slack makes the thread's first message but its answer never arrives: the retry finds it."""
    fake_slack.crash_after("chat.postMessage")
    text_in(app, twilio, "Anyone there?")
    roots = [m for m in fake_slack.messages[ro.channel_id] if (m.get("blocks") or [{}])[0].get("block_id") == ROOT_BLOCK]
    assert len(roots) == 1 and RepairOrder.get_by_id(ro.id).conversation_ts == roots[0]["ts"]
    assert len(texts_in_thread(fake_slack, ro)) == 1


def test_a_number_with_several_open_ros_goes_to_the_nearest_appointment_and_names_the_others(app, fake_slack, twilio, ro):
    from datetime import timedelta

    from storage.models import utcnow

    later = make_ro(fake_slack, owner="UADVISOR", mobile_phone=CUSTOMER, appointment_at=utcnow() + timedelta(days=5))
    make_ro(fake_slack, owner="UADVISOR", mobile_phone=CUSTOMER, status="completed")
    text_in(app, twilio, "Which car?")
    assert SmsMessage.get().ro_id == ro.id
    [post, *_] = [b for m in thread_of(fake_slack, ro) for b in m.get("blocks") or []]
    assert later.ro_number in str(thread_of(fake_slack, ro)) and not RepairOrder.get_by_id(later.id).conversation_ts
    assert post


def test_a_1600_character_text_with_emoji_and_markup_is_posted_whole_and_as_text(app, fake_slack, twilio, ro):
    body = ("🚗 <@UTECH> & <!here> " * 100)[:1600]
    text_in(app, twilio, body)
    shown = "".join(texts_in_thread(fake_slack, ro))
    assert shown.count("🚗") == body.count("🚗") and "<!here>" not in shown and "&lt;!here&gt;" in shown
    assert all(len(text) <= 3000 for text in texts_in_thread(fake_slack, ro))


@pytest.mark.parametrize("signature", ["forged", "missing", "other url"])
def test_a_webhook_not_signed_by_twilio_is_refused_and_nothing_is_posted(app, fake_slack, twilio, ro, signature):
    header = {"forged": "dGhpcyBpcyBub3QgYSBzaWduYXR1cmU=", "missing": ""}.get(signature)
    if signature == "other url":
        response = twilio.inbound(app.url, "https://evil.example", CUSTOMER, "Hi")
    else:
        response = twilio.inbound(app.url, PUBLIC_URL, CUSTOMER, "Hi", signature=header)
    app.settle()
    assert response.status_code == 403
    assert SmsMessage.select().count() == 0 and not RepairOrder.get_by_id(ro.id).conversation_ts


@pytest.mark.parametrize("missing", ["From", "Body", "MessageSid"])
def test_a_webhook_without_from_body_or_sid_is_a_bad_request(app, fake_slack, twilio, ro, missing):
    extra = {missing: None}
    if missing == "MessageSid":
        extra["SmsSid"] = None
    response = text_in(app, twilio, "Hi", extra=extra)
    assert response.status_code == 400 and SmsMessage.select().count() == 0


# -- MMS ------------------------------------------------------------------------------------------


@pytest.fixture
def cdn_twilio():
    """A fake Twilio whose media CDN answers on another host name: credentials must not follow."""
    fake = FakeTwilio(cdn_host="localhost").start()
    yield fake
    fake.stop()


def test_mms_photos_land_in_the_thread_and_the_files_as_the_customers(fake_slack, sqlite_url, tmp_path, cdn_twilio):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, cdn_twilio, None))
    try:
        ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)
        photo = jpeg_bytes(color=(9, 9, 9))
        url = cdn_twilio.add_media(photo, "image/jpeg")
        response = cdn_twilio.inbound(running.url, PUBLIC_URL, CUSTOMER, "Here is the scratch", media=[(url, "image/jpeg")])
        running.settle()
        assert response.status_code == 200
        [stored] = RoFile.select().where(RoFile.origin == "customer")
        assert (stored.copy_status, stored.kind, stored.uploader_user_id, stored.size) == (
            "stored",
            "picture",
            "customer",
            len(photo),
        ), stored.last_error
        [upload] = fake_slack.uploads
        assert upload["content"] == photo and upload["thread_ts"] == RepairOrder.get_by_id(ro.id).conversation_ts
        assert cdn_twilio.media_requests and all(a and a.startswith("Basic ") for a in cdn_twilio.media_requests)
        assert cdn_twilio.cdn_requests == [None], "the auth token never goes to the CDN"
        assert cdn_twilio.api_url not in str(fake_slack.messages), "no Twilio URL is posted in Slack"
        assert Activity.select().where(Activity.kind == "file").count() == 0, "not an internal picture"
        assert RoFile.select().count() == 1, "our own upload's file_shared event adds no staff file"
        view = open_files(SlackTestClient(running.url, fake_slack), fake_slack, ro)
        assert "Client" in str(view["blocks"])
    finally:
        running.stop()


@pytest.mark.parametrize("fault", ["401", "404", "20 MB"])
def test_a_media_that_cannot_be_fetched_still_posts_the_text_and_says_why(app, fake_slack, twilio, ro, fault):
    if fault == "20 MB":
        url = twilio.add_media_size(20 * 1024 * 1024, "video/mp4")
    else:
        url = twilio.add_media(jpeg_bytes(), "image/jpeg")
        twilio.media_fault(url, status=int(fault))
    text_in(app, twilio, "video of the noise", media=[(url, "video/mp4" if fault == "20 MB" else "image/jpeg")])
    assert any("video of the noise" in t for t in texts_in_thread(fake_slack, ro))
    [row] = RoFile.select().where(RoFile.origin == "customer")
    assert row.copy_status == "failed" and row.last_error
    expected = "too large" if fault == "20 MB" else f"HTTP {fault}"
    assert expected in row.last_error and expected in str(thread_of(fake_slack, ro))
    assert fake_slack.uploads == []


def test_a_slow_media_is_waited_for(app, fake_slack, twilio, ro):
    url = twilio.add_media(jpeg_bytes(), "image/jpeg")
    twilio.slow_media(url, 1.0)
    text_in(app, twilio, "slow", media=[(url, "image/jpeg")])
    assert RoFile.get(RoFile.origin == "customer").copy_status == "stored"


# -- consent --------------------------------------------------------------------------------------


@pytest.mark.parametrize("word,answered", [("STOP", False), ("arrêt", True), ("Arret.", True), ("UNSUBSCRIBE", False)])
def test_an_opt_out_keyword_is_recorded_noted_and_confirmed_when_twilio_does_not(app, fake_slack, twilio, ro, word, answered):
    response = text_in(app, twilio, word)
    assert is_opted_out(CUSTOMER)
    assert ("<Message>" in response.text) is answered
    if answered:
        assert "Garage Tremblay" in response.text and "DEBUT" in response.text and "START" in response.text
    assert "asked to stop" in str(thread_of(fake_slack, ro)) or "ne plus recevoir" in str(thread_of(fake_slack, ro))


def test_while_opted_out_nothing_is_texted_and_start_opts_back_in(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "STOP")
    reply(app, client, ro, "Your car is ready")
    assert twilio.messages == []
    assert any("asked not to receive texts" in t or "ne plus recevoir" in t for t in ephemerals(fake_slack, "UADVISOR"))
    text_in(app, twilio, "START")
    assert not is_opted_out(CUSTOMER)
    reply(app, client, ro, "Your car is ready")
    assert len(twilio.messages) == 1 and twilio.messages[0]["Body"].startswith("Your car is ready")


@pytest.mark.parametrize("word", ["HELP", "aide", "Info"])
def test_help_gets_a_short_bilingual_answer_with_the_shop(app, fake_slack, twilio, ro, word):
    response = text_in(app, twilio, word)
    assert "<Message>" in response.text and "Garage Tremblay" in response.text and SHOP_PHONE in response.text
    assert "ARRET" in response.text and "STOP" in response.text and not is_opted_out(CUSTOMER)


def test_oui_is_an_answer_not_a_keyword(app, fake_slack, twilio, ro):
    response = text_in(app, twilio, "Oui")
    assert "<Message>" not in response.text and SmsMessage.get().keyword is None


# -- out ------------------------------------------------------------------------------------------


def test_a_reply_in_the_thread_is_texted_signed_and_followed_to_delivered(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "Is it ready?")
    reply(app, client, ro, "Oui, à 16 h. <@UTECH> l'a lavée")
    [sms] = twilio.messages
    assert sms["To"] == CUSTOMER and sms["Body"] == "Oui, à 16 h. Luc Martin l'a lavée\n- Garage Tremblay"
    out = SmsMessage.get(SmsMessage.direction == "out")
    assert (out.status, out.provider_sid, out.author_user_id, out.encoding) == ("sent", sms["sid"], "UADVISOR", "GSM-7")
    note = next(m for m in thread_of(fake_slack, ro) if m["ts"] == out.note_ts)
    assert "GSM-7" in note["text"] and "1 segment" in note["text"]
    assert twilio.status_callback(app.url, PUBLIC_URL, sms["sid"], "delivered").status_code == 204
    app.settle()
    note = next(m for m in fake_slack.messages[ro.channel_id] if m["ts"] == out.note_ts)
    assert "livré" in note["text"] or "delivered" in note["text"]


@pytest.mark.parametrize("where", ["channel", "another thread", "internal"])
def test_what_is_said_outside_the_thread_or_marked_internal_stays_in_slack(app, client, fake_slack, twilio, ro, where):
    text_in(app, twilio, "Hi")
    ts = f"{time.time():.6f}"
    event = {"type": "message", "channel": ro.channel_id, "user": "UADVISOR", "text": "the rotors are gone", "ts": ts}
    if where == "another thread":
        event["thread_ts"] = "1700000000.000100"
    if where == "internal":
        event.update(thread_ts=RepairOrder.get_by_id(ro.id).conversation_ts, text="(interne) the rotors are gone")
    client.event(event)
    app.settle()
    assert twilio.messages == [] and SmsMessage.select().where(SmsMessage.direction == "out").count() == 0


def test_a_reply_by_someone_not_allowed_is_not_sent_and_they_are_told(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "Hi")
    StaffUser.create(slack_user_id="UTECH", name="luc", locale="en-US", can_message_customers=False)
    reply(app, client, ro, "It's done", user="UTECH")
    assert twilio.messages == [] and any("not allowed to text customers" in t for t in ephemerals(fake_slack, "UTECH"))


def test_a_reply_over_1600_characters_is_refused_with_a_clear_note(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "Hi")
    reply(app, client, ro, "x" * 1590)
    assert twilio.messages == []
    [told] = ephemerals(fake_slack, "UADVISOR")
    assert "1600" in told and re.search(r"\b16\d\d\b", told)


def test_twilio_down_fails_the_reply_offers_retry_and_retry_sends_once(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "Hi")
    twilio.go_down()
    reply(app, client, ro, "Ready at 4")
    out = wait_until(
        lambda: SmsMessage.get_or_none((SmsMessage.direction == "out") & (SmsMessage.status == "failed")),
        timeout=60,
        message="the reply failed",
    )
    app.settle()
    note = next(m for m in fake_slack.messages[ro.channel_id] if m["ts"] == out.note_ts)
    [button] = [e for b in note["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == ids.CONVERSATION_RETRY and any("⚠️" in t for t in ephemerals(fake_slack, "UADVISOR"))
    twilio.come_back()
    for _ in range(2):  # pressed twice
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
                        "value": SmsRef(out.id).encode(),
                    }
                ],
            }
        )
    app.settle()
    assert len(twilio.messages) == 1 and SmsMessage.get_by_id(out.id).status == "sent"


def test_an_edited_or_deleted_reply_is_not_sent_again_and_the_author_is_told(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "Hi")
    ts = reply(app, client, ro, "Ready at 4")
    thread = RepairOrder.get_by_id(ro.id).conversation_ts
    client.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": ro.channel_id,
            "hidden": True,
            "ts": f"{time.time():.6f}",
            "message": {"type": "message", "user": "UADVISOR", "text": "Ready at 5", "ts": ts, "thread_ts": thread},
            "previous_message": {"type": "message", "user": "UADVISOR", "text": "Ready at 4", "ts": ts, "thread_ts": thread},
        }
    )
    client.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": ro.channel_id,
            "hidden": True,
            "ts": f"{time.time():.6f}",
            "deleted_ts": ts,
            "previous_message": {"type": "message", "user": "UADVISOR", "text": "Ready at 4", "ts": ts, "thread_ts": thread},
        }
    )
    app.settle()
    assert len(twilio.messages) == 1
    told = ephemerals(fake_slack, "UADVISOR")
    assert any("first wrote" in t or "telle que" in t for t in told) and any(
        "take it back" in t or "retire pas" in t for t in told
    )


def test_a_files_send_to_an_opted_out_customer_is_refused_before_twilio(app, client, fake_slack, twilio, ro):
    from tests.support.files import send_files, stored_file

    text_in(app, twilio, "ARRET")
    answer = send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    app.settle()
    # Not by text: the customer has an email, so the link goes there (Files sends never text an opted-out number).
    assert twilio.messages == [] and CustomerSend.get().method == "email"
    assert "courriel" in str(answer["view"]["blocks"])


def test_a_files_send_to_an_opted_out_customer_without_email_is_refused(app, client, fake_slack, twilio):
    from tests.support.files import crafted, stored_file, submit

    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER, email=None)
    text_in(app, twilio, "STOP")
    photo = stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    view = open_files(client, fake_slack, ro)
    assert "submit" not in view and "STOP" in str(view["blocks"]), "the modal says why it cannot send"
    answer = submit(client, crafted(view, [photo]))  # a Send crafted anyway
    app.settle()
    assert twilio.messages == [] and CustomerSend.select().count() == 0
    assert answer["response_action"] == "errors" and "STOP" in str(answer["errors"])


# -- unmatched numbers ------------------------------------------------------------------------------


@pytest.fixture
def admin_app(fake_slack, sqlite_url, tmp_path, twilio):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, None, ADMIN_SLACK_USER_IDS="UADVISOR"))
    yield running
    running.stop()


def open_home(app, client, fake_slack, user="UADVISOR") -> dict:
    before = len(fake_slack.calls_to("views.publish"))
    client.event({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"})
    app.settle()
    return fake_slack.wait_for("views.publish", count=before + 1)[-1].args["view"]


def test_a_text_from_an_unknown_number_waits_in_admins_home_and_can_be_attached(admin_app, fake_slack, twilio):
    client = SlackTestClient(admin_app.url, fake_slack)
    ro = make_ro(fake_slack, owner="UADVISOR", mobile_phone="+15145550000")
    twilio.inbound(admin_app.url, PUBLIC_URL, "+14385550199", "C'est Julie, la femme de Jean")
    twilio.inbound(admin_app.url, PUBLIC_URL, "+14385550199", "Il est là à 17 h")
    admin_app.settle()
    assert SmsMessage.select().where(SmsMessage.status == "unmatched").count() == 2 and not fake_slack.calls_to(
        "chat.postMessage"
    )
    home = open_home(admin_app, client, fake_slack)
    assert "Textos sans bon de travail" in str(home["blocks"]) and "Il est là à 17 h" in str(home["blocks"])
    assert str(home["blocks"]).index("Il est là") < str(home["blocks"]).index("C'est Julie"), "newest first"
    staff_home = open_home(admin_app, client, fake_slack, user="UTECH")
    assert "Unmatched" not in str(staff_home["blocks"]), "only admins see them"
    first = SmsMessage.select().order_by(SmsMessage.id).first()
    client.action(
        {
            "type": "view_submission",
            "user": {"id": "UADVISOR"},
            "team": {"id": "T0001"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": ids.CONVERSATION_ATTACH_MODAL,
                "private_metadata": SmsRef(first.id).encode(),
                "state": {"values": {"attach_ro": {"value": {"type": "plain_text_input", "value": ro.ro_number}}}},
            },
        }
    )
    admin_app.settle()
    assert {m.status for m in SmsMessage.select()} == {"posted"} and {m.ro_id for m in SmsMessage.select()} == {ro.id}
    posted = "".join(texts_in_thread(fake_slack, ro))
    assert posted.index("C'est Julie") < posted.index("Il est là")


def test_attaching_to_an_ro_that_does_not_exist_is_said_in_the_form(admin_app, fake_slack, twilio):
    client = SlackTestClient(admin_app.url, fake_slack)
    twilio.inbound(admin_app.url, PUBLIC_URL, "+14385550199", "Hello?")
    admin_app.settle()
    message = SmsMessage.get()
    response = client.action(
        {
            "type": "view_submission",
            "user": {"id": "UADVISOR"},
            "team": {"id": "T0001"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": ids.CONVERSATION_ATTACH_MODAL,
                "private_metadata": SmsRef(message.id).encode(),
                "state": {"values": {"attach_ro": {"value": {"type": "plain_text_input", "value": "99999"}}}},
            },
        }
    )
    assert response.json()["response_action"] == "errors" and "99999" in str(response.json()["errors"])
    assert SmsMessage.get().status == "unmatched"


def test_a_dismissed_text_leaves_the_list_and_a_non_admin_cannot_dismiss(admin_app, fake_slack, twilio):
    client = SlackTestClient(admin_app.url, fake_slack)
    twilio.inbound(admin_app.url, PUBLIC_URL, "+14385550199", "Wrong number")
    admin_app.settle()
    message = SmsMessage.get()

    def press(user):
        client.action(
            {
                "type": "block_actions",
                "user": {"id": user},
                "team": {"id": "T0001"},
                "view": {"id": "VH", "type": "home", "private_metadata": HomeState().encode()},
                "actions": [
                    {
                        "type": "button",
                        "action_id": ids.CONVERSATION_DISMISS,
                        "block_id": "b",
                        "value": SmsRef(message.id).encode(),
                    }
                ],
            }
        )
        admin_app.settle()

    press("UTECH")
    assert SmsMessage.get().status == "unmatched"
    press("UADVISOR")
    assert SmsMessage.get().status == "dismissed"
    assert "Wrong number" not in str(fake_slack.calls_to("views.publish")[-1].args["view"]["blocks"])


# -- notifications and customer information ----------------------------------------------------------


def test_who_asked_is_told_at_once_of_a_customer_text(app, fake_slack, twilio, ro):
    from people.notification_rules import set_preferences
    from tests.support.people import dms_to

    app.services.directory.get("UTECH")
    set_preferences("UTECH", messages=False, files=False, customer=True)
    text_in(app, twilio, "Where is my car?")
    [dm] = dms_to(fake_slack, "UTECH")
    assert "Where is my car?" in dm["text"] and ro.ro_number in dm["text"] and dms_to(fake_slack, "UADVISOR") == []


def test_customer_info_shows_consent_language_and_the_conversation(app, client, fake_slack, twilio, ro):
    from blocks.codec import RoRef

    text_in(app, twilio, "STOP")
    client.action(
        {
            "type": "block_actions",
            "user": {"id": "UTECH"},
            "team": {"id": "T0001"},
            "channel": {"id": ro.channel_id},
            "container": {"type": "message", "channel_id": ro.channel_id},
            "actions": [{"type": "button", "action_id": ids.RO_INFO, "block_id": "b", "value": RoRef(ro.id).encode()}],
        }
    )
    view = fake_slack.wait_for("views.open")[-1].args["view"]
    text = str(view["blocks"])
    assert "refused" in text and "Français" in text and "open the conversation" in text
    assert SmsOptOut.get().source == "keyword"


# -- texts never lost (posting keeps failing, re-attach, photos in the thread) ------------------------


def attach_by_form(client, message_id: int, ro_number: str, user: str = "UADVISOR"):
    return client.action(
        {
            "type": "view_submission",
            "user": {"id": user},
            "team": {"id": "T0001"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": ids.CONVERSATION_ATTACH_MODAL,
                "private_metadata": SmsRef(message_id).encode(),
                "state": {"values": {"attach_ro": {"value": {"type": "plain_text_input", "value": ro_number}}}},
            },
        }
    )


def run_timed_job(app, name: str) -> None:
    import bot

    jobs = {job.name: job for job in bot.feature_jobs(app.services)}
    jobs[name].func()
    app.settle()


def test_a_text_whose_post_keeps_failing_keeps_its_ro_is_listed_and_is_posted_later(admin_app, fake_slack, twilio):
    client = SlackTestClient(admin_app.url, fake_slack)
    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)
    fake_slack.fail_with("conversations.history", "internal_error", times=6)  # every attempt of the task fails
    twilio.inbound(admin_app.url, PUBLIC_URL, CUSTOMER, "Is my car ready? Slack is down")
    admin_app.settle()
    message = SmsMessage.get()
    assert (message.status, message.ro_id, message.slack_ts) == ("received", ro.id, None), "still the RO's, not unmatched"
    home = str(open_home(admin_app, client, fake_slack)["blocks"])
    assert "Slack is down" in home and ro.ro_number in home, "admins see it, not yet posted, with its RO"
    run_timed_job(admin_app, "customer-texts-repost")
    message = SmsMessage.get()
    assert (message.status, message.ro_id, message.error) == ("posted", ro.id, None)
    assert sum("Slack is down" in t for t in texts_in_thread(fake_slack, ro)) == 1
    assert "Slack is down" not in str(open_home(admin_app, client, fake_slack)["blocks"])


def test_a_text_already_posted_is_never_sent_back_to_unmatched(admin_app, fake_slack, twilio):
    """The post is made but what follows (bringing in its photo) keeps failing: the text
    stays in its RO's thread; giving up undoes nothing."""
    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)
    url = twilio.add_media(jpeg_bytes(), "image/jpeg")
    fake_slack.fail_with("files.getUploadURLExternal", "internal_error", times=6)
    twilio.inbound(admin_app.url, PUBLIC_URL, CUSTOMER, "Photo of the dent", media=[(url, "image/jpeg")])
    admin_app.settle()
    message = SmsMessage.get()
    assert message.ro_id == ro.id and message.slack_ts and message.status in ("received", "posted")
    assert sum("Photo of the dent" in t for t in texts_in_thread(fake_slack, ro)) == 1


def test_reattaching_a_text_whose_post_failed_posts_it_once(admin_app, fake_slack, twilio):
    client = SlackTestClient(admin_app.url, fake_slack)
    ro = make_ro(fake_slack, owner="UADVISOR", mobile_phone="+15145550000")
    twilio.inbound(admin_app.url, PUBLIC_URL, "+14385550199", "C'est Julie, la femme de Jean")
    admin_app.settle()
    message = SmsMessage.get()
    fake_slack.fail_with("conversations.history", "internal_error", times=6)
    attach_by_form(client, message.id, ro.ro_number)
    admin_app.settle()
    message = SmsMessage.get()
    assert (message.status, message.ro_id) == ("received", ro.id)
    home = str(open_home(admin_app, client, fake_slack)["blocks"])
    assert "C'est Julie" in home, "listed until it is really posted"
    attach_by_form(client, message.id, ro.ro_number)
    admin_app.settle()
    assert SmsMessage.get().status == "posted"
    assert sum("C'est Julie" in t for t in texts_in_thread(fake_slack, ro)) == 1
    assert "C'est Julie" not in str(open_home(admin_app, client, fake_slack)["blocks"])


def test_a_photo_posted_in_the_thread_is_not_texted_and_its_author_is_told(app, client, fake_slack, twilio, ro):
    from tests.support.files import slack_file

    text_in(app, twilio, "Can I see the part?")
    file_id = slack_file(fake_slack, ro.channel_id, "part.jpg", jpeg_bytes(), "image/jpeg", user="UADVISOR")
    reply(app, client, ro, "Voici la pièce usée", subtype="file_share", files=[{"id": file_id}], upload=True)
    assert twilio.messages == [] and SmsMessage.select().where(SmsMessage.direction == "out").count() == 0
    told = ephemerals(fake_slack, "UADVISOR")
    assert any("photo" in t.lower() for t in told), told


def test_an_internal_photo_in_the_thread_stays_in_slack_without_a_note(app, client, fake_slack, twilio, ro):
    from tests.support.files import slack_file

    text_in(app, twilio, "Hi")
    file_id = slack_file(fake_slack, ro.channel_id, "part.jpg", jpeg_bytes(), "image/jpeg", user="UADVISOR")
    reply(app, client, ro, "(interne) the old part", subtype="file_share", files=[{"id": file_id}], upload=True)
    assert twilio.messages == [] and not any("photo" in t.lower() for t in ephemerals(fake_slack, "UADVISOR"))


# -- what customers and staff read ---------------------------------------------------------------------


def test_a_plain_reply_with_the_default_signature_is_one_gsm7_segment(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "Is it ready?")
    reply(app, client, ro, "Your car is ready, you can pick it up at 4 pm.")
    [sms] = twilio.messages
    assert sms["Body"] == "Your car is ready, you can pick it up at 4 pm.\n- Garage Tremblay"
    out = SmsMessage.get(SmsMessage.direction == "out")
    assert (out.encoding, out.segments) == ("GSM-7", 1)


def test_slack_markup_in_a_reply_reaches_the_customer_as_plain_words(app, client, fake_slack, twilio, ro):
    text_in(app, twilio, "Who do I talk to?")
    reply(
        app,
        client,
        ro,
        "<@UTECH> will call you. Write to <mailto:service@garage.example|service@garage.example> or "
        "<tel:+15145550100|514-555-0100>, see <https://garage.example/rdv|our page> &amp; <https://garage.example> "
        "&lt;3 <!here> <#C0SERVICE|service> <!subteam^S0TECHS|@techs>",
    )
    [sms] = twilio.messages
    assert sms["Body"] == (
        "Luc Martin will call you. Write to service@garage.example or 514-555-0100, see our page "
        "(https://garage.example/rdv) & https://garage.example <3 @here #service @techs\n- Garage Tremblay"
    )


def test_a_customer_text_is_shown_verbatim_so_its_links_are_not_made_clickable(admin_app, fake_slack, twilio):
    client = SlackTestClient(admin_app.url, fake_slack)
    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER)
    twilio.inbound(admin_app.url, PUBLIC_URL, CUSTOMER, "pay here https://evil.example/pay now")
    admin_app.settle()
    [section] = [b for m in thread_of(fake_slack, ro) for b in m.get("blocks") or [] if b.get("type") == "section"]
    assert section["text"]["verbatim"] is True and "https://evil.example/pay now" in section["text"]["text"]
    assert "<https://evil.example" not in section["text"]["text"]
    twilio.inbound(admin_app.url, PUBLIC_URL, "+14385550199", "unknown https://evil.example/x")
    admin_app.settle()
    home = open_home(admin_app, client, fake_slack)
    [listed] = [b for b in home["blocks"] if b.get("block_id", "").startswith("unmatched_") and "evil" in str(b)]
    assert listed["text"]["verbatim"] is True and "<https://" not in listed["text"]["text"]
