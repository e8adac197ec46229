"""The scheduler runs its jobs in one process only, whatever the number started; others wait."""

from __future__ import annotations

from datetime import timedelta

import pytest

import bot
from core.config import load_settings
from dms.file_feed import FileFeedConnector
from server.scheduler import Scheduler
from spaces.sync_flow import sync_once
from storage import leases as lease
from storage.db import database
from storage.models import Lease, RepairOrder, utcnow
from tests.support.dms_feed import row, write_feed
from tests.support.harness import make_env, wait_until


@pytest.fixture
def services(fake_slack, database_url, tmp_path):
    settings = load_settings(make_env(fake_slack, database_url, tmp_path), require_slack=True)
    bot.open_storage(settings)
    return bot.build_services(settings)  # as every process does: its tasks registered


def test_only_one_lease_holder_and_takeover_after_expiry(services):
    with database.connection_context():
        assert lease.acquire("scheduler", "a", timedelta(seconds=60))
        assert not lease.acquire("scheduler", "b", timedelta(seconds=60))
        assert lease.acquire("scheduler", "a", timedelta(seconds=60))  # renewal
        Lease.update(expires_at=utcnow() - timedelta(seconds=1)).execute()  # "a" stopped renewing
        assert lease.acquire("scheduler", "b", timedelta(seconds=60))
        assert not lease.acquire("scheduler", "a", timedelta(seconds=60))


def test_a_sync_refuses_to_run_beside_another(services, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", [row("48213")])
    with database.connection_context():
        with lease.held("sync", timedelta(minutes=2)):
            with pytest.raises(lease.LeaseBusy):
                sync_once(services, FileFeedConnector(str(feed), services.settings.shop_timezone))
        assert RepairOrder.select().count() == 0


def test_two_schedulers_run_the_sync_once(services, fake_slack, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", [row(str(48500 + n), customer_last_name=f"C{n}") for n in range(3)])
    connector = FileFeedConnector(str(feed), services.settings.shop_timezone)
    first, second = Scheduler(services, connector), Scheduler(services, connector)
    first.start()
    second.start()
    try:
        wait_until(lambda: len(fake_slack.calls_to("conversations.create")) >= 3, timeout=10, message="three channels")
        # Both schedulers' start-up sync came due (one ran it, the other stood by) before we count.
        wait_until(lambda: first.fired["dms-sync"] and second.fired["dms-sync"], timeout=10, message="both syncs due")
        assert [first.is_leader, second.is_leader].count(True) == 1
        assert len(fake_slack.calls_to("conversations.create")) == 3
        assert all(c.ok for c in fake_slack.calls_to("conversations.create"))
    finally:
        first.shutdown()
        second.shutdown()
    with database.connection_context():
        assert Lease.select().where(Lease.name == "scheduler").count() == 0  # released on shutdown


def test_feature_jobs_are_scheduled_and_run(services, fake_slack, tmp_path):
    """The file-copy retry and the notification batch run under the scheduler like the sync."""
    from media.intake_rules import MAX_COPY_ATTEMPTS
    from storage.models import RoFile
    from tests.support.factories import make_ro

    jobs = {job.name: job for job in bot.feature_jobs(services)}
    assert set(jobs) == {
        "file-copy-retry",
        "notifications",
        "prune-old-rows",
        "task-sweep",
        "customer-texts-repost",
        "channel-archive",
    }
    from people.notification_rules import set_preferences
    from people.unread_rules import record_activity
    from tests.support.people import dms_to

    with database.connection_context():
        ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",))
        fake_slack.add_file(
            "F1", "photo.jpg", b"\xff\xd8\xff\xe0jpeg-bytes", "image/jpeg", "jpg", "UTECH", channels=(ro.channel_id,)
        )
        RoFile.create(
            ro=ro,
            slack_file_id="F1",
            uploader_user_id="UTECH",
            kind="picture",
            name="photo.jpg",
            mimetype="image/jpeg",
            size=14,
            copy_status="failed",
            copy_attempts=1,
        )
        set_preferences("UADVISOR", messages=True, files=False)  # a due digest: UTECH wrote in UADVISOR's RO
        record_activity(ro.id, "UTECH", "message", "1700000000.000100")
    with database.connection_context():
        jobs["file-copy-retry"].func()  # queues the retry pass; a worker runs it
    services.tasks.start_workers(1)
    try:
        services.tasks.wait_idle()
    finally:
        services.tasks.stop_workers()
    jobs["notifications"].func()
    with database.connection_context():
        row = RoFile.get(RoFile.slack_file_id == "F1")
        assert row.copy_status == "stored" and row.copy_attempts < MAX_COPY_ATTEMPTS
    dms = dms_to(fake_slack, "UADVISOR")
    assert len(dms) == 1 and "1 nouveau message de <@UTECH>" in dms[0]["text"]


def test_old_event_ids_and_finished_tasks_are_pruned_and_recent_ones_kept(services):
    from storage.models import ProcessedEvent, TaskRecord

    jobs = {job.name: job for job in bot.feature_jobs(services)}
    with database.connection_context():
        ProcessedEvent.create(event_id="EvOLD", received_at=utcnow() - timedelta(days=3))
        ProcessedEvent.create(event_id="EvNEW")
        ago = {name: utcnow() - timedelta(days=days) for name, days in (("old", 30), ("recent", 1), ("ancient", 100))}
        for key, status, finished in (
            ("done-old", "done", ago["old"]),
            ("done-recent", "done", ago["recent"]),
            ("failed-old", "failed", ago["old"]),
            ("failed-ancient", "failed", ago["ancient"]),
            ("queued-old", "queued", None),
        ):
            TaskRecord.create(name="test", args="[]", key=key, status=status, finished_at=finished, max_attempts=1)
        jobs["prune-old-rows"].func()
        assert [e.event_id for e in ProcessedEvent.select()] == ["EvNEW"]
        kept = {r.key for r in TaskRecord.select()}
        assert kept == {"done-recent", "failed-old", "queued-old"}, "failed work is kept longer; waiting work always"
