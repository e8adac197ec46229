"""Metrics end to end (issue 20): one running app (the fake Slack, the fake Twilio), known activity
made only through the app's real paths (signed Slack events with files the fake Slack serves, the
Files modal's Send taken by the fake Twilio, the customer page over HTTP, a customer's text
through Twilio's signed webhook and a reply in the conversation thread), then an admin's signed
`/ro metrics <from> <to>`: the workbook uploaded into her DM (files.getUploadURLExternal +
files.completeUploadExternal) is read back with openpyxl and every count compared to the numbers
the activity must give. Files and messages are dated by Slack (file times, message ts) around the
night of 1 November 2026 in Toronto (EDT, UTC-4, until 06:00 UTC; EST, UTC-5, after): 23:50 and
00:10 on either side of both midnights, and 01:30 twice. Sends, views, texts and replies are
dated when they happen (now): their day is today's. A non-admin asking is refused, and nothing
is uploaded for them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from storage.models import CustomerSend, RepairOrder, SmsMessage
from tests.support.factories import make_ro
from tests.support.files import (
    PUBLIC_URL,
    copied_row,
    file_message_event,
    file_shared_event,
    files_env,
    jpeg_bytes,
    send_files,
    slack_file,
    video_bytes,
    wait_send,
)
from tests.support.harness import SlackTestClient, start_app, wait_until
from tests.support.metrics import FR_COUNTS, read_workbook

TZ = ZoneInfo("America/Toronto")
START = date(2026, 10, 31)
PHONE_A, PHONE_B = "+15145550142", "+15145550177"
PHONE_BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
# What iMessage sends when it draws the link's preview, before anyone taps it.
IMESSAGE_PREVIEW = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 "
    "Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"
)
LINK = re.compile(re.escape(PUBLIC_URL) + r"(/c/[A-Za-z0-9_-]+)")


def epoch(utc_text: str) -> int:
    """A UTC wall time as Slack's epoch seconds: epoch("2026-11-01 04:10")."""
    return int(datetime.fromisoformat(utc_text).replace(tzinfo=UTC).timestamp())


def local(moment: int | float) -> datetime:
    return datetime.fromtimestamp(moment, TZ)


@pytest.fixture
def app(fake_slack, database_url, tmp_path, twilio):
    """The app on each database; Marie (UADVISOR, French Slack) is the admin, Luc (UTECH) is not."""
    running = start_app(files_env(fake_slack, database_url, tmp_path, twilio, None, ADMIN_SLACK_USER_IDS="UADVISOR"))
    yield running
    running.stop()


@pytest.fixture
def client(app, fake_slack) -> SlackTestClient:
    return SlackTestClient(app.url, fake_slack)


def mobile_share(client, fake_slack, ro, name: str, content: bytes, mimetype: str, user: str, at: int):
    """A file shared from Slack mobile at Slack time `at`: the file_share message (its ts the
    file's time; a file's message is no message of its own), then file_shared; the stored row."""
    file_id = slack_file(fake_slack, ro.channel_id, name, content, mimetype, user=user, created=at)
    client.event({**file_message_event([file_id], ro.channel_id, user=user), "ts": f"{at}.000100"})
    client.event(file_shared_event(file_id, ro.channel_id, user=user))
    return copied_row(file_id, ro, timeout=60)


def say(client, ro, user: str, ts: str, text: str, event_id: str | None = None, **fields) -> None:
    event = {"type": "message", "channel": ro.channel_id, "user": user, "text": text, "ts": ts, "channel_type": "channel"}
    client.event({**event, **fields}, event_id=event_id)


def xlsx_uploads(fake_slack) -> list[dict]:
    return [u for u in fake_slack.uploads if u["filename"].endswith(".xlsx")]


