"""The metrics' record of what happened (storage.models.MetricEvent), written where each event is
already handled: files and messages from signed Slack events, Files sends and conversation replies
through the fake Twilio, customers' texts through its webhook, page views over HTTP. Each event is
recorded once, whatever is retried or redelivered, and stays when Slack deletes what it was."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from blocks import ids
from customers import send_rules as sends
from customers.customer_page import is_link_preview
from storage import metric_events
from storage.models import (
    Activity,
    CustomerSend,
    CustomerSendFile,
    MergeJob,
    MetricEvent,
    RoFile,
    SmsMessage,
    TaskRecord,
    utcnow,
)
from tests.support.factories import make_ro
from tests.support.files import (
    PUBLIC_URL,
    copied_row,
    delivered_send,
    file_message_event,
    file_shared_event,
    files_env,
    jpeg_bytes,
    open_files,
    page_path,
    press_note_button,
    send_files,
    share,
    slack_file,
    stored_file,
    video_bytes,
    wait_send,
    with_ticks,
)
from tests.support.harness import start_app, wait_until

CUSTOMER = "+15145550142"
BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
# What iMessage sends when it draws a link's preview, before anyone taps it.
IMESSAGE_PREVIEW = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 "
    "Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"
)
SHARED = 1_790_000_000  # a file's Slack time (2026-09-21 UTC)


@pytest.fixture
def app(fake_slack, database_url, tmp_path, twilio):
    """The app wired to the fake Slack and the fake Twilio, on each database; UADVISOR is an admin."""
    running = start_app(files_env(fake_slack, database_url, tmp_path, twilio, None, ADMIN_SLACK_USER_IDS="UADVISOR"))
    yield running
    running.stop()


def events(kind: str | None = None) -> list[tuple]:
    query = MetricEvent.select().order_by(MetricEvent.id)
    if kind:
        query = query.where(MetricEvent.kind == kind)
    return [(e.kind, e.user_id, e.ro_id, e.amount, e.ref) for e in query]


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def _ro(fake_slack, **fields):
    return make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), mobile_phone=CUSTOMER, **fields)


# -- pictures and videos ----------------------------------------------------------------------------


def test_staff_pictures_and_videos_are_recorded_once_and_outlive_their_deletion_in_slack(app, client, fake_slack, tmp_path):
    ro = _ro(fake_slack)
    photo = slack_file(fake_slack, ro.channel_id, "IMG_0001.jpg", jpeg_bytes(), "image/jpeg", user="UTECH", created=SHARED)
    # Slack mobile: the message and file_shared, then a retry of file_shared and a redelivery.
    client.event(file_message_event([photo], ro.channel_id, user="UTECH"))
    client.event(file_shared_event(photo, ro.channel_id, user="UTECH"), event_id="EvPHOTO")
    client.event(file_shared_event(photo, ro.channel_id, user="UTECH"), event_id="EvPHOTO", retry_num=1)
    clip = share(client, fake_slack, ro, "walk.mp4", video_bytes(tmp_path), "video/mp4", user="UADVISOR", created=SHARED + 60)
    estimate = share(client, fake_slack, ro, "estimate.pdf", b"%PDF-1.4 estimate", "application/pdf", user="UTECH")
    assert copied_row(photo).copy_status == "stored" and estimate.kind == "document"
    app.settle()
    assert events() == [
        ("picture", "UTECH", ro.id, 1, f"{ro.id}:{photo}"),
        ("video", "UADVISOR", ro.id, 1, f"{ro.id}:{clip.slack_file_id}"),
    ]
    assert [e.at for e in MetricEvent.select().order_by(MetricEvent.id)] == [utc(SHARED), utc(SHARED + 60)]

    # Deleted in Slack: the file and the message that shared it go; what happened stays counted.
    share_ts = RoFile.get(RoFile.slack_file_id == photo).share_ts
    del fake_slack.files[photo]
    client.event({"type": "file_deleted", "file_id": photo, "event_ts": "1790000100.000100"})
    client.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": ro.channel_id,
            "ts": "1790000100.000200",
            "deleted_ts": share_ts,
            "previous_message": {"type": "message", "user": "UTECH", "ts": share_ts, "files": [{"id": photo}]},
        }
    )
    app.settle()
    assert [e[0] for e in events()] == ["picture", "video"]


def test_our_own_uploads_and_a_customers_mms_are_no_ones_internal_files(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    mine = share(client, fake_slack, ro, "IMG_0002.jpg", jpeg_bytes(color=(1, 2, 3)), "image/jpeg", user="UTECH")
    # A customer's MMS photo: the app stores it and uploads it into the thread; Slack then tells
    # the app about that upload like any other (file_shared by the bot).
    url = twilio.add_media(jpeg_bytes(color=(9, 9, 9)), "image/jpeg")
    twilio.inbound(app.url, PUBLIC_URL, CUSTOMER, "Voici la bosse", media=[(url, "image/jpeg")])
    app.settle()
    [mms] = RoFile.select().where(RoFile.origin == "customer")
    client.event(file_shared_event(mms.slack_file_id, ro.channel_id, user=fake_slack.bot_user_id))
    # Any other upload of ours.
    ours = slack_file(
        fake_slack, ro.channel_id, "card.png", jpeg_bytes(color=(5, 5, 5)), "image/png", user=fake_slack.bot_user_id
    )
    client.event(file_shared_event(ours, ro.channel_id, user=fake_slack.bot_user_id))
    app.settle()
    assert events("picture") == [("picture", "UTECH", ro.id, 1, f"{ro.id}:{mine.slack_file_id}")]
    assert events("video") == []


def _merge(client, fake_slack, ro, clips) -> MergeJob:
    view = with_ticks(open_files(client, fake_slack, ro), [c.id for c in clips])
    response = client.action(
        {
            "type": "block_actions",
            "user": {"id": "UADVISOR"},
            "team": {"id": "T0001"},
            "api_app_id": "A0001",
            "view": view,
            "container": {"type": "view", "view_id": view["id"]},
            "actions": [{"type": "button", "action_id": ids.MERGE_START, "block_id": "files_merge", "value": "merge"}],
        }
    )
    assert response.status_code == 200, response.text
    job = wait_until(lambda: MergeJob.select().first(), message="the merge job")
    wait_until(
        lambda: (task := TaskRecord.get_or_none(TaskRecord.key == f"merge:{job.id}")) and task.status in ("done", "failed"),
        timeout=90,
        message="the merge task",
    )
    return MergeJob.get_by_id(job.id)


def test_a_merged_video_is_not_an_internal_video(app, client, fake_slack, tmp_path):
    ro = _ro(fake_slack)
    clips = [
        share(client, fake_slack, ro, f"IMG_{n}.mp4", video_bytes(tmp_path, seconds=1.0 + n / 10), "video/mp4", user="UTECH")
        for n in range(2)
    ]
    job = _merge(client, fake_slack, ro, clips)
    assert job.status == "done", job.error
    [upload] = fake_slack.uploads
    client.event(file_shared_event(upload["id"], ro.channel_id, user=fake_slack.bot_user_id))  # Slack tells of our upload
    app.settle()
    assert RoFile.get_by_id(job.result_id).origin == "merged"
    assert events("video") == [("video", "UTECH", ro.id, 1, f"{ro.id}:{c.slack_file_id}") for c in clips]


# -- messages ------------------------------------------------------------------------------------------


def _message(channel: str, ts: str, user: str = "UTECH", **fields) -> dict:
    return {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": "freins faits",
        "ts": ts,
        "channel_type": "channel",
        **fields,
    }


def test_human_messages_are_recorded_once_at_their_time_and_outlive_their_deletion(app, client, fake_slack):
    ro = _ro(fake_slack)
    first, second = "1790000000.000100", "1790000030.000200"
    client.event(_message(ro.channel_id, first), event_id="EvMSG1")
    client.event(_message(ro.channel_id, first), event_id="EvMSG1", retry_num=1)  # Slack's retry
    client.event(_message(ro.channel_id, first))  # the same message delivered again
    client.event(_message(ro.channel_id, second, user="UADVISOR", thread_ts=first))
    client.event(_message(ro.channel_id, "1790000040.000300", subtype="channel_join"))
    client.event(_message(ro.channel_id, "1790000050.000400", user="UOTHER", bot_id="B0OTHER", subtype="bot_message"))
    general = fake_slack.add_channel("general", members=(fake_slack.bot_user_id, "UTECH"))
    client.event(_message(general["id"], "1790000060.000500"))
    app.settle()
    assert events() == [
        ("message", "UTECH", ro.id, 1, f"{ro.id}:{first}"),
        ("message", "UADVISOR", ro.id, 1, f"{ro.id}:{second}"),
    ]
    assert [e.at for e in MetricEvent.select().order_by(MetricEvent.id)] == [utc(1_790_000_000.0001), utc(1_790_000_030.0002)]

    client.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": ro.channel_id,
            "ts": "1790000100.000600",
            "deleted_ts": first,
            "previous_message": {"type": "message", "user": "UTECH", "text": "freins faits", "ts": first},
        }
    )
    app.settle()
    assert len(events("message")) == 2


# -- Files sends ---------------------------------------------------------------------------------------


def test_a_files_send_is_recorded_once_when_it_goes_out_with_its_files(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    files = [stored_file(app, ro, jpeg_bytes(color=(n, 0, 0)), f"IMG_{n}.jpg", "image/jpeg") for n in range(3)]
    twilio.go_down()
    send_files(client, fake_slack, ro, files[:2])
    failed = wait_send("failed")
    app.settle()
    assert events("send") == [], "a send that did not go out is not counted"

    twilio.come_back()
    press_note_button(client, ro, ids.SEND_RETRY, failed.id)
    sent = wait_send("sent")
    app.settle()
    twilio.status_callback(app.url, PUBLIC_URL, sent.provider_id, "delivered")
    app.settle()
    assert CustomerSend.get_by_id(sent.id).status == "delivered"
    assert events("send") == [("send", "UADVISOR", ro.id, 2, str(sent.id))]


# -- the conversation ------------------------------------------------------------------------------------


def _reply(app, client, ro, text: str, ts: str, user: str = "UADVISOR") -> None:
    thread = wait_until(lambda: type(ro).get_by_id(ro.id).conversation_ts, message="the conversation thread")
    client.event({**_message(ro.channel_id, ts, user=user, thread_ts=thread), "text": text})
    app.settle()


def test_customer_texts_and_replies_that_went_out_are_recorded_once(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    sid = "SM" + "4" * 32
    twilio.inbound(app.url, PUBLIC_URL, CUSTOMER, "Est-ce que mon auto est prête?", message_sid=sid)
    twilio.inbound(app.url, PUBLIC_URL, CUSTOMER, "Est-ce que mon auto est prête?", message_sid=sid)  # redelivered
    app.settle()
    text = SmsMessage.get(SmsMessage.direction == "in")
    assert events("customer_text") == [("customer_text", None, ro.id, 1, str(text.id))]
    assert MetricEvent.get(MetricEvent.kind == "customer_text").at == text.created_at

    _reply(app, client, ro, "Oui, elle est prête", f"{utcnow().timestamp():.6f}")
    reply = wait_until(lambda: SmsMessage.get_or_none((SmsMessage.direction == "out") & (SmsMessage.status == "sent")))
    twilio.status_callback(app.url, PUBLIC_URL, reply.provider_sid, "delivered")
    twilio.status_callback(app.url, PUBLIC_URL, reply.provider_sid, "delivered")
    app.settle()
    _reply(app, client, ro, "(interne) garde ça pour nous", f"{utcnow().timestamp() + 1:.6f}")
    assert SmsMessage.get_by_id(reply.id).status == "delivered"
    assert events("reply") == [("reply", "UADVISOR", ro.id, 1, str(reply.id))]
    assert MetricEvent.get(MetricEvent.kind == "reply").at == reply.created_at


def test_a_reply_that_failed_is_not_a_text_to_the_customer(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    twilio.inbound(app.url, PUBLIC_URL, CUSTOMER, "Allô?")
    app.settle()
    twilio.fail_with(21211, message="invalid number")
    _reply(app, client, ro, "On vous rappelle", f"{utcnow().timestamp():.6f}")
    assert SmsMessage.get(SmsMessage.direction == "out").status == "failed"
    assert events("reply") == [] and len(events("customer_text")) == 1


def test_a_text_waiting_for_an_admin_counts_once_attached_to_its_ro(app, client, fake_slack, twilio):
    ro = _ro(fake_slack)
    twilio.inbound(app.url, PUBLIC_URL, "+14385550199", "C'est Julie, la femme de Jean")
    app.settle()
    waiting = SmsMessage.get()
    assert waiting.status == "unmatched" and events("customer_text") == []
    client.action(
        {
            "type": "view_submission",
            "user": {"id": "UADVISOR"},
            "team": {"id": "T0001"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": ids.CONVERSATION_ATTACH_MODAL,
                "private_metadata": json.loads(json.dumps(_sms_ref(waiting.id))),
                "state": {"values": {"attach_ro": {"value": {"type": "plain_text_input", "value": ro.ro_number}}}},
            },
        }
    )
    app.settle()
    assert SmsMessage.get_by_id(waiting.id).status == "posted"
    assert events("customer_text") == [("customer_text", None, ro.id, 1, str(waiting.id))]


def _sms_ref(message_id: int) -> str:
    from blocks.codec import SmsRef

    return SmsRef(message_id).encode()


# -- customer page views ---------------------------------------------------------------------------------


def test_a_view_is_the_customer_opening_the_page_not_a_preview_nor_a_head(app, fake_slack):
    ro = _ro(fake_slack)
    send = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(), "IMG_0001.jpg", "image/jpeg")])
    url = app.url + page_path(app, send)
    for agent in (IMESSAGE_PREVIEW, "WhatsApp/2.23.20.0 A", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"):
        assert requests.get(url, headers={"User-Agent": agent}, timeout=10).status_code == 200
    assert requests.head(url, headers={"User-Agent": BROWSER}, timeout=10).status_code == 200
    assert events("view") == []

    assert requests.get(url, headers={"User-Agent": BROWSER}, timeout=10).status_code == 200
    assert requests.get(url, headers={"User-Agent": BROWSER}, timeout=10).status_code == 200  # opened again
    assert events("view") == [("view", "UADVISOR", ro.id, 1, str(send.id))]


def test_a_revoked_or_expired_link_opened_is_not_a_view(app, fake_slack):
    ro = _ro(fake_slack)
    revoked = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    expired = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(color=(3, 3, 3)), "b.jpg", "image/jpeg")])
    opened = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(color=(4, 4, 4)), "c.jpg", "image/jpeg")])
    sends.revoke(revoked.id, "UADVISOR", app.settings)
    CustomerSend.update(expires_at=utcnow() - timedelta(minutes=1)).where(CustomerSend.id == expired.id).execute()
    for send, status in ((revoked, 410), (expired, 410), (opened, 200)):
        response = requests.get(app.url + page_path(app, send), headers={"User-Agent": BROWSER}, timeout=10)
        assert response.status_code == status
    assert events("view") == [("view", "UADVISOR", ro.id, 1, str(opened.id))]


@pytest.mark.parametrize(
    "agent",
    [
        IMESSAGE_PREVIEW,
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "WhatsApp/2.23.20.0 A",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; Applebot/0.1; +http://www.apple.com/go/applebot)",
        "SomeLinkPreview/1.0",
        "bot",
        "",
        None,
    ],
)
def test_link_preview_fetchers_are_recognised(agent):
    assert is_link_preview(agent)


@pytest.mark.parametrize(
    "agent",
    [
        BROWSER,
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Linux; Android 13; SM-S911W) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0 Mobile Safari/537.36",
    ],
)
def test_peoples_browsers_are_not_previews(agent):
    assert not is_link_preview(agent)


# -- upgrading: the record filled from what earlier versions kept ------------------------------------------


# What earlier versions kept, written as they wrote it (no MetricEvent).
_n = iter(range(1, 10**6))


def _old_file(ro, user: str, when: datetime, kind: str = "picture", origin: str = "staff") -> RoFile:
    n = next(_n)
    return RoFile.create(
        ro=ro,
        slack_file_id=f"FOLD{n:05d}",
        uploader_user_id=user,
        origin=origin,
        origin_ref=f"old-{n}" if origin != "staff" else None,
        kind=kind,
        name=f"old-{n}",
        shared_at=when,
    )


def _old_send(ro, user: str, when: datetime, files: list[RoFile], status: str) -> CustomerSend:
    send = CustomerSend.create(
        ro=ro,
        sent_by=user,
        method="sms",
        destination=CUSTOMER,
        token_id=f"old-token-{next(_n)}",
        expires_at=when + timedelta(days=30),
        status=status,
        status_at=when,
        created_at=when,
    )
    for f in files:
        CustomerSendFile.create(send=send, file=f)
    return send


def _old_text(ro, direction: str, status: str, when: datetime, author: str | None = None) -> SmsMessage:
    return SmsMessage.create(
        direction=direction, ro=ro, phone=CUSTOMER, body="…", author_user_id=author, status=status, created_at=when
    )


def test_backfill_records_each_earlier_event_once(db, fake_slack):
    ro = make_ro(fake_slack, owner="UADVISOR", mobile_phone=CUSTOMER)
    t = datetime(2026, 11, 3, 14, 0)
    photo = _old_file(ro, "UTECH", t)
    clip = _old_file(ro, "UADVISOR", t + timedelta(minutes=5), kind="video")
    _old_file(ro, "UTECH", t, kind="document")
    _old_file(ro, "customer", t, origin="customer")
    _old_file(ro, "UADVISOR", t, kind="video", origin="merged")
    # Received two minutes after it was posted (a redelivered event): its time is its ts, 15:00.
    said = Activity.create(ro=ro, user_id="UTECH", kind="message", ts="1793718000.000100", at=t + timedelta(hours=1, minutes=2))
    Activity.create(ro=ro, user_id="customer", kind="customer_message", ts="SM1", at=t)
    Activity.create(ro=ro, user_id="UTECH", kind="file", ts="1793718001.000100", at=t)
    sent = _old_send(ro, "UADVISOR", t + timedelta(hours=2), [photo, clip], "delivered")
    _old_send(ro, "UADVISOR", t, [photo], "failed")
    asked = _old_text(ro, "in", "posted", t + timedelta(hours=3))
    answered = _old_text(ro, "out", "sent", t + timedelta(hours=3, minutes=10), author="UADVISOR")
    _old_text(ro, "out", "failed", t, author="UADVISOR")
    _old_text(None, "in", "unmatched", t)

    assert metric_events.backfill() == 6
    assert sorted(events()) == sorted(
        [
            ("picture", "UTECH", ro.id, 1, f"{ro.id}:{photo.slack_file_id}"),
            ("video", "UADVISOR", ro.id, 1, f"{ro.id}:{clip.slack_file_id}"),
            ("message", "UTECH", ro.id, 1, f"{ro.id}:{said.ts}"),
            ("send", "UADVISOR", ro.id, 2, str(sent.id)),
            ("customer_text", None, ro.id, 1, str(asked.id)),
            ("reply", "UADVISOR", ro.id, 1, str(answered.id)),
        ]
    )
    at = {e.kind: e.at for e in MetricEvent.select()}
    assert (at["picture"], at["send"], at["customer_text"], at["reply"]) == (
        t,
        t + timedelta(hours=2),
        t + timedelta(hours=3),
        t + timedelta(hours=3, minutes=10),
    )
    assert at["message"] == utc(1_793_718_000.0001), "a message is dated by its Slack ts, as the live path dates it"
    assert metric_events.backfill() == 0 and MetricEvent.select().count() == 6


def test_backfill_after_live_events_adds_nothing(app, client, fake_slack, twilio):
    """What the live paths record has the refs backfill would give it: an upgrade run again over
    a database that already has its events adds none."""
    ro = _ro(fake_slack)
    photo = share(client, fake_slack, ro, "IMG_0009.jpg", jpeg_bytes(color=(7, 7, 7)), "image/jpeg", user="UTECH")
    client.event(_message(ro.channel_id, "1790000000.000900"))
    twilio.inbound(app.url, PUBLIC_URL, CUSTOMER, "Merci!")
    send_files(client, fake_slack, ro, [photo])
    wait_send("sent")
    app.settle()
    _reply(app, client, ro, "Bonne journée", f"{utcnow().timestamp():.6f}")
    wait_until(lambda: SmsMessage.get_or_none((SmsMessage.direction == "out") & (SmsMessage.status == "sent")))
    app.settle()
    recorded = sorted(events())
    assert {e[0] for e in recorded} == {"picture", "message", "customer_text", "send", "reply"}
    assert metric_events.backfill() == 0 and sorted(events()) == recorded
