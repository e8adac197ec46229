"""The Participants modal (button and `/ro participants`), Update, membership events, and
"Request an invitation" emailed to the admins through a real SMTP server on loopback."""

from __future__ import annotations

import pytest

from blocks import ids
from blocks import participants_view as views
from blocks.codec import InviteState, ParticipantsState, RoRef, decode
from storage.models import InvitationRequest, Participant
from tests.support.factories import make_ro
from tests.support.files import closed_port_url
from tests.support.harness import wait_until
from tests.support.people import answer, dms_to, ephemerals_to


@pytest.fixture
def people(people_any_db):
    """Participants are kept on both databases."""
    return people_any_db


@pytest.fixture
def people_env(smtp, fake_slack):
    fake_slack.add_user("UADMIN", "alice", email="alice.admin@dealer.example", real_name="Alice Admin", locale="en-US")
    return {"ADMIN_SLACK_USER_IDS": "UADMIN", "SMTP_URL": smtp.url(), "MAIL_FROM": "service@dealer.example"}


@pytest.fixture
def ro(people, fake_slack):
    fake_slack.add_user("UPARTS", "paul", email="paul@dealer.example")
    return make_ro(fake_slack, owner="UADVISOR", members=("UTECH",))


def active(ro) -> set[str]:
    return {p.user_id for p in Participant.select().where((Participant.ro == ro.id) & (Participant.active == True))}


def users_state(*users: str) -> dict:
    return {views.USERS_BLOCK: {ids.PARTICIPANTS_USERS: {"type": "multi_users_select", "selected_users": list(users)}}}


def invitation_state(name="Nadia Roy", email="nadia@dealer.example", role="technician", note="Starts Monday") -> dict:
    state = {
        views.NAME_BLOCK: {"value": {"type": "plain_text_input", "value": name}},
        views.EMAIL_BLOCK: {"value": {"type": "email_text_input", "value": email}},
        views.NOTE_BLOCK: {"value": {"type": "plain_text_input", "value": note}},
        views.ROLE_BLOCK: {"value": {"type": "static_select", "selected_option": {"value": role} if role else None}},
    }
    return state


# -- the modal ---------------------------------------------------------------------------------


def test_the_card_button_opens_the_modal_prefilled_with_the_participants(people, fake_slack, ro):
    people.action("UTECH", "participants.open", RoRef(ro.id).encode(), channel=ro.channel_id)
    view = fake_slack.wait_for("views.open")[0].args["view"]
    # The RO, and who the modal shows (Update applies only what the person changed).
    assert view["callback_id"] == ids.PARTICIPANTS_MODAL
    assert decode(view["private_metadata"], ParticipantsState) == ParticipantsState(ro.id, ("UADVISOR", "UTECH"))
    select = next(b for b in view["blocks"] if b.get("block_id") == views.USERS_BLOCK)["element"]
    assert select["type"] == "multi_users_select" and select["initial_users"] == ["UADVISOR", "UTECH"]
    assert "Request an invitation" in str(view["blocks"]) and f"*RO {ro.ro_number} · Jean Tremblay*" in str(view["blocks"])


def open_modal(people, fake_slack, ro, user="UTECH") -> dict:
    before = len(fake_slack.calls_to("views.open"))
    people.action(user, "participants.open", RoRef(ro.id).encode(), channel=ro.channel_id)
    return fake_slack.wait_for("views.open", count=before + 1)[-1].args["view"]


def shown(view) -> list[str]:
    return next(b for b in view["blocks"] if b.get("block_id") == views.USERS_BLOCK)["element"].get("initial_users", [])


