"""The scheduler runs its jobs in one process only, whatever the number started; others wait."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

import bot
from core.config import load_settings
from core.services import build_services
from dms.file_feed import FileFeedConnector
from spaces import lease
from spaces.jobs import Scheduler, sync_once
from storage.db import database
from storage.models import Lease, RepairOrder, utcnow
from tests.conftest import make_env, wait_until
from tests.dms_feed import row, write_feed


@pytest.fixture
def services(fake_slack, database_url, tmp_path):
    settings = load_settings(make_env(fake_slack, database_url, tmp_path), require_slack=True)
    bot.open_storage(settings)
    return build_services(settings)


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
        time.sleep(1.5)
        assert [first.is_leader, second.is_leader].count(True) == 1
        assert len(fake_slack.calls_to("conversations.create")) == 3
        assert all(c.ok for c in fake_slack.calls_to("conversations.create"))
    finally:
        first.shutdown()
        second.shutdown()
    with database.connection_context():
        assert Lease.select().where(Lease.name == "scheduler").count() == 0  # released on shutdown
