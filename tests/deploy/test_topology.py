"""A shop's day on the multi-process deployment, with crashes in the middle.

gunicorn (2 workers) serving `bot:create_app()`, 2 `bot.py worker` and 2 `bot.py scheduler`
processes, on PostgreSQL (a fresh schema), a Redis task queue (a queue name of its own) and S3
(moto in server mode); the fake Slack and the fake Twilio on loopback, the DMS file feed written
here. Everything goes through the real fronts: Slack's signed requests to gunicorn's
`/slack/events`, Twilio's signed webhook to `/sms/inbound`, the scheduler's own DMS sync.

The day: the sync makes the RO channels; a mention invites a colleague; files shared in the RO
are copied into the bucket; a photo is sent to the customer; the customer texts and a reply in the
thread is texted back; two clips are merged, and the worker running the merge is SIGKILLed while
its upload is in flight at Slack. Then a second scheduler joins, a new RO reaches the DMS, and the
scheduler holding the lease is SIGKILLed while its sync's `conversations.create` is in flight; the
completed RO is due for archiving. At the end every piece of work must have been done exactly
once, whichever process ended up doing it, and nothing is left queued or running.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from storage.db import database, open_database
from storage.models import CustomerSend, Lease, MergeJob, RepairOrder, RoFile, SmsMessage, TaskRecord
from storage.values import MERGED_FILE
from tests.media.test_merge_flow import press_merge
from tests.support.clips import clip
from tests.support.dms_feed import row, write_feed
from tests.support.files import (
    PUBLIC_URL,
    file_shared_event,
    files_env,
    jpeg_bytes,
    open_files,
    slack_file,
    submit,
    with_ticks,
)
from tests.support.harness import SlackTestClient, wait_until
from tests.support.people import next_ts
from tests.support.topology import Deployment, holder_pid, sigkill

SHOP = ZoneInfo("America/Toronto")
CUSTOMER = "+15145550142"
TODAY_RO, CLOSED_RO, LATE_RO = "51001", "51002", "51003"  # LATE_RO reaches the DMS after the crash
# Every wait is on a condition; these bound them generously for 2 busy cores (the scheduler's
# jobs come each minute, a takeover needs the new leader's next check).
SOON, MINUTE_JOB = 60, 150


def local(moment: datetime) -> str:
    """A shop-local time as DMS exports write it (ISO, no offset)."""
    return moment.astimezone(SHOP).replace(tzinfo=None, microsecond=0).isoformat()


def feed_rows(now: datetime, with_late_ro: bool) -> list[dict]:
    rows = [
        row(TODAY_RO, local(now + timedelta(hours=1)), mobile_phone="514 555-0142"),
        # Closed three days ago: first seen within SYNC_LOOKBACK_DAYS (a channel), archived after ARCHIVE_AFTER_DAYS=1.
        row(
            CLOSED_RO,
            local(now - timedelta(days=4)),
            status="closed",
            closed_at=local(now - timedelta(days=3)),
            customer_last_name="Gagnon",
            mobile_phone="514 555-0177",
        ),
    ]
    if with_late_ro:
        rows.append(row(LATE_RO, local(now + timedelta(days=1)), customer_last_name="Bouchard", mobile_phone="514 555-0188"))
    return rows


@dataclass
class DayFeed:
    """The DMS export: the same rows each time it is written (times fixed at the day's start), so
    adding an RO changes nothing else."""

    path: Path
    now: datetime = field(default_factory=lambda: datetime.now(SHOP))

    def write(self, with_late_ro: bool = False) -> None:
        write_feed(self.path, feed_rows(self.now, with_late_ro))


@pytest.fixture
def feed(tmp_path) -> DayFeed:
    day = DayFeed(tmp_path / "feed.csv")
    day.write()
    return day


@pytest.fixture
def deployment(redis_queue, postgres_url, fake_slack, twilio, s3_server, bucket, feed, tmp_path):
    env = files_env(
        fake_slack,
        postgres_url,
        tmp_path,
        twilio,
        None,
        **redis_queue.env(),
        **s3_server.env(bucket),
        DMS="file",
        DMS_FILE=str(feed.path),
        SYNC_INTERVAL_MINUTES="1",
        ARCHIVE_AFTER_DAYS="1",
        QUEUE_WORKERS="2",
    )
    running = Deployment(env, tmp_path)
    try:
        running.start()
        open_database(postgres_url)  # this process reads what the processes wrote
        with database.connection_context():
            yield running
    finally:
        running.stop()


def ro(number: str) -> RepairOrder | None:
    return RepairOrder.get_or_none(RepairOrder.ro_number == number)


def published(number: str) -> RepairOrder | None:
    """The RO once the sync has made its channel and pinned its card."""
    found = ro(number)
    return found if found and found.channel_id and found.card_ts and found.card_pinned and not found.slack_dirty else None


def stored_files(names: set[str]) -> list[RoFile] | None:
    rows = list(RoFile.select().where(RoFile.name.in_(names) & (RoFile.copy_status == "stored")))
    return rows if len(rows) == len(names) else None


def texts_to_customer(twilio) -> list[dict]:
    return [m for m in twilio.messages if m["To"] == CUSTOMER]


def share_in(client: SlackTestClient, fake_slack, channel_id: str, name: str, content: bytes, mimetype: str) -> str:
    """A file shared in the channel as Slack reports it (file_shared, then the file's message)."""
    file_id = slack_file(fake_slack, channel_id, name, content, mimetype, user="UTECH")
    assert client.event(file_shared_event(file_id, channel_id, user="UTECH")).status_code == 200
    return file_id


def message(client: SlackTestClient, channel_id: str, user: str, text: str, thread_ts: str | None = None) -> None:
    event = {"type": "message", "channel": channel_id, "user": user, "text": text, "ts": next_ts(), "channel_type": "channel"}
    if thread_ts:
        event["thread_ts"] = thread_ts
    assert client.event(event).status_code == 200


def idle() -> bool:
    return not TaskRecord.select().where(TaskRecord.status.in_(("queued", "waiting", "running"))).exists()


@pytest.mark.timeout(420)
def test_a_day_on_the_deployment_survives_a_worker_and_the_lead_scheduler_killed(
    deployment, feed, fake_slack, twilio, s3_server, bucket, tmp_path
):
    client = SlackTestClient(deployment.url, fake_slack)

    # -- morning: the leading scheduler's first sync makes the spaces -------------------------------
    today = wait_until(lambda: published(TODAY_RO), timeout=SOON, interval=0.2, message="the RO's space")
    wait_until(lambda: published(CLOSED_RO), timeout=SOON, interval=0.2, message="the completed RO's space")
    assert "UADVISOR" in fake_slack.members(today.channel_id), "the advisor, matched by email"

    # -- a mention invites a colleague ---------------------------------------------------------------
    message(client, today.channel_id, "UADVISOR", "<@UTECH> can you check the brakes?")
    wait_until(lambda: "UTECH" in fake_slack.members(today.channel_id), timeout=SOON, message="Luc invited")

    # -- files shared in the RO are copied into the bucket -------------------------------------------
    clips = {name: clip(tmp_path, size="160x120", fps=15, seconds=1, name=name) for name in ("IMG_1.mp4", "IMG_2.mp4")}
    share_in(client, fake_slack, today.channel_id, "brakes.jpg", jpeg_bytes(), "image/jpeg")
    for name, path in clips.items():
        share_in(client, fake_slack, today.channel_id, name, path.read_bytes(), "video/mp4")
    files = wait_until(lambda: stored_files({"brakes.jpg", *clips}), timeout=SOON, message="three files stored")
    by_name = {f.name: f for f in files}

    # -- a photo sent to the customer ------------------------------------------------------------------
    view = open_files(client, fake_slack, today)
    submit(client, with_ticks(view, [by_name["brakes.jpg"].id]))
    wait_until(
        lambda: CustomerSend.select().where(CustomerSend.status.in_(("sent", "delivered"))).exists(),
        timeout=SOON,
        message="the send texted",
    )

    # -- the customer texts; the advisor's reply in the thread is texted back --------------------------
    assert twilio.inbound(deployment.url, PUBLIC_URL, CUSTOMER, "Is my car ready?").status_code == 200
    wait_until(
        lambda: SmsMessage.get_or_none((SmsMessage.direction == "in") & (SmsMessage.status == "posted")),
        timeout=SOON,
        message="the customer's text in the thread",
    )
    thread = RepairOrder.get_by_id(today.id).conversation_ts
    message(client, today.channel_id, "UADVISOR", "Yes, ready at 4 pm.", thread_ts=thread)
    wait_until(
        lambda: SmsMessage.get_or_none((SmsMessage.direction == "out") & SmsMessage.status.in_(("sent", "delivered"))),
        timeout=SOON,
        message="the reply texted",
    )

    # -- the merge, and a worker killed in the middle of it ------------------------------------------
    upload = fake_slack.hold("files.completeUploadExternal", seconds=120)
    view = open_files(client, fake_slack, today)
    press_merge(client, fake_slack, with_ticks(view, [by_name[name].id for name in clips]))
    assert upload.arrived.wait(SOON), "the merge never reached its upload:\n" + deployment.tail()
    [merging] = TaskRecord.select().where((TaskRecord.name == "merge.run") & (TaskRecord.status == "running"))
    sigkill(deployment.by_pid(holder_pid(merging.claimed_by)))
    upload.release()  # Slack finishes the upload; the worker that asked is gone
    assert upload.answered.wait(30)
    job = wait_until(
        lambda: (found := MergeJob.get_or_none()) and found.status in ("done", "failed") and found,
        timeout=MINUTE_JOB,
        interval=0.2,
        message="the merge finished by the other worker (after the leader's task sweep)",
    )
    assert job.status == "done", job.error

    # -- the leading scheduler killed in the middle of a sync ----------------------------------------
    # The second scheduler comes up now, half a minute or so after the first: its minute jobs fall
    # that much after the leader's, so the takeover's sync does not wait a whole minute more.
    standby = deployment.start_scheduler()
    created = fake_slack.hold("conversations.create", lambda args: args.get("name") == "ro-51003-bouchard", seconds=120)
    feed.write(with_late_ro=True)  # tomorrow's appointment reaches the DMS
    assert created.arrived.wait(MINUTE_JOB), "the leader's sync never reached Slack:\n" + deployment.tail()
    leader = deployment.by_pid(holder_pid(Lease.get_by_id("scheduler").holder))
    assert leader is not standby
    sigkill(leader)
    created.release()  # Slack makes the channel; the sync that asked never hears of it
    assert created.answered.wait(30)

    # -- the survivors finish the day ------------------------------------------------------------------
    wait_until(lambda: published(LATE_RO), timeout=MINUTE_JOB, interval=0.2, message="the new RO's space, by the new leader")
    wait_until(lambda: ro(CLOSED_RO).channel_archived_at, timeout=MINUTE_JOB, interval=0.2, message="the completed RO archived")
    wait_until(idle, timeout=SOON, interval=0.2, message="no task queued or running")
    deployment.check_alive()
    assert holder_pid(Lease.get_by_id("scheduler").holder) == standby.pid

    # -- every piece of work done once ---------------------------------------------------------------
    creates = collections.Counter(c.args["name"] for c in fake_slack.calls_to("conversations.create") if c.ok)
    assert creates == {"ro-51001-tremblay": 1, "ro-51002-gagnon": 1, "ro-51003-bouchard": 1}, creates
    channels = collections.Counter(c["name"] for c in fake_slack.channels.values() if c["name"].startswith("ro-"))
    assert set(channels.values()) == {1} and len(channels) == 3, channels
    assert RepairOrder.select().count() == 3
    spaces = [ro(number) for number in (TODAY_RO, CLOSED_RO, LATE_RO)]
    assert all(len(fake_slack.pins[space.channel_id]) == 1 for space in spaces), "one pinned card each"

    invites = collections.Counter(
        (c.args["channel"], user) for c in fake_slack.calls_to("conversations.invite") for user in c.args["users"].split(",")
    )
    assert invites[(today.channel_id, "UTECH")] == 1 and set(invites.values()) == {1}, invites

    rows = list(RoFile.select())
    assert collections.Counter(r.slack_file_id for r in rows).most_common(1)[0][1] == 1, "one row per Slack file"
    assert len(rows) == 4 and all(r.copy_status == "stored" for r in rows)
    objects = s3_server.objects(bucket, deployment.env["MEDIA_URL"].split("/", 3)[3])
    assert len(objects) == len({r.sha256 for r in rows}) == 4, sorted(objects)

    assert len(texts_to_customer(twilio)) == 2, "one text for the send, one for the reply"
    assert SmsMessage.select().where(SmsMessage.direction == "in").count() == 1
    assert SmsMessage.select().where(SmsMessage.direction == "out").count() == 1
    assert CustomerSend.select().count() == 1

    assert len(fake_slack.uploads) == 1, "one merged video in the channel"
    assert RoFile.select().where(RoFile.origin == MERGED_FILE).count() == 1
    assert TaskRecord.get_by_id(merging.id).attempts == 2, "taken over from the killed worker"

    closed = ro(CLOSED_RO)
    archives = fake_slack.calls_to("conversations.archive")
    assert [c.args["channel"] for c in archives] == [closed.channel_id] and closed.archived_by_app
    assert TaskRecord.select().where(TaskRecord.status == "failed").count() == 0