def test_update_keeps_who_joined_while_the_modal_was_open(people, fake_slack, ro):
    view = open_modal(people, fake_slack, ro)
    people.say(ro.channel_id, "<@UPARTS> can you check the rotor?", user="UADVISOR")  # added while the modal is open
    wait_until(lambda: "UPARTS" in active(ro), message="UPARTS added by the mention")
    people.submit("UTECH", ids.PARTICIPANTS_MODAL, view["private_metadata"], users_state(*shown(view)))  # Update, unchanged
    wait_until(lambda: ephemerals_to(fake_slack, "UTECH"), message="summary")
    assert "Nothing changed" in ephemerals_to(fake_slack, "UTECH")[0]["text"]
    assert active(ro) == {"UADVISOR", "UTECH", "UPARTS"} and fake_slack.calls_to("conversations.kick") == []


def test_update_applies_only_what_was_changed_in_the_modal(people, fake_slack, ro):
    fake_slack.add_user("UBODY", "bob")
    view = open_modal(people, fake_slack, ro, user="UADVISOR")
    people.say(ro.channel_id, "<@UPARTS> tires", user="UADVISOR")  # joins meanwhile
    people.client.event({"type": "member_left_channel", "user": "UTECH", "channel": ro.channel_id})  # leaves meanwhile
    wait_until(lambda: active(ro) == {"UADVISOR", "UPARTS"}, message="the changes made meanwhile")
    people.services.slack.kick(ro.channel_id, "UTECH")  # the fake's membership does not follow events
    # In the modal: UADVISOR and UTECH shown; UBODY added. UTECH left meanwhile but stays ticked: not invited back.
    people.submit("UADVISOR", ids.PARTICIPANTS_MODAL, view["private_metadata"], users_state("UADVISOR", "UTECH", "UBODY"))
    wait_until(lambda: ephemerals_to(fake_slack, "UADVISOR"), message="summary")
    assert active(ro) == {"UADVISOR", "UPARTS", "UBODY"}
    assert [c.args["users"] for c in fake_slack.calls_to("conversations.invite") if c.ok] == ["UPARTS", "UBODY"]


def test_the_slash_command_opens_the_same_modal_in_french(people, fake_slack, ro):
    people.client.command("participants", user_id="UADVISOR", channel_id=ro.channel_id)
    view = fake_slack.wait_for("views.open")[0].args["view"]
    assert view["title"]["text"] == "Participants" and "Demander une invitation" in str(view["blocks"])
    assert f"*BT {ro.ro_number} · Jean Tremblay*" in str(view["blocks"]) and "RO " not in str(view["blocks"])


def test_the_slash_command_outside_an_ro_channel_says_where_it_works(people, fake_slack, ro):
    people.client.command("participants", user_id="UTECH", channel_id="CGENERAL")
    assert "works in a repair-order channel" in answer(fake_slack)["text"]
    assert fake_slack.calls_to("views.open") == []


def test_a_button_for_a_deleted_ro_says_so(people, fake_slack, ro):
    people.action("UTECH", "participants.open", RoRef(999999).encode(), channel=ro.channel_id)
    assert "no longer exists" in answer(fake_slack)["text"]


def test_update_invites_the_added_and_removes_the_removed(people, fake_slack, ro):
    response = people.submit(
        "UTECH", ids.PARTICIPANTS_MODAL, ParticipantsState(ro.id).encode(), users_state("UADVISOR", "UPARTS")
    )
    assert response.status_code == 200 and response.text == ""  # the modal closes
    fake_slack.wait_for("conversations.kick")
    wait_until(lambda: active(ro) == {"UADVISOR", "UPARTS"}, message="participants updated")
    assert [c.args["users"] for c in fake_slack.calls_to("conversations.invite")] == ["UPARTS"]
    assert fake_slack.calls_to("conversations.kick")[0].args["user"] == "UTECH"
    assert fake_slack.members(ro.channel_id) >= {"UADVISOR", "UPARTS"} and "UTECH" not in fake_slack.members(ro.channel_id)
    gone = Participant.get((Participant.ro == ro.id) & (Participant.user_id == "UTECH"))
    assert gone.removed_at is not None  # kept for history
    # The summary went to UTECH as a DM: they are no longer in the channel to see an ephemeral.
    wait_until(lambda: dms_to(fake_slack, "UTECH"), message="summary DM")
    text = dms_to(fake_slack, "UTECH")[0]["text"]
    assert "Added <@UPARTS>" in text and "Removed <@UTECH>" in text


