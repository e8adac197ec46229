"""`/ro status`, `/ro info`, the card's status select and Customer info button, through signed requests."""

from __future__ import annotations

import threading

import pytest

from blocks.codec import RoRef
from spaces.publish_flow import Publisher
from storage.db import with_connection
from storage.models import RepairOrder, StatusChange
from tests.support.factories import make_ro
from tests.support.harness import wait_until
from tests.support.people import dms_to


@pytest.fixture
def app_env(fake_slack, database_url, tmp_path):
    """These scenarios run on SQLite and on PostgreSQL (pool hygiene in Flask and Bolt threads)."""
    from tests.support.harness import make_env

    return make_env(fake_slack, database_url, tmp_path)


@pytest.fixture
def ro(running_app, fake_slack):
    ro = make_ro(fake_slack, owner="UADVISOR", status="upcoming")
    services = running_app.services
    # Publish for real so the channel has its pinned card, as after a sync.
    RepairOrder.update(slack_dirty=True).where(RepairOrder.id == ro.id).execute()
    Publisher(services).publish(RepairOrder.get_by_id(ro.id))
    fake_slack.reset_calls()
    return RepairOrder.get_by_id(ro.id)


def answer(fake_slack, n=1) -> dict:
    wait_until(lambda: len(fake_slack.responses) >= n, message="an ephemeral answer")
    return fake_slack.responses[n - 1]


def test_status_command_changes_card_topic_and_posts_a_note(slack, fake_slack, ro):
    slack.command("status completed", user_id="UTECH", channel_id=ro.channel_id)
    assert "Status changed to Completed" in answer(fake_slack)["text"]
    stored = RepairOrder.get_by_id(ro.id)
    assert stored.status == "completed" and stored.status_manual
    update = fake_slack.wait_for("chat.update")[0]
    assert update.args["ts"] == ro.card_ts and "Terminé" in str(update.args["blocks"])
    note = fake_slack.wait_for("chat.postMessage")[0]
    assert note.args["text"] == "Statut : À venir → *Terminé* (par <@UTECH>)"
    assert "Terminé" in fake_slack.channels[ro.channel_id]["topic"]["value"]
    assert StatusChange.select().where((StatusChange.source == "manual") & (StatusChange.actor == "UTECH")).count() == 1


def test_status_command_with_the_same_status_changes_nothing(slack, fake_slack, ro):
    slack.command("status upcoming", user_id="UTECH", channel_id=ro.channel_id)
    assert "already Upcoming" in answer(fake_slack)["text"]
    assert fake_slack.calls_to("chat.update") == [] and fake_slack.calls_to("chat.postMessage") == []


def test_status_command_with_an_unknown_word_explains_usage(slack, fake_slack, ro):
    slack.command("status soonish", user_id="UADVISOR", channel_id=ro.channel_id)
    assert "Utilisation : `/ro status in-progress`" in answer(fake_slack)["text"]
    assert RepairOrder.get_by_id(ro.id).status == "upcoming"


def test_status_command_outside_an_ro_channel_is_refused(slack, fake_slack, ro):
    slack.command("status completed", user_id="UTECH", channel_id="CGENERAL")
    assert "works in a repair-order channel" in answer(fake_slack)["text"]
    assert RepairOrder.get_by_id(ro.id).status == "upcoming"


def test_status_saved_at_once_and_shown_when_slack_takes_the_card_again(slack, fake_slack, ro):
    fake_slack.fail_with("chat.update", "fatal_error", times=1)
    slack.command("status in-progress", user_id="UTECH", channel_id=ro.channel_id)
    assert "update in a moment" in answer(fake_slack)["text"]
    assert RepairOrder.get_by_id(ro.id).status == "in_progress"
    calls = fake_slack.wait_for("chat.update", count=2, timeout=15)
    assert [c.ok for c in calls] == [False, True] and "En cours" in str(calls[1].args["blocks"])
    wait_until(lambda: not RepairOrder.get_by_id(ro.id).slack_dirty, message="the RO shown in Slack")


def test_status_saved_and_the_user_told_when_slack_keeps_refusing_the_card(slack, fake_slack, running_app, ro):
    fake_slack.fail_with("chat.update", "fatal_error", times=50)
    slack.command("status in-progress", user_id="UTECH", channel_id=ro.channel_id)
    assert "update in a moment" in answer(fake_slack)["text"]
    # Luc is not in the channel: told by DM.
    told = wait_until(lambda: dms_to(fake_slack, "UTECH"), timeout=30, message="the user told")
    assert "retried at the next sync" in told[0]["text"]
    stored = RepairOrder.get_by_id(ro.id)
    assert stored.status == "in_progress" and stored.slack_dirty  # the next sync shows it


