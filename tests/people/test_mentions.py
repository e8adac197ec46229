"""@mentions in RO channels, end to end: signed message events in, Slack calls and Participant rows out."""

from __future__ import annotations

import pytest

from storage.models import Participant, TaskRecord
from tests.support.factories import make_ro
from tests.support.harness import wait_until
from tests.support.people import ephemerals_to


@pytest.fixture
def ro(people, fake_slack):
    fake_slack.add_user("UPARTS", "paul", email="paul@dealer.example", real_name="Paul Parts")
    return make_ro(fake_slack, owner="UADVISOR", members=("UTECH",))


def participant(ro, user_id):
    return Participant.get_or_none((Participant.ro == ro.id) & (Participant.user_id == user_id))


def invited(fake_slack) -> list[str]:
    return [c.args["users"] for c in fake_slack.calls_to("conversations.invite") if c.ok]


def test_mentioning_someone_not_in_the_channel_invites_and_records_them(people, fake_slack, ro):
    people.say(ro.channel_id, "<@UPARTS> can you quote the brake pads?")
    call = fake_slack.wait_for("conversations.invite")[0]
    assert call.args["channel"] == ro.channel_id and call.args["users"] == "UPARTS"
    assert "UPARTS" in fake_slack.members(ro.channel_id)
    row = participant(ro, "UPARTS")
    assert row.active and row.role == "participant" and row.added_by == "UADVISOR"
    assert fake_slack.ephemerals == []


def test_a_participant_already_there_is_not_invited_again(people, fake_slack, ro):
    people.say(ro.channel_id, "<@UTECH> <@UADVISOR> thanks", user="UTECH")
    assert invited(fake_slack) == [] and fake_slack.ephemerals == []


def test_a_user_group_mention_adds_its_members(people, fake_slack, ro):
    fake_slack.add_user("UPARTS2", "julie")
    fake_slack.add_usergroup("S0PARTS", "parts", ["UPARTS", "UPARTS2", "UTECH"])
    people.say(ro.channel_id, "<!subteam^S0PARTS|@parts> who has the rotor?")
    people.settle()  # a group is invited by a task
    assert invited(fake_slack) == ["UPARTS,UPARTS2"]  # one call for the group, UTECH is in already
    assert participant(ro, "UPARTS").active and participant(ro, "UPARTS2").active


def test_a_large_group_is_invited_by_a_task_a_thousand_a_call(people, fake_slack, ro):
    staff = [f"UCREW{n:04d}" for n in range(1500)]
    for user_id in staff:
        fake_slack.add_user(user_id, user_id.lower())
    fake_slack.add_user("UGONE", "gone", deleted=True)
    fake_slack.add_usergroup("S0CREW", "crew", [*staff, "UGONE", "UTECH"])
    people.say(ro.channel_id, "<!subteam^S0CREW|@crew> all hands", user="UTECH")
    # The listener only queued the work: the group's members are invited by a task.
    assert TaskRecord.select().where(TaskRecord.name == "participants.groups").count() == 1
    people.settle()
    calls = [c for c in fake_slack.calls_to("conversations.invite") if c.ok]
    assert [len(c.args["users"].split(",")) for c in calls] == [1000, 501]
    assert all(str(c.args.get("force")).lower() in ("1", "true") for c in calls)
    assert {c.args["user"] for c in fake_slack.calls_to("users.info")} <= {"UTECH"}  # no look-up per member
    assert set(staff) <= fake_slack.members(ro.channel_id)
    active = Participant.select().where((Participant.ro == ro.id) & (Participant.active == True))
    assert {p.user_id for p in active} >= set(staff) and participant(ro, "UGONE") is None
    note = ephemerals_to(fake_slack, "UTECH")
    assert len(note) == 1 and "Could not add <@UGONE>" in note[0]["text"]


