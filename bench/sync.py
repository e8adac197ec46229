"""Benchmark: 10,000 ROs through the file connector into an empty SQLite database, published to
the fake Slack (rate limits off).

Prints the first sync, a second sync with no change (which must make zero Slack write calls),
and two baselines measured in the same run: reading the feed alone (the floor any sync pays),
and a second sync that republishes every RO (what skipping unchanged ROs saves).

    .venv/bin/python bench/sync.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bot
from core.config import load_settings
from dms.file_feed import FileFeedConnector
from slackapi.services import build_services
from spaces.sync_flow import sync_once
from storage.db import database
from storage.models import RepairOrder
from tests.fakes.fake_slack import FakeSlack
from tests.support.dms_feed import row, write_feed

WRITES = {"conversations.create", "conversations.invite", "conversations.setTopic", "chat.postMessage", "chat.update", "pins.add"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    last_names = ["Tremblay", "Bélanger", "Côté", "Gagnon", "O'Brien", "Smith", "Lévesque", "Nguyen"]
    feed = write_feed(
        work / "feed.csv",
        [
            row(
                str(100000 + n),
                f"2026-12-{1 + n % 28:02d}T{8 + n % 9:02d}:00",
                customer_last_name=last_names[n % 8],
                mobile_phone=f"514555{n % 10000:04d}",
                status="closed" if n % 5 == 0 else "open",
            )
            for n in range(args.rows)
        ],
    )
    fake = FakeSlack(bot_token="xoxb-bench").start()
    fake.add_user("UADVISOR", "marie", email="marie.roy@dealer.example", locale="fr-CA")
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": "bench-secret-0123456789",
            "SLACK_API_URL": fake.api_url,
            "DATABASE_URL": f"sqlite:///{work}/bench.db",
            "DMS_FILE": str(feed),
        },
        require_slack=True,
    )
    bot.open_storage(settings)
    services = build_services(settings)
    connector = FileFeedConnector(str(feed), settings.shop_timezone)

    started = time.perf_counter()
    connector.fetch(None)
    read_only = time.perf_counter() - started

    with database.connection_context():
        started = time.perf_counter()
        first = sync_once(services, connector)
        first_time = time.perf_counter() - started
        first_writes = sum(1 for c in fake.calls if c.method in WRITES)

        fake.reset_calls()
        started = time.perf_counter()
        second = sync_once(services, connector)
        second_time = time.perf_counter() - started
        second_writes = sum(1 for c in fake.calls if c.method in WRITES)
        second_calls = len(fake.calls)

        RepairOrder.update(slack_dirty=True).execute()  # baseline: no skipping, republish all
        fake.reset_calls()
        started = time.perf_counter()
        sync_once(services, connector)
        republish_time = time.perf_counter() - started
        republish_writes = sum(1 for c in fake.calls if c.method in WRITES)
    fake.stop()

    print(f"rows: {args.rows} (SQLite, fake Slack on loopback, rate limits off)")
    print(f"baseline  read feed only:              {read_only:8.2f} s")
    print(
        f"first sync  (create all):              {first_time:8.2f} s  {len(first.sync.created)} created, "
        f"{first.publish.channels_created} channels, {first_writes} Slack writes"
    )
    print(
        f"second sync (no change):               {second_time:8.2f} s  {second.sync.unchanged} unchanged, "
        f"{second_writes} Slack writes, {second_calls} Slack calls"
    )
    print(f"baseline  second sync republishing all: {republish_time:8.2f} s  {republish_writes} Slack writes")
    if second_writes:
        raise SystemExit("FAIL: an unchanged sync made Slack write calls")


if __name__ == "__main__":
    main()