def test_status_select_on_the_card(slack, fake_slack, ro):
    slack.action(
        {
            "type": "block_actions",
            "user": {"id": "UADVISOR"},
            "team": {"id": "T0001"},
            "channel": {"id": ro.channel_id},
            "container": {"type": "message", "message_ts": ro.card_ts, "channel_id": ro.channel_id},
            "message": {"ts": ro.card_ts},
            "actions": [
                {
                    "type": "static_select",
                    "action_id": "ro.status",
                    "block_id": "ro_card_status",
                    "selected_option": {"value": "in_progress", "text": {"type": "plain_text", "text": "x"}},
                }
            ],
        }
    )
    note = fake_slack.wait_for("chat.postMessage")[0]
    assert note.args["text"] == "Statut : À venir → *En cours* (par <@UADVISOR>)"
    assert RepairOrder.get_by_id(ro.id).status == "in_progress"


def publisher(running_app) -> Publisher:
    services = running_app.services
    return Publisher(services)


def cards(fake_slack, channel_id: str) -> list[dict]:
    return [m for m in fake_slack.messages[channel_id] if (m.get("blocks") or [{}])[0].get("block_id") == "ro_card"]


def test_a_status_change_while_the_sync_publishes_ends_up_on_the_card(slack, fake_slack, running_app, ro):
    """The scheduler's publisher has sent the card as it read it; `/ro status` changes the RO and
    publishes before that older card lands. Slack must end up showing the new status."""
    RepairOrder.update(slack_dirty=True).where(RepairOrder.id == ro.id).execute()  # some DMS detail changed
    held = fake_slack.hold("chat.update")
    sync = threading.Thread(target=with_connection(publisher(running_app).publish_pending))
    sync.start()
    try:
        assert held.arrived.wait(5), "the sync never sent the card"
        slack.command("status completed", user_id="UTECH", channel_id=ro.channel_id)
        assert "Status changed to Completed" in answer(fake_slack)["text"]
    finally:
        held.release()
        sync.join(10)
    running_app.settle()  # the status change's own publish task, if the sync's pass left it to it
    [card] = cards(fake_slack, ro.channel_id)
    [status] = [b for b in card["blocks"] if b.get("block_id") == "ro_card_status"]
    assert status["accessory"]["initial_option"]["value"] == "completed"
    assert not RepairOrder.get_by_id(ro.id).slack_dirty
    notes = [c.args["text"] for c in fake_slack.calls_to("chat.postMessage")]
    assert notes == ["Statut : À venir → *Terminé* (par <@UTECH>)"]


def test_two_publishers_of_an_ro_without_card_post_one_card(fake_slack, running_app):
    ro = make_ro(fake_slack, owner="UADVISOR", status="upcoming", slack_dirty=True)
    # The first publisher's card is on its way to Slack, not yet in the channel's history.
    held = fake_slack.hold("chat.postMessage", predicate=lambda args: "ro_card" in str(args.get("blocks")))
    first = threading.Thread(target=with_connection(publisher(running_app).publish), args=(RepairOrder.get_by_id(ro.id),))
    first.start()
    try:
        assert held.arrived.wait(5), "the first publisher never posted the card"
        publisher(running_app).publish(RepairOrder.get_by_id(ro.id))
    finally:
        held.release()
        first.join(10)
    [card] = cards(fake_slack, ro.channel_id)
    stored = RepairOrder.get_by_id(ro.id)
    assert stored.card_ts == card["ts"] and fake_slack.pins[ro.channel_id] == [card["ts"]]
    assert not stored.slack_dirty


def test_info_command_shows_the_card_again(slack, fake_slack, ro):
    slack.command("info", user_id="UTECH", channel_id=ro.channel_id)
    reply = answer(fake_slack)
    assert reply["response_type"] == "ephemeral"
    assert "RO" in reply["text"] and any(b.get("block_id") == "ro_card" for b in reply["blocks"])


def test_customer_info_button_opens_the_modal(slack, fake_slack, ro):
    slack.action(
        {
            "type": "block_actions",
            "user": {"id": "UTECH"},
            "team": {"id": "T0001"},
            "channel": {"id": ro.channel_id},
            "container": {"type": "message", "message_ts": ro.card_ts, "channel_id": ro.channel_id},
            "actions": [
                {"type": "button", "action_id": "ro.info", "block_id": "ro_card_actions", "value": RoRef(ro.id).encode()}
            ],
        }
    )
    view = fake_slack.wait_for("views.open")[0].args["view"]
    text = str(view)
    for fact in ("Customer information", "Jean Tremblay", "(514) 555-0142", "jean@example.com", "Français", "2HGFC2F59MH512345"):
        assert fact in text