def test_an_unreadable_user_group_is_explained_to_the_author(people, fake_slack, ro):
    people.say(ro.channel_id, "<!subteam^S0GONE|@gone> anyone?")
    people.settle()
    note = ephemerals_to(fake_slack, "UADVISOR")
    assert len(note) == 1 and "Impossible de lire les membres de <!subteam^S0GONE>" in note[0]["text"]


def test_an_edit_counts_only_for_the_mentions_it_adds(people, fake_slack, ro):
    fake_slack.add_user("UBODY", "bob")
    people.edit(ro.channel_id, before="<@UPARTS> brakes", after="<@UPARTS> brakes, and <@UBODY> for the dent")
    assert invited(fake_slack) == ["UBODY"]
    assert participant(ro, "UPARTS") is None and participant(ro, "UBODY").active


def test_an_edit_that_adds_no_mention_does_nothing(people, fake_slack, ro):
    people.edit(ro.channel_id, before="<@UPARTS> brakes", after="<@UPARTS> brakes (typo fixed)")
    assert invited(fake_slack) == [] and participant(ro, "UPARTS") is None


def test_bot_messages_are_ignored_ours_and_others(people, fake_slack, ro):
    people.say(ro.channel_id, "<@UPARTS> from another app", user="UOTHER", bot_id="B0OTHER", subtype="bot_message")
    people.say(ro.channel_id, "<@UPARTS> an app posting as a user", user="UOTHER", bot_id="B0OTHER")
    people.edit(ro.channel_id, before="card", after="card <@UPARTS>", user="UOTHER", bot_id="B0OTHER")
    # Our own messages do not even reach the listeners (Bolt drops self events): the probe never
    # sees them, so wait until every listener run started so far has finished instead.
    people.say(ro.channel_id, "<@UPARTS> card refreshed", user=fake_slack.bot_user_id, bot_id=fake_slack.bot_id, wait=False)
    people.settle()
    assert invited(fake_slack) == [] and participant(ro, "UPARTS") is None
    assert ephemerals_to(fake_slack, "UOTHER") == [] and fake_slack.calls_to("users.info") == []


def test_mentioning_the_app_itself_does_nothing(people, fake_slack, ro):
    people.say(ro.channel_id, f"<@{fake_slack.bot_user_id}> hello")
    assert invited(fake_slack) == [] and fake_slack.ephemerals == []


def test_mentions_outside_ro_channels_do_nothing(people, fake_slack, ro):
    general = fake_slack.add_channel("general", members=(fake_slack.bot_user_id, "UADVISOR"))
    people.say(general["id"], "<@UPARTS> lunch?")
    assert invited(fake_slack) == [] and Participant.select().where(Participant.user_id == "UPARTS").count() == 0


def test_a_deactivated_user_gets_a_note_to_the_author_and_nothing_recorded(people, fake_slack, ro):
    fake_slack.add_user("UGONE", "gone", deleted=True)
    people.say(ro.channel_id, "<@UGONE> are you there?", user="UTECH")
    notes = ephemerals_to(fake_slack, "UTECH")
    assert len(notes) == 1 and notes[0]["channel"] == ro.channel_id
    assert "Could not add <@UGONE>: their account is deactivated" in notes[0]["text"]
    assert invited(fake_slack) == [] and participant(ro, "UGONE") is None


def test_a_bot_gets_a_note_and_nothing_recorded(people, fake_slack, ro):
    fake_slack.add_user("UROBOT", "robot", is_bot=True)
    people.say(ro.channel_id, "<@UROBOT> do it", user="UTECH")
    assert "it is a bot" in ephemerals_to(fake_slack, "UTECH")[0]["text"]
    assert fake_slack.calls_to("conversations.invite") == [] and participant(ro, "UROBOT") is None