def test_the_owner_stays_when_unticked(people, fake_slack, ro):
    people.submit("UADVISOR", ids.PARTICIPANTS_MODAL, ParticipantsState(ro.id).encode(), users_state("UTECH"))
    wait_until(lambda: ephemerals_to(fake_slack, "UADVISOR"), message="summary")
    assert "<@UADVISOR> reste : le conseiller vient du DMS" in ephemerals_to(fake_slack, "UADVISOR")[0]["text"]
    assert fake_slack.calls_to("conversations.kick") == [] and active(ro) == {"UADVISOR", "UTECH"}


def test_update_with_nothing_changed_says_so(people, fake_slack, ro):
    people.submit("UTECH", ids.PARTICIPANTS_MODAL, ParticipantsState(ro.id).encode(), users_state("UADVISOR", "UTECH"))
    wait_until(lambda: ephemerals_to(fake_slack, "UTECH"), message="summary")
    assert "Nothing changed" in ephemerals_to(fake_slack, "UTECH")[0]["text"]
    assert fake_slack.calls_to("conversations.invite") == []


def test_update_names_who_could_not_be_added_and_records_only_the_others(people, fake_slack, ro):
    fake_slack.add_user("UGONE", "gone", deleted=True)
    fake_slack.add_user("UROBOT", "robot", is_bot=True)
    people.submit(
        "UTECH",
        ids.PARTICIPANTS_MODAL,
        ParticipantsState(ro.id).encode(),
        users_state("UADVISOR", "UTECH", "UGONE", "UROBOT", "UPARTS"),
    )
    wait_until(lambda: ephemerals_to(fake_slack, "UTECH"), message="summary")
    text = ephemerals_to(fake_slack, "UTECH")[0]["text"]
    assert "Could not add <@UGONE>: their account is deactivated" in text and "Could not add <@UROBOT>: it is a bot" in text
    assert active(ro) == {"UADVISOR", "UTECH", "UPARTS"}


def test_a_kick_slack_refuses_keeps_the_participant(people, fake_slack, ro):
    fake_slack.fail_with("conversations.kick", "restricted_action")
    people.submit("UADVISOR", ids.PARTICIPANTS_MODAL, ParticipantsState(ro.id).encode(), users_state("UADVISOR"))
    wait_until(lambda: ephemerals_to(fake_slack, "UADVISOR"), message="summary")
    assert "<@UTECH>" in ephemerals_to(fake_slack, "UADVISOR")[0]["text"] and active(ro) == {"UADVISOR", "UTECH"}


def test_update_of_an_ro_that_no_longer_exists_is_said_in_the_modal(people, fake_slack, ro):
    response = people.submit("UTECH", ids.PARTICIPANTS_MODAL, ParticipantsState(999999).encode(), users_state("UPARTS"))
    body = response.json()
    assert body["response_action"] == "update" and "no longer exists" in str(body["view"]["blocks"])
    assert fake_slack.calls_to("conversations.invite") == []


@pytest.mark.parametrize(
    "metadata",
    [
        "ro:1",
        "",
        '{"v":1,"k":"participants","ro":"1"}',
        '{"v":2,"k":"participants","ro":1}',
        '{"v":1,"k":"files","ro":1}',
        '{"v":1,"k":"participants","ro":1,"sh":["not a user"]}',
    ],
)
def test_an_update_with_state_we_did_not_write_is_refused_and_changes_nothing(people, fake_slack, ro, metadata):
    response = people.submit("UTECH", ids.PARTICIPANTS_MODAL, metadata, users_state("UPARTS"))
    assert response.status_code == 200
    assert "out of date" in str(response.json()["view"]["blocks"])
    people.settle()
    assert fake_slack.calls_to("conversations.invite") == [] and active(ro) == {"UADVISOR", "UTECH"}


