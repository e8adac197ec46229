"""An RO's channel over its life, at workspace scale: names found without listing the workspace,
a create interrupted by a killed process, a deleted channel, a pin Slack refused, and an
appointment's space renamed once its RO number exists."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import bot
from core.config import load_settings
from dms.file_feed import FileFeedConnector
from dms.sync_engine import SyncEngine
from server.scheduler import sync_once
from slackapi.services import build_services
from storage.models import RepairOrder
from tests.support.dms_feed import row, write_feed
from tests.support.harness import make_env, wait_until
from tests.support.tekmetric import tekmetric_connector

TZ = ZoneInfo("America/Toronto")
NOW = datetime(2026, 11, 29, 7, 0, tzinfo=TZ)
ROOT = Path(__file__).resolve().parents[2]


def run(services, feed, now=NOW):
    return sync_once(services, FileFeedConnector(str(feed), TZ), now)


def busy_workspace(fake_slack, channels: int = 450) -> None:
    """A workspace with many channels that are not ours: listing them all would take pages."""
    for n in range(channels):
        fake_slack.add_channel(f"team-{n}", members=("UTECH",), creator="UTECH")


def listings(fake_slack) -> list[str]:
    return [c.method for c in fake_slack.calls if c.method in ("conversations.list", "users.conversations")]


def channels_named(fake_slack, prefix: str) -> list[dict]:
    return [c for c in fake_slack.channels.values() if c["name"].startswith(prefix)]


# -- names without scanning the workspace -------------------------------------------------------


def test_a_name_someone_else_holds_costs_no_channel_listing(services, fake_slack, feed):
    busy_workspace(fake_slack)
    fake_slack.add_channel("ro-48213-tremblay", members=("UTECH",), creator="UTECH")
    # A private channel the bot cannot see holds the next name: Slack still answers name_taken.
    fake_slack.add_channel("ro-48213-tremblay-2", members=("UTECH",), is_private=True, creator="UTECH")
    write_feed(feed, [row("48213")])
    outcome = run(services, feed)
    assert outcome.publish.channels_created == 1 and not outcome.publish.failed
    assert RepairOrder.get().channel_name == "ro-48213-tremblay-3"
    assert listings(fake_slack) == []
    assert [c.args["name"] for c in fake_slack.calls_to("conversations.create")] == [
        "ro-48213-tremblay",
        "ro-48213-tremblay-2",
        "ro-48213-tremblay-3",
    ]


def test_a_create_interrupted_by_a_kill_is_adopted_from_the_bots_own_channels(services, fake_slack, feed):
    busy_workspace(fake_slack)
    write_feed(feed, [row("48213")])
    SyncEngine(FileFeedConnector(str(feed), TZ), TZ).run(NOW)
    # What a kill leaves: our name remembered, Slack has the channel, its id never stored.
    RepairOrder.update(channel_name="ro-48213-tremblay").execute()
    orphan = fake_slack.add_channel("ro-48213-tremblay", members=(fake_slack.bot_user_id,), creator=fake_slack.bot_user_id)
    outcome = run(services, feed)
    assert not outcome.publish.failed
    assert RepairOrder.get().channel_id == orphan["id"]
    assert len(channels_named(fake_slack, "ro-48213")) == 1
    assert fake_slack.calls_to("conversations.list") == []
    looks = fake_slack.calls_to("users.conversations")
    assert looks and all(str(c.args.get("exclude_archived")).lower() in ("1", "true") for c in looks)


def _sync_process(env: dict, cwd: Path) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "DMS", "TEKMETRIC"))}
    clean.update(env, DOTENV_PATH=str(cwd / "absent.env"))
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bot.py"), "sync"],
        env=clean,
        cwd=cwd,
        stdout=(cwd / "sync.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_a_sync_killed_while_slack_creates_the_channel_leaves_one_channel(fake_slack, sqlite_url, tmp_path, feed):
    """A real `python bot.py sync` SIGKILLed while its conversations.create is in flight: Slack
    creates the channel after the process is gone; the next sync adopts it."""
    busy_workspace(fake_slack)
    write_feed(feed, [row("48213")])
    env = make_env(fake_slack, sqlite_url, tmp_path, DMS_FILE=str(feed))
    held = fake_slack.hold("conversations.create", seconds=60)
    process = _sync_process(env, tmp_path)
    try:
        assert held.arrived.wait(60), (tmp_path / "sync.log").read_text()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    held.release()
    assert held.answered.wait(10)
    assert len(channels_named(fake_slack, "ro-48213")) == 1  # Slack did it, nobody heard

    settings = load_settings(env, require_slack=True)
    bot.open_storage(settings)
    outcome = run(build_services(settings), feed)
    assert not outcome.publish.failed, outcome.publish.failed
    [channel] = channels_named(fake_slack, "ro-48213")
    ro = RepairOrder.get()
    assert ro.channel_id == channel["id"] and not ro.slack_dirty
    assert fake_slack.calls_to("conversations.list") == []
    assert ro.card_ts in fake_slack.pins[channel["id"]]


# -- a deleted channel ---------------------------------------------------------------------------


def test_a_channel_deleted_under_an_open_ro_is_made_again_at_the_next_sync(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    run(services, feed)
    old = RepairOrder.get().channel_id
    fake_slack.delete_channel(old)  # no event heard (the app was down): the sync finds out itself
    write_feed(feed, [row("48213", "2026-11-30T09:00", vehicle_model="Accord")])
    outcome = run(services, feed)
    assert not outcome.publish.failed, outcome.publish.failed
    ro = RepairOrder.get()
    assert ro.channel_id and ro.channel_id != old and not ro.slack_dirty
    channel = fake_slack.channels[ro.channel_id]
    assert channel["name"] == "ro-48213-tremblay"
    assert ro.card_ts in fake_slack.pins[ro.channel_id]
    assert "Accord" in str(fake_slack.messages_without_system(ro.channel_id)[0]["blocks"])
    assert "UADVISOR" in fake_slack.members(ro.channel_id)
    # Quiet from then on: the next sync with nothing new costs nothing.
    fake_slack.reset_calls()
    run(services, feed)
    assert fake_slack.calls == []


def test_a_channel_deleted_after_the_ro_was_completed_stays_out_of_slack(services, fake_slack, feed):
    closed = dict(status="closed", closed_at="2026-11-29T16:00")
    write_feed(feed, [row("48213", "2026-11-29T09:00", **closed)])
    run(services, feed)
    fake_slack.delete_channel(RepairOrder.get().channel_id)
    fake_slack.reset_calls()
    write_feed(feed, [row("48213", "2026-11-29T09:00", vehicle_model="Accord", **closed)])
    outcome = run(services, feed)
    assert not outcome.publish.failed, outcome.publish.failed
    ro = RepairOrder.get()
    assert ro.channel_id is None and ro.card_ts is None and not ro.slack_dirty
    assert fake_slack.calls_to("conversations.create") == []
    assert channels_named(fake_slack, "ro-48213") == []
    # Reopened in the DMS: the RO needs its space again.
    write_feed(feed, [row("48213", "2026-11-29T09:00", vehicle_model="Accord")])
    run(services, feed)
    ro = RepairOrder.get()
    assert ro.channel_id and fake_slack.channels[ro.channel_id]["name"] == "ro-48213-tremblay"


def test_the_channel_deleted_event_records_the_ro_without_channel(people, fake_slack, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", [row("48213", "2026-11-30T09:00")])
    services = people.services
    sync_once(services, FileFeedConnector(str(feed), TZ), NOW)
    old = RepairOrder.get().channel_id
    fake_slack.delete_channel(old)
    people.client.event({"type": "channel_deleted", "channel": old, "event_ts": "1700000000.000100"})
    wait_until(lambda: RepairOrder.get().channel_id is None, timeout=30, message="the RO recorded without channel")
    ro = RepairOrder.get()
    assert ro.card_ts is None and ro.slack_dirty
    # The next sync, with nothing new in the DMS, gives the open RO its space back.
    fake_slack.reset_calls()
    outcome = sync_once(services, FileFeedConnector(str(feed), TZ), NOW)
    assert outcome.publish.channels_created == 1 and not outcome.publish.failed
    ro = RepairOrder.get()
    assert ro.channel_id != old and ro.card_ts in fake_slack.pins[ro.channel_id]
    assert [c.args["name"] for c in fake_slack.calls_to("conversations.create")] == ["ro-48213-tremblay"]


# -- the pin -------------------------------------------------------------------------------------


def test_a_failed_pin_is_tried_again_at_the_next_sync(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    fake_slack.fail_with("pins.add", "internal_error", times=1)
    first = run(services, feed)
    assert first.publish.failed == [("48213", "internal_error")]
    ro = RepairOrder.get()
    assert ro.card_ts and fake_slack.pins[ro.channel_id] == [] and ro.slack_dirty
    assert "RO 48213" in fake_slack.channels[ro.channel_id]["topic"]["value"]  # the rest was done
    second = run(services, feed)
    assert not second.publish.failed
    stored = RepairOrder.get()
    assert stored.card_ts == ro.card_ts and fake_slack.pins[ro.channel_id] == [ro.card_ts] and not stored.slack_dirty
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # one card
    fake_slack.reset_calls()
    run(services, feed)
    assert fake_slack.calls == []


# -- an appointment's space gets its RO number ---------------------------------------------------


def test_an_appointment_space_is_renamed_when_its_ro_is_written(services, fake_slack, fake_tekmetric):
    customer = fake_tekmetric.add_customer("Luc", "Bélanger", phones=[{"number": "438 555 0142", "type": "Mobile"}])
    vehicle = fake_tekmetric.add_vehicle(customer, year=2020, make="Ford", model="F-150")
    start = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    appointment = fake_tekmetric.add_appointment(customer, vehicle, start=start)
    connector = tekmetric_connector(fake_tekmetric, TZ)
    fake_tekmetric.advance(600)
    sync_once(services, connector, NOW)
    ro = RepairOrder.get()
    assert ro.channel_name == f"ro-a{appointment}-belanger"
    channel_id = ro.channel_id

    fake_tekmetric.advance(600)
    ro_id = fake_tekmetric.add_repair_order(customer, vehicle, appointmentId=appointment)
    number = fake_tekmetric.repair_orders[ro_id]["repairOrderNumber"]
    fake_tekmetric.advance(600)
    outcome = sync_once(services, connector, NOW)
    assert not outcome.publish.failed, outcome.publish.failed
    ro = RepairOrder.get()
    assert ro.ro_number == str(number) and ro.channel_id == channel_id  # the same space
    assert ro.channel_name == f"ro-{number}-belanger"
    assert fake_slack.channels[channel_id]["name"] == f"ro-{number}-belanger"
    assert [c.args["name"] for c in fake_slack.calls_to("conversations.rename")] == [f"ro-{number}-belanger"]
    assert fake_slack.calls_to("conversations.create")[-1].args["name"] == f"ro-a{appointment}-belanger"