@pytest.mark.parametrize(
    "error,reason",
    [("cant_invite", "Slack refused"), ("user_is_restricted", "Slack refused"), ("ratelimited", "Slack did not answer")],
)
def test_someone_slack_refuses_gets_a_note_and_nothing_recorded(people, fake_slack, ro, error, reason):
    fake_slack.fail_with("conversations.invite", error)
    people.say(ro.channel_id, "<@UPARTS> please", user="UTECH")
    note = ephemerals_to(fake_slack, "UTECH")
    assert len(note) == 1 and f"Could not add <@UPARTS>: {reason}" in note[0]["text"]
    assert participant(ro, "UPARTS") is None and "UPARTS" not in fake_slack.members(ro.channel_id)


def test_an_unknown_user_gets_a_note(people, fake_slack, ro):
    people.say(ro.channel_id, "<@UNOBODY> hi", user="UTECH")
    assert "Slack does not know this user" in ephemerals_to(fake_slack, "UTECH")[0]["text"]
    assert participant(ro, "UNOBODY") is None


def test_a_user_slack_could_not_look_up_is_not_called_unknown(people, fake_slack, ro):
    fake_slack.fail_with("users.info", "service_unavailable", times=5)  # Slack is down for this message
    people.say(ro.channel_id, "<@UPARTS> please", user="UTECH")
    note = ephemerals_to(fake_slack, "UTECH")
    assert len(note) == 1 and "Could not add <@UPARTS>: Slack did not answer; please try again in a moment" in note[0]["text"]
    assert "does not know" not in note[0]["text"] and participant(ro, "UPARTS") is None and invited(fake_slack) == []


def test_profiles_without_a_locale_still_say_who_they_are(people, fake_slack, ro):
    """users.info answers without `locale` for some accounts: they are known all the same."""
    fake_slack.add_user("UROBOT", "robot", is_bot=True, locale="")
    fake_slack.add_user("UGONE", "gone", deleted=True, locale="")
    fake_slack.add_user("UNOLOC", "noloc", locale="")
    people.say(ro.channel_id, "<@UROBOT> <@UGONE> <@UNOLOC> look", user="UTECH")
    text = ephemerals_to(fake_slack, "UTECH")[0]["text"]
    assert "Could not add <@UROBOT>: it is a bot" in text and "Could not add <@UGONE>: their account is deactivated" in text
    assert "UNOLOC" not in text and "does not know" not in text
    assert invited(fake_slack) == ["UNOLOC"] and participant(ro, "UNOLOC").active


def test_refusals_and_successes_in_one_message(people, fake_slack, ro):
    fake_slack.add_user("UGONE", "gone", deleted=True)
    people.say(ro.channel_id, "<@UGONE> <@UPARTS> tires", user="UTECH")
    assert invited(fake_slack) == ["UPARTS"] and participant(ro, "UPARTS").active
    assert "<@UGONE>" in ephemerals_to(fake_slack, "UTECH")[0]["text"]


def test_the_note_goes_in_the_thread_of_a_threaded_message(people, fake_slack, ro):
    fake_slack.add_user("UGONE", "gone", deleted=True)
    people.say(ro.channel_id, "<@UGONE> reply", user="UTECH", thread_ts="1700000000.000100")
    assert ephemerals_to(fake_slack, "UTECH")[0]["thread_ts"] == "1700000000.000100"


def test_a_file_comment_with_a_mention_adds_them(people, fake_slack, ro):
    people.say(ro.channel_id, "<@UPARTS> photo of the part", subtype="file_share", files=[{"id": "F1"}])
    assert invited(fake_slack) == ["UPARTS"]


def test_someone_who_left_is_invited_again_when_mentioned(people, fake_slack, ro):
    people.client.event({"type": "member_left_channel", "user": "UTECH", "channel": ro.channel_id})
    wait_until(lambda: not participant(ro, "UTECH").active, message="UTECH recorded as gone")
    people.services.slack.kick(ro.channel_id, "UTECH")  # the fake's membership does not follow events
    people.say(ro.channel_id, "<@UTECH> come back")
    assert invited(fake_slack) == ["UTECH"] and participant(ro, "UTECH").active