# -- membership events -------------------------------------------------------------------------


def test_people_joining_and_leaving_by_hand_are_reflected(people, fake_slack, ro):
    people.client.event({"type": "member_joined_channel", "user": "UPARTS", "channel": ro.channel_id, "inviter": "UTECH"})
    wait_until(lambda: "UPARTS" in active(ro), message="join recorded")
    assert Participant.get((Participant.ro == ro.id) & (Participant.user_id == "UPARTS")).added_by == "UTECH"
    people.client.event({"type": "member_left_channel", "user": "UTECH", "channel": ro.channel_id})
    wait_until(lambda: "UTECH" not in active(ro), message="leave recorded")
    people.client.event({"type": "member_joined_channel", "user": "UTECH", "channel": ro.channel_id})
    wait_until(lambda: "UTECH" in active(ro), message="rejoin recorded")
    assert Participant.select().where((Participant.ro == ro.id) & (Participant.user_id == "UTECH")).count() == 1


def test_the_owner_rejoining_keeps_the_owner_role(people, fake_slack, ro):
    people.client.event({"type": "member_left_channel", "user": "UADVISOR", "channel": ro.channel_id})
    wait_until(lambda: "UADVISOR" not in active(ro), message="leave recorded")
    people.client.event({"type": "member_joined_channel", "user": "UADVISOR", "channel": ro.channel_id})
    wait_until(lambda: "UADVISOR" in active(ro), message="rejoin recorded")
    assert Participant.get((Participant.ro == ro.id) & (Participant.user_id == "UADVISOR")).role == "owner"


def test_the_bot_joining_and_other_channels_are_ignored(people, fake_slack, ro):
    people.client.event({"type": "member_joined_channel", "user": fake_slack.bot_user_id, "channel": ro.channel_id})
    people.client.event({"type": "member_joined_channel", "user": "UPARTS", "channel": "CGENERAL"})
    people.settle()  # both events' listeners have run
    assert Participant.select().where(Participant.user_id.in_([fake_slack.bot_user_id, "UPARTS"])).count() == 0


# -- request an invitation ---------------------------------------------------------------------


def test_request_an_invitation_pushes_the_form(people, fake_slack, ro):
    people.action(
        "UTECH",
        ids.PARTICIPANTS_REQUEST_INVITE,
        InviteState(ro.id).encode(),
        view={
            "id": "V1",
            "type": "modal",
            "callback_id": ids.PARTICIPANTS_MODAL,
            "private_metadata": ParticipantsState(ro.id).encode(),
        },
    )
    view = fake_slack.wait_for("views.push")[0].args["view"]
    assert view["callback_id"] == ids.PARTICIPANTS_INVITE_MODAL and decode(view["private_metadata"], InviteState) == InviteState(
        ro.id
    )
    assert {b.get("block_id") for b in view["blocks"]} >= {
        views.NAME_BLOCK,
        views.EMAIL_BLOCK,
        views.ROLE_BLOCK,
        views.NOTE_BLOCK,
    }