def test_the_workbook_an_admin_asks_for_counts_exactly_what_was_done_through_the_app(app, client, fake_slack, twilio, tmp_path):
    a = make_ro(
        fake_slack,
        ro_number="48301",
        owner="UADVISOR",
        members=("UTECH",),
        mobile_phone=PHONE_A,
        created_at=datetime(2026, 10, 28, 13, 0),
    )
    b = make_ro(
        fake_slack,
        ro_number="48302",
        customer_last_name="Gagnon",
        owner="UADVISOR",
        members=("UTECH",),
        mobile_phone=PHONE_B,
        phone_digits="15145550177",
        name_folded="jean gagnon",
        created_at=datetime(2026, 10, 29, 14, 30),
    )

    # -- pictures and videos, Slack mobile, dated by their Slack file time ---------------------
    outside = epoch("2026-10-31 03:50")  # 23:50 EDT on 30 Oct: the day before the period
    luc_late = epoch("2026-11-01 03:50")  # 23:50 EDT on 31 Oct
    luc_early = epoch("2026-11-01 04:10")  # 00:10 EDT on 1 Nov
    marie_repeat = epoch("2026-11-01 06:30")  # 01:30 EST on 1 Nov, the hour that happens twice
    luc_clip = epoch("2026-11-02 04:50")  # 23:50 EST on 1 Nov (a UTC-4 reading would say 2 Nov)
    marie_early = epoch("2026-11-02 05:10")  # 00:10 EST on 2 Nov
    marie_clip = epoch("2026-11-02 15:00")  # 10:00 EST on 2 Nov
    assert (local(luc_late).day, local(luc_late).hour, local(luc_early).day, local(luc_early).hour) == (31, 23, 1, 0)
    assert (local(luc_clip).day, local(luc_clip).hour, local(marie_early).day, local(marie_early).hour) == (1, 23, 2, 0)
    clip = video_bytes(tmp_path)
    mobile_share(client, fake_slack, a, "IMG_0999.jpg", jpeg_bytes(color=(9, 9, 9)), "image/jpeg", "UTECH", outside)
    mobile_share(client, fake_slack, a, "IMG_1001.jpg", jpeg_bytes(color=(1, 0, 0)), "image/jpeg", "UTECH", luc_late)
    luc_photo = mobile_share(client, fake_slack, a, "IMG_1002.jpg", jpeg_bytes(color=(2, 0, 0)), "image/jpeg", "UTECH", luc_early)
    mobile_share(client, fake_slack, b, "IMG_2001.jpg", jpeg_bytes(color=(3, 0, 0)), "image/jpeg", "UADVISOR", marie_repeat)
    mobile_share(client, fake_slack, b, "IMG_2002.mp4", clip, "video/mp4", "UTECH", luc_clip)
    marie_photo = mobile_share(
        client, fake_slack, a, "IMG_1003.jpg", jpeg_bytes(color=(4, 0, 0)), "image/jpeg", "UADVISOR", marie_early
    )
    mobile_share(client, fake_slack, a, "IMG_1004.mp4", clip, "video/mp4", "UADVISOR", marie_clip)

    # -- messages, dated by their ts --------------------------------------------------------------
    luc_said = f"{epoch('2026-11-01 05:30')}.000200"  # 01:30 EDT on 1 Nov
    say(client, a, "UTECH", luc_said, "freins arrière usés", event_id="EvLUCSAID")
    client.event(  # Slack's retry of that event
        {"type": "message", "channel": a.channel_id, "user": "UTECH", "text": "freins arrière usés", "ts": luc_said},
        event_id="EvLUCSAID",
        retry_num=1,
    )
    say(client, a, "UTECH", luc_said, "freins arrière usés")  # the same message delivered again
    say(client, a, "UADVISOR", f"{epoch('2026-11-01 06:30')}.000300", "je préviens le client")  # 01:30 EST
    luc_b = f"{epoch('2026-11-02 04:50')}.000400"  # 23:50 EST on 1 Nov
    say(client, b, "UTECH", luc_b, "pneu crevé")
    say(client, b, "UADVISOR", f"{epoch('2026-11-02 05:10')}.000500", "commande faite", thread_ts=luc_b)  # 00:10 on 2 Nov
    say(client, b, "UTECH", f"{epoch('2026-11-02 05:20')}.000600", "", subtype="channel_join")  # not a message
    app.settle()

    # -- now: Marie sends two pictures to RO a's customer through Files (the fake Twilio takes it) --
    today_before = datetime.now(TZ).date()
    send_files(client, fake_slack, a, [luc_photo, marie_photo], user="UADVISOR")
    sent = wait_send("sent")
    app.settle()
    [text_out] = [m for m in twilio.messages if m["To"] == PHONE_A]
    page = app.url + LINK.search(text_out["Body"]).group(1)
    # The link's preview is drawn, then the customer opens the page on the phone, twice.
    assert requests.get(page, headers={"User-Agent": IMESSAGE_PREVIEW}, timeout=10).status_code == 200
    assert requests.get(page, headers={"User-Agent": PHONE_BROWSER}, timeout=10).status_code == 200
    assert requests.get(page, headers={"User-Agent": PHONE_BROWSER}, timeout=10).status_code == 200

    # -- the customer texts in, Marie answers in the conversation thread ---------------------------
    assert twilio.inbound(app.url, PUBLIC_URL, PHONE_A, "Est-ce que mon auto est prête?").status_code == 200
    app.settle()
    thread = wait_until(lambda: RepairOrder.get_by_id(a.id).conversation_ts, message="the conversation thread")
    say(client, a, "UADVISOR", f"{datetime.now(UTC).timestamp():.6f}", "Oui, vous pouvez passer la prendre", thread_ts=thread)
    reply = wait_until(
        lambda: SmsMessage.get_or_none((SmsMessage.direction == "out") & SmsMessage.status.in_(("sent", "delivered"))),
        message="the reply texted",
    )
    app.settle()
    today = datetime.now(TZ).date()
    assert today == today_before, "the shop's day changed during the test: run it again"
    asked = SmsMessage.get(SmsMessage.direction == "in")
    assert asked.ro_id == a.id and reply.ro_id == a.id and reply.author_user_id == "UADVISOR"
    # The one response time: from the customer's text to Marie's reply, as the app recorded both.
    response = round((reply.created_at - asked.created_at).total_seconds() / 60, 1)
    assert CustomerSend.get_by_id(sent.id).sent_by == "UADVISOR"

    # -- Marie asks for the workbook -------------------------------------------------------------
    end = max(today, date(2026, 11, 2))
    command = client.command(f"metrics {START.isoformat()} {end.isoformat()}", user_id="UADVISOR")
    assert command.status_code == 200
    [upload] = wait_until(lambda: xlsx_uploads(fake_slack), timeout=60, message="the workbook uploaded")
    app.settle()
    [opened] = fake_slack.calls_to("conversations.open")
    assert opened.args["users"] == "UADVISOR"
    dm = next(c["id"] for c in fake_slack.channels.values() if c.get("is_im") and c.get("user") == "UADVISOR")
    [asked_url] = fake_slack.calls_to("files.getUploadURLExternal")
    [completed] = fake_slack.calls_to("files.completeUploadExternal")
    assert asked_url.args["filename"] == upload["filename"] and int(asked_url.args["length"]) == len(upload["content"])
    assert completed.args["channel_id"] == dm and upload["channels"] == [dm]
    assert upload["filename"].startswith(f"metrics-{START.isoformat()}-{end.isoformat()}-")
    assert not fake_slack.calls_to("files.upload")

    out = read_workbook(upload["content"])
    # Marie's Slack is French: so is her workbook.
    assert out["book"].sheetnames[:3] == ["Utilisateurs", "Bons de travail", "Par jour"]
    assert out["header"] == ["Utilisateur", *FR_COUNTS]
    assert out["days_header"] == ["Jour", *FR_COUNTS]

    # Users: pictures, videos, messages, texts, files sent, views, median first response, ROs.
    # Luc: the pictures of 31 Oct 23:50 and 1 Nov 00:10 (not 30 Oct's), the clip of 1 Nov 23:50,
    # his two messages (the redelivery once, the join none); ROs a and b.
    # Marie: 01:30 EST's picture and 2 Nov's, 2 Nov's clip; her message at 01:30 EST, her thread
    # reply in b and her reply to the customer; that reply texted; the send's 2 files, opened once.
    # Luc has run no command yet (he only shared and posted): the workbook still names him.
    luc = ["Luc Martin", 2, 1, 2, 0, 0, 0, None, 2]
    marie = ["Marie Roy", 2, 1, 3, 1, 2, 1, response, 2]
    assert out["users"] == [luc, marie, ["Total", 4, 2, 5, 1, 2, 1, response, 2]]

    # Repair orders: number, customer, advisor, status, opened (shop time), completed, pictures,
    # videos, messages, files sent, views, median first response.
    assert out["ros_header"][:6] == ["Numéro de RO", "Client", "Conseiller", "Statut", "Ouvert le", "Terminé le"]
    assert out["ros"] == [
        ["48301", "Jean Tremblay", "Marie Roy", "En cours", datetime(2026, 10, 28, 9, 0), None, 3, 1, 3, 2, 1, response],
        ["48302", "Jean Gagnon", "Marie Roy", "En cours", datetime(2026, 10, 29, 10, 30), None, 1, 1, 2, 0, 0, None],
        ["Total", None, None, None, None, None, 4, 2, 5, 2, 1, response],
    ]

    # By day: every shop day of the period, each event on the day it happened in Toronto; the
    # send, the view, the text and Marie's reply (a message too) are today's, in RO a.
    counted = {
        date(2026, 10, 31): ([1, 0, 0, 0, 0, 0], {a.id}),
        date(2026, 11, 1): ([2, 1, 3, 0, 0, 0], {a.id, b.id}),
        date(2026, 11, 2): ([1, 1, 1, 0, 0, 0], {a.id, b.id}),
    }
    numbers, ros = counted.get(today, ([0] * 6, set()))
    counted[today] = ([n + m for n, m in zip(numbers, [0, 0, 1, 1, 2, 1], strict=True)], ros | {a.id})
    expected = {day: [*numbers, response if day == today else None, len(ros)] for day, (numbers, ros) in counted.items()}
    *days, total = out["days"]
    span = [START + timedelta(days=n) for n in range((end - START).days + 1)]
    assert [row[0] for row in days] == [datetime.combine(day, time(0)) for day in span]
    assert {row[0].date(): row[1:] for row in days} == {day: expected.get(day, [0, 0, 0, 0, 0, 0, None, 0]) for day in span}
    assert total == ["Total", 4, 2, 5, 1, 2, 1, response, 2]

    # -- Luc is no admin: he is told so, privately, and gets nothing ----------------------------
    uploads, tries = len(fake_slack.uploads), len(fake_slack.calls_to("files.getUploadURLExternal"))
    responses = len(fake_slack.responses)
    assert client.command(f"metrics {START.isoformat()} {end.isoformat()}", user_id="UTECH").status_code == 200
    refusal = wait_until(lambda: fake_slack.responses[responses:], message="Luc's answer")[0]
    assert "admins" in refusal["text"] and refusal.get("response_type", "ephemeral") == "ephemeral"
    app.settle()
    assert len(fake_slack.uploads) == uploads and len(fake_slack.calls_to("files.getUploadURLExternal")) == tries
    assert not [c for c in fake_slack.channels.values() if c.get("is_im") and c.get("user") == "UTECH"]
