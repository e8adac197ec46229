"""Slack does not deliver events in order: an older membership event never overwrites a newer one,
and a mention of someone the table wrongly believes present still brings them back."""

from __future__ import annotations

import time

import pytest

from storage.models import Participant
from tests.support.factories import make_ro


@pytest.fixture
def people(people_any_db):
    return people_any_db


@pytest.fixture
def ro(people, fake_slack):
    fake_slack.add_user("UPARTS", "paul", email="paul@dealer.example")
    return make_ro(fake_slack, owner="UADVISOR", members=("UTECH",))


def active(ro) -> set[str]:
    return {p.user_id for p in Participant.select().where((Participant.ro == ro.id) & (Participant.active == True))}


def membership(people, ro, kind: str, user: str, at: float) -> None:
    people.client.event({"type": kind, "user": user, "channel": ro.channel_id, "event_ts": f"{at:.6f}"})
    people.settle()


def test_a_leave_that_arrives_before_the_older_join_wins(people, fake_slack, ro):
    now = time.time()
    membership(people, ro, "member_left_channel", "UPARTS", now - 5)  # Paul left…
    membership(people, ro, "member_joined_channel", "UPARTS", now - 60)  # …after the join Slack delivers late
    assert "UPARTS" not in active(ro)
    assert Participant.get((Participant.ro == ro.id) & (Participant.user_id == "UPARTS")).removed_at is not None


def test_a_late_join_after_a_newer_leave_of_an_existing_participant_is_ignored(people, fake_slack, ro):
    now = time.time()
    membership(people, ro, "member_left_channel", "UTECH", now - 5)
    membership(people, ro, "member_joined_channel", "UTECH", now - 30)
    assert active(ro) == {"UADVISOR"}


def test_events_in_order_are_followed(people, fake_slack, ro):
    now = time.time()
    membership(people, ro, "member_joined_channel", "UPARTS", now - 30)
    membership(people, ro, "member_left_channel", "UPARTS", now - 20)
    membership(people, ro, "member_joined_channel", "UPARTS", now - 10)
    assert "UPARTS" in active(ro)
    assert Participant.select().where((Participant.ro == ro.id) & (Participant.user_id == "UPARTS")).count() == 1


def test_a_late_leave_older_than_our_own_invite_is_ignored(people, fake_slack, ro):
    before_invite = time.time() - 30
    people.say(ro.channel_id, "<@UPARTS> can you check the rotor?", user="UADVISOR")
    people.settle()
    assert "UPARTS" in active(ro)
    membership(people, ro, "member_left_channel", "UPARTS", before_invite)  # from before we invited him
    assert "UPARTS" in active(ro)


def test_a_mention_of_someone_the_table_believes_present_but_is_not_invites_them(people, fake_slack, ro):
    # Luc left by hand and the event was lost: the table still lists him; Slack does not.
    people.services.slack.kick(ro.channel_id, "UTECH")
    assert "UTECH" in active(ro) and "UTECH" not in fake_slack.members(ro.channel_id)
    people.say(ro.channel_id, "<@UTECH> the car is ready", user="UADVISOR")
    people.settle()
    invites = [c for c in fake_slack.calls_to("conversations.invite") if c.args.get("users") == "UTECH"]
    assert invites and invites[-1].ok
    assert "UTECH" in fake_slack.members(ro.channel_id) and "UTECH" in active(ro)


def test_a_mention_of_someone_really_present_costs_one_answer_and_changes_nothing(people, fake_slack, ro):
    people.say(ro.channel_id, "<@UTECH> thanks", user="UADVISOR")
    people.settle()
    [invite] = [c for c in fake_slack.calls_to("conversations.invite") if c.args.get("users") == "UTECH"]
    assert invite.error == "already_in_channel" and active(ro) == {"UADVISOR", "UTECH"}
    assert not [e for e in fake_slack.ephemerals if e["user"] == "UADVISOR"], "nothing to tell the author"