def test_an_invitation_request_is_emailed_and_messaged_to_the_admins(people, fake_slack, ro, smtp):
    response = people.submit("UTECH", ids.PARTICIPANTS_INVITE_MODAL, InviteState(ro.id).encode(), invitation_state())
    assert response.status_code == 200 and response.text == ""  # back to the Participants modal
    wait_until(lambda: smtp.messages, message="the email")
    mail = smtp.parsed(0)
    assert smtp.messages[0]["to"] == ["alice.admin@dealer.example"]
    assert mail["Subject"] == "Invitation request: Nadia Roy <nadia@dealer.example>"
    body = mail.get_content()
    assert "Luc Martin asks you to invite" in body and "nadia@dealer.example" in body and "Technician" in body
    assert "Starts Monday" in body and "https://fake-dealership.slack.com/admin/invites" in body
    wait_until(lambda: dms_to(fake_slack, "UADMIN"), message="the admin's DM")
    dm = dms_to(fake_slack, "UADMIN")[0]["text"]
    assert "<@UTECH>" in dm and "Nadia Roy" in dm and "https://fake-dealership.slack.com/admin/invites" in dm
    wait_until(lambda: ephemerals_to(fake_slack, "UTECH"), message="the requester's note")
    assert "was sent to the admins (1)" in ephemerals_to(fake_slack, "UTECH")[0]["text"]
    saved = InvitationRequest.get()
    assert (saved.email, saved.requested_by, saved.ro_id, saved.emailed_to, saved.messaged_to) == (
        "nadia@dealer.example",
        "UTECH",
        ro.id,
        1,
        1,
    )


@pytest.mark.parametrize(
    "fields,block,message",
    [
        ({"name": "  "}, views.NAME_BLOCK, "Enter the person's name"),
        ({"email": "nadia@"}, views.EMAIL_BLOCK, "valid email address"),
        ({"email": "nadia roy@dealer.example"}, views.EMAIL_BLOCK, "valid email address"),
        ({"name": "N" * 101}, views.NAME_BLOCK, "under 100"),
        ({"note": "x" * 1001}, views.NOTE_BLOCK, "under 1000"),
        ({"role": "ceo"}, views.ROLE_BLOCK, "Choose a role"),
    ],
)
def test_a_bad_invitation_form_is_answered_in_the_form_and_nothing_sent(people, fake_slack, ro, smtp, fields, block, message):
    response = people.submit("UTECH", ids.PARTICIPANTS_INVITE_MODAL, InviteState(ro.id).encode(), invitation_state(**fields))
    body = response.json()
    assert body["response_action"] == "errors" and message in body["errors"][block]
    people.settle()  # the listener has finished: nothing was sent after the answer
    assert smtp.messages == [] and InvitationRequest.select().count() == 0 and dms_to(fake_slack, "UADMIN") == []


def test_the_configured_invite_link_wins(fake_slack, sqlite_url, tmp_path):
    from tests.support.harness import SlackTestClient
    from tests.support.people import PeopleApp, start_people_app

    fake_slack.add_user("UADMIN", "alice", email="alice.admin@dealer.example")
    running, probe = start_people_app(
        fake_slack,
        sqlite_url,
        tmp_path,
        ADMIN_SLACK_USER_IDS="UADMIN",
        SLACK_INVITE_URL="https://join.slack.com/t/dealer/shared_invite/abc",
    )
    try:
        app = PeopleApp(running, SlackTestClient(running.url, fake_slack), probe, fake_slack)
        app.submit("UTECH", ids.PARTICIPANTS_INVITE_MODAL, InviteState().encode(), invitation_state(role=""))
        wait_until(lambda: dms_to(fake_slack, "UADMIN"), message="the admin's DM")
        assert "https://join.slack.com/t/dealer/shared_invite/abc" in dms_to(fake_slack, "UADMIN")[0]["text"]
        assert fake_slack.calls_to("team.info") == []
        # No RO and no email configured: the note comes as a DM, and says Slack only is fine.
        wait_until(lambda: dms_to(fake_slack, "UTECH"), message="the requester's note")
        assert "was sent to the admins (1)" in dms_to(fake_slack, "UTECH")[0]["text"]
    finally:
        running.stop()


