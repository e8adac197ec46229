"""DMS → Slack end to end against the fake Slack: channels, cards, topics, advisors, notes,
rate limits and interrupted runs."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from dms.file_feed import FileFeedConnector
from server.scheduler import rollover_once, sync_once
from storage.models import Participant, RepairOrder
from tests.support.dms_feed import row, write_feed

TZ = ZoneInfo("America/Toronto")
NOW = datetime(2026, 11, 29, 7, 0, tzinfo=TZ)
WRITE_METHODS = {
    "conversations.create",
    "conversations.invite",
    "conversations.setTopic",
    "chat.postMessage",
    "chat.update",
    "pins.add",
    "conversations.kick",
    "conversations.unarchive",
}


def run(services, feed, now=NOW):
    return sync_once(services, FileFeedConnector(str(feed), TZ), now)


def writes(fake_slack) -> list[str]:
    return [c.method for c in fake_slack.calls if c.method in WRITE_METHODS]


def test_a_new_ro_gets_its_channel_card_topic_and_advisor(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-29T09:15")])
    outcome = run(services, feed)
    assert outcome.publish.channels_created == 1 and not outcome.publish.failed
    channel = fake_slack.channel_by_name("ro-48213-tremblay")
    assert channel is not None
    ro = RepairOrder.get()
    assert ro.channel_id == channel["id"] and ro.slack_dirty is False
    # The card: posted by the bot, pinned, with the RO's facts and the status select.
    card = fake_slack.messages_without_system(channel["id"])[0]
    assert card["ts"] == ro.card_ts and card["ts"] in fake_slack.pins[channel["id"]]
    text = str(card["blocks"])
    for fact in ("48213", "Jean Tremblay", "2021 Honda Civic", "2HGFC2F59MH512345", "T213", "(514) 555-0142"):
        assert fact in text
    assert "ro.status" in text
    # The advisor (matched by email) is in the channel and owns the RO; the card speaks their French.
    assert "UADVISOR" in fake_slack.members(channel["id"])
    assert ro.owner_user_id == "UADVISOR"
    assert Participant.get((Participant.ro == ro) & (Participant.user_id == "UADVISOR")).role == "owner"
    assert "En cours" in text and "Conseiller" in text
    assert "RO 48213 · Jean Tremblay" in channel["topic"]["value"]


def test_an_unchanged_ro_costs_no_slack_call(services, fake_slack, feed):
    write_feed(feed, [row("48213"), row("48214", customer_last_name="Côté")])
    run(services, feed)
    fake_slack.reset_calls()
    outcome = run(services, feed)
    assert outcome.sync.unchanged == 2
    assert fake_slack.calls == []


def test_a_taken_name_moves_to_the_next_suffix(services, fake_slack, feed):
    fake_slack.add_channel("ro-48213-tremblay", members=("UTECH",), creator="UTECH")
    fake_slack.add_channel("ro-48213-tremblay-2", members=("UTECH",), creator="UTECH")
    write_feed(feed, [row("48213")])
    run(services, feed)
    assert RepairOrder.get().channel_name == "ro-48213-tremblay-3"
    assert fake_slack.channel_by_name("ro-48213-tremblay-3")["creator"] == fake_slack.bot_user_id


def test_a_dms_change_updates_the_card_in_place_and_notes_the_status(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    run(services, feed)
    ro = RepairOrder.get()
    fake_slack.reset_calls()
    write_feed(feed, [row("48213", "2026-11-30T09:00", status="closed", closed_at="2026-11-30T16:00")])
    run(services, feed)
    updates = fake_slack.calls_to("chat.update")
    assert len(updates) == 1 and updates[0].args["ts"] == ro.card_ts
    assert "Terminé" in str(updates[0].args["blocks"])
    notes = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert notes == ["Statut : À venir → *Terminé* (par le DMS)"]
    assert "Terminé" in fake_slack.channels[ro.channel_id]["topic"]["value"]
    assert fake_slack.calls_to("conversations.create") == []


def test_the_midnight_rollover_is_noted_in_the_channel(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    run(services, feed)
    fake_slack.reset_calls()
    rollover_once(services, datetime(2026, 11, 30, 0, 0, 5, tzinfo=TZ))
    notes = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert notes == ["Statut : À venir → *En cours* (par le passage de minuit)"]


def test_rate_limited_channel_creation_waits_and_makes_no_duplicates(services, fake_slack, feed):
    write_feed(feed, [row(str(48300 + n), customer_last_name=f"Client{n}") for n in range(4)])
    fake_slack.rate_limit("conversations.create", times=2, retry_after=1)
    started = time.monotonic()
    outcome = run(services, feed)
    assert time.monotonic() - started >= 2  # waited Retry-After twice
    assert outcome.publish.channels_created == 4 and not outcome.publish.failed
    assert [c.status for c in fake_slack.calls_to("conversations.create")][:2] == [429, 429]
    assert RepairOrder.select().where(RepairOrder.channel_id.is_null()).count() == 0
    assert len({ro.channel_id for ro in RepairOrder.select()}) == 4


def test_a_sync_stopped_by_rate_limits_resumes_next_time_without_duplicates(services, fake_slack, feed, monkeypatch):
    write_feed(feed, [row(str(48400 + n), customer_last_name=f"Client{n}") for n in range(3)])
    # More 429s than the client's retries: the run stops and leaves the rest for the next one.
    services.slack.client.retry_handlers[0].max_retry_count = 1
    fake_slack.rate_limit("conversations.create", times=2, retry_after=1)
    first = run(services, feed)
    assert first.publish.stopped_early == "ratelimited"
    assert RepairOrder.select().where(RepairOrder.channel_id.is_null()).count() == 3
    second = run(services, feed)
    assert second.publish.channels_created == 3
    names = [c["name"] for c in fake_slack.channels.values() if c["name"].startswith("ro-484")]
    assert len(names) == 3


def test_a_crash_after_slack_created_the_channel_leaves_one_channel(services, fake_slack, feed):
    write_feed(feed, [row("48213")])
    # Slack creates the channel but the answer never arrives (the client retries and meets name_taken).
    fake_slack.crash_after("conversations.create")
    run(services, feed)
    channels = [c for c in fake_slack.channels.values() if c["name"].startswith("ro-48213")]
    assert [c["name"] for c in channels] == ["ro-48213-tremblay"]
    assert RepairOrder.get().channel_id == channels[0]["id"]


def test_a_process_killed_between_create_and_record_is_repaired(services, fake_slack, feed):
    write_feed(feed, [row("48213")])
    from dms.sync_engine import SyncEngine

    SyncEngine(FileFeedConnector(str(feed), TZ), TZ).run(NOW)
    # What a kill leaves: our name remembered, Slack has the channel, its id never stored.
    RepairOrder.update(channel_name="ro-48213-tremblay").execute()
    orphan = fake_slack.add_channel("ro-48213-tremblay", members=(fake_slack.bot_user_id,), creator=fake_slack.bot_user_id)
    run(services, feed)
    assert RepairOrder.get().channel_id == orphan["id"]
    assert len([c for c in fake_slack.channels.values() if c["name"].startswith("ro-48213")]) == 1


def published_then_card_unrecorded(services, fake_slack, feed) -> RepairOrder:
    """An RO as if the process was killed right after chat.postMessage: the card is in the channel,
    not in the database."""
    write_feed(feed, [row("48213")])
    run(services, feed)
    ro = RepairOrder.get()
    RepairOrder.update(card_ts=None, slack_dirty=True).execute()
    fake_slack.reset_calls()
    return ro


def test_a_card_posted_but_not_recorded_is_not_posted_twice(services, fake_slack, feed):
    ro = published_then_card_unrecorded(services, fake_slack, feed)
    run(services, feed)
    assert fake_slack.calls_to("chat.postMessage") == []
    assert RepairOrder.get().card_ts == ro.card_ts


def test_a_failed_look_for_an_unrecorded_card_posts_no_second_card(services, fake_slack, feed):
    ro = published_then_card_unrecorded(services, fake_slack, feed)
    fake_slack.fail_with("conversations.history", "internal_error", times=1)
    first = run(services, feed)
    assert first.publish.failed == [("48213", "internal_error")]
    assert fake_slack.calls_to("chat.postMessage") == [] and RepairOrder.get().slack_dirty
    run(services, feed)  # the next pass finds the card
    assert fake_slack.calls_to("chat.postMessage") == []
    assert RepairOrder.get().card_ts == ro.card_ts and not RepairOrder.get().slack_dirty


def test_an_advisor_without_slack_account_leaves_the_ro_ownerless(services, fake_slack, feed):
    write_feed(feed, [row("48213", advisor_email="nobody@dealer.example")])
    outcome = run(services, feed)
    assert not outcome.publish.failed
    assert RepairOrder.get().owner_user_id is None


def test_slack_down_during_publish_keeps_the_ro_for_the_next_run(services, fake_slack, feed):
    write_feed(feed, [row("48213")])
    fake_slack.fail_with("conversations.create", "fatal_error", times=1)
    first = run(services, feed)
    assert first.publish.failed == [("48213", "fatal_error")]
    assert RepairOrder.get().slack_dirty
    run(services, feed)
    assert RepairOrder.get().channel_id and not RepairOrder.get().slack_dirty


def test_a_deleted_card_is_posted_again(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    run(services, feed)
    ro = RepairOrder.get()
    # Someone deleted the pinned card.
    fake_slack.messages[ro.channel_id] = [m for m in fake_slack.messages[ro.channel_id] if m["ts"] != ro.card_ts]
    write_feed(feed, [row("48213", "2026-11-30T09:00", vehicle_model="Accord")])
    run(services, feed)
    stored = RepairOrder.get()
    assert stored.card_ts and stored.card_ts != ro.card_ts and not stored.slack_dirty
    assert stored.card_ts in fake_slack.pins[ro.channel_id]
    assert "Accord" in str(fake_slack.calls_to("chat.postMessage")[-1].args["blocks"])


def test_an_archived_channel_is_left_alone(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-30T09:00")])
    run(services, feed)
    ro = RepairOrder.get()
    fake_slack.channels[ro.channel_id]["is_archived"] = True
    fake_slack.reset_calls()
    write_feed(feed, [row("48213", "2026-11-30T09:00", status="closed")])
    outcome = run(services, feed)
    assert not outcome.publish.failed and not RepairOrder.get().slack_dirty
    assert "chat.postMessage" not in writes(fake_slack)  # no note, no new card in an archived channel


def test_todays_spaces_come_first_then_coming_then_past(services, fake_slack, feed):
    write_feed(
        feed,
        [
            row("48001", "2026-11-20T09:00"),
            row("48002", "2026-12-02T09:00"),
            row("48003", "2026-11-29T15:00"),
            row("48004", "2026-11-29T08:00"),
        ],
    )
    from dms.sync_engine import SyncEngine
    from spaces.publish_flow import Publisher

    SyncEngine(FileFeedConnector(str(feed), TZ), TZ).run(NOW)
    Publisher(services).publish_pending(NOW)
    created = [c.args["name"][3:8] for c in fake_slack.calls_to("conversations.create")]
    assert created == ["48004", "48003", "48002", "48001"]


def test_reopening_in_the_dms_is_shown_on_the_card(services, fake_slack, feed):
    write_feed(feed, [row("48213", "2026-11-29T09:00", status="closed", closed_at="2026-11-29T12:00")])
    run(services, feed)
    fake_slack.reset_calls()
    write_feed(feed, [row("48213", "2026-11-29T09:00")])
    run(services, feed)
    assert "En cours" in str(fake_slack.calls_to("chat.update")[0].args["blocks"])
    assert [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")] == ["Statut : Terminé → *En cours* (par le DMS)"]


def test_a_long_publish_survives_other_writers(services, fake_slack, feed, monkeypatch):
    """While the publisher works through many ROs, other connections write (the lease renewer,
    the web process). On SQLite a cursor kept open across our writes made them fail with
    "database is locked"; the publish must go through."""
    from datetime import timedelta

    import spaces.sync_flow

    monkeypatch.setattr(spaces.sync_flow, "SYNC_LEASE_TTL", timedelta(seconds=0.15))  # renew every 50 ms
    write_feed(feed, [row(str(48600 + n), customer_last_name=f"Client{n}") for n in range(25)])
    outcome = run(services, feed)
    assert outcome.publish.channels_created == 25 and not outcome.publish.failed
    assert RepairOrder.select().where(RepairOrder.slack_dirty == True).count() == 0