class TestWhenMailFails:
    @pytest.fixture
    def people_env(self, fake_slack):
        fake_slack.add_user("UADMIN", "alice", email="alice.admin@dealer.example")
        return {"ADMIN_SLACK_USER_IDS": "UADMIN", "SMTP_URL": closed_port_url("smtp")}

    def test_the_admins_still_get_the_dm_and_the_requester_is_told(self, people, fake_slack, ro):
        people.submit("UTECH", ids.PARTICIPANTS_INVITE_MODAL, InviteState(ro.id).encode(), invitation_state())
        wait_until(lambda: ephemerals_to(fake_slack, "UTECH"), message="the requester's note")
        assert "in Slack; the email could not be sent" in ephemerals_to(fake_slack, "UTECH")[0]["text"]
        assert "Nadia Roy" in dms_to(fake_slack, "UADMIN")[0]["text"]
        saved = InvitationRequest.get()
        assert saved.emailed_to == 0 and saved.messaged_to == 1 and saved.email_error == "unreachable"


class TestWithoutAdmins:
    @pytest.fixture
    def people_env(self):
        return {}

    def test_the_request_is_saved_and_the_requester_told_no_admin_is_set_up(self, people, fake_slack, ro):
        people.submit("UADVISOR", ids.PARTICIPANTS_INVITE_MODAL, InviteState(ro.id).encode(), invitation_state())
        wait_until(lambda: ephemerals_to(fake_slack, "UADVISOR"), message="the requester's note")
        assert "aucun administrateur n'est configuré" in ephemerals_to(fake_slack, "UADVISOR")[0]["text"]
        assert InvitationRequest.select().count() == 1
        assert fake_slack.calls_to("chat.postMessage") == []


def test_admins_flagged_in_the_app_are_reached_too(people, fake_slack, ro, smtp):
    from storage.models import StaffUser

    fake_slack.add_user("UBOSS", "boss", email="boss@dealer.example", locale="fr-CA")
    people.services.directory.get("UBOSS")
    StaffUser.update(is_admin=True).where(StaffUser.slack_user_id == "UBOSS").execute()
    people.submit("UTECH", ids.PARTICIPANTS_INVITE_MODAL, InviteState(ro.id).encode(), invitation_state())
    wait_until(lambda: len(smtp.messages) == 2, message="two emails")
    assert sorted(m["to"][0] for m in smtp.messages) == ["alice.admin@dealer.example", "boss@dealer.example"]
    french = next(smtp.parsed(i) for i in range(2) if smtp.messages[i]["to"] == ["boss@dealer.example"])
    assert french["Subject"].startswith("Demande d'invitation")


def test_a_line_break_in_the_name_cannot_add_mail_headers(people, fake_slack, ro, smtp):
    people.submit(
        "UTECH",
        ids.PARTICIPANTS_INVITE_MODAL,
        InviteState(ro.id).encode(),
        invitation_state(name="Nadia\r\nBcc: evil@example.com"),
    )
    wait_until(lambda: smtp.messages, message="the email")
    assert smtp.messages[0]["to"] == ["alice.admin@dealer.example"]
    assert smtp.parsed(0)["Bcc"] is None and "Invitation request: Nadia Bcc: evil" in " ".join(
        str(smtp.parsed(0)["Subject"]).split()
    )


def test_a_participant_list_too_long_for_the_modal_metadata_falls_back_to_the_current_one(people, fake_slack, ro):
    """Slack keeps 3000 characters of private_metadata: with hundreds of participants the list is
    left out and Update compares with the participants of the moment, as before."""
    many = [f"U{n:010d}" for n in range(300)]
    view = views.participants_modal(ro, many, "en-US")
    assert decode(view["private_metadata"], ParticipantsState) == ParticipantsState(ro.id, None)
    people.submit("UTECH", ids.PARTICIPANTS_MODAL, view["private_metadata"], users_state("UADVISOR", "UTECH", "UPARTS"))
    wait_until(lambda: ephemerals_to(fake_slack, "UTECH"), message="summary")
    assert active(ro) == {"UADVISOR", "UTECH", "UPARTS"}
    few = views.participants_modal(ro, ["UADVISOR", "UTECH"], "en-US")["private_metadata"]
    assert decode(few, ParticipantsState).shown == ("UADVISOR", "UTECH")
