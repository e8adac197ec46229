"""Tests for tests/fake_slack.py, driven through the real slack_sdk WebClient."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import (
    FixedValueRetryIntervalCalculator,
)
from slack_sdk.webhook import WebhookClient

from tests.fakes import slack_scopes
from tests.fakes.fake_slack import _API, RATE_TIERS, FakeSlack, validate_blocks

# The fake's own fixture (it fails a test whose fake crashed), not conftest's seeded one.

FAST = FixedValueRetryIntervalCalculator(fixed_internal=0.01)


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    # No retry handlers by default so each test sees Slack's raw answer.
    return WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url, retry_handlers=[])


def error_of(call, *args, **kwargs) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call(*args, **kwargs)
    return info.value


def checkbox_block(n_options: int, block_id: str = "b1") -> dict:
    options = [{"text": {"type": "plain_text", "text": f"o{i}"}, "value": str(i)} for i in range(n_options)]
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [{"type": "checkboxes", "action_id": "pick", "options": options}],
    }


def sections(n: int) -> list[dict]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": f"line {i}"}} for i in range(n)]


def modal(blocks: list[dict]) -> dict:
    return {"type": "modal", "title": {"type": "plain_text", "text": "RO"}, "blocks": blocks}


def option(text: str, value: str) -> dict:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def subtypes(messages: list[dict]) -> list:
    return [m.get("subtype") for m in messages]


# ---- transport & auth ------------------------------------------------------ #


def test_auth_test_and_token_errors(fake_slack: FakeSlack, client: WebClient) -> None:
    me = client.auth_test()
    assert (me["user_id"], me["team_id"]) == ("UBOT", "T0001")
    assert me.headers["Content-Type"] == "application/json; charset=utf-8"

    bad = WebClient(token="xoxb-wrong", base_url=fake_slack.api_url, retry_handlers=[])
    assert error_of(bad.auth_test).response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=fake_slack.api_url, retry_handlers=[])
    assert error_of(anonymous.auth_test).response["error"] == "not_authed"
    assert error_of(client.api_call, "nope.nothing").response["error"] == "unknown_method"

    # GET with a query-string token works too, and the call is recorded.
    raw = requests.get(fake_slack.api_url + "auth.test", params={"token": fake_slack.bot_token}, timeout=5)
    assert raw.json()["ok"] is True and raw.headers["Content-Type"] == "application/json; charset=utf-8"
    assert [c.ok for c in fake_slack.calls_to("auth.test")] == [True, False, False, True]


# ---- users ----------------------------------------------------------------- #


def test_users_info_lookup_and_paging(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.add_user("U1", "alice", email="Alice@Dealer.ca", locale="fr-CA")
    fake_slack.add_user("U2", "gone", email="gone@dealer.ca", deleted=True)
    for i in range(5):
        fake_slack.add_user(f"UX{i}", f"tech{i}")

    assert "locale" not in client.users_info(user="U1")["user"]
    assert client.users_info(user="U1", include_locale=True)["user"]["locale"] == "fr-CA"
    assert error_of(client.users_info, user="U404").response["error"] == "user_not_found"

    assert client.users_lookupByEmail(email="alice@dealer.ca")["user"]["id"] == "U1"
    assert error_of(client.users_lookupByEmail, email="nobody@dealer.ca").response["error"] == "users_not_found"
    assert error_of(client.users_lookupByEmail, email="gone@dealer.ca").response["error"] == "users_not_found"

    seen, cursor = [], None
    while True:
        page = client.users_list(limit=3, cursor=cursor)
        seen += [m["id"] for m in page["members"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == list(fake_slack.users)

    fake_slack.add_usergroup("S1", "service-advisors", ["U1"])
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1"]
    assert error_of(client.usergroups_users_list, usergroup="S404").response["error"] == "no_such_subteam"


# ---- conversations --------------------------------------------------------- #


@pytest.mark.parametrize(
    "name, error",
    [
        ("", "invalid_name_required"),
        ("x" * 81, "invalid_name_maxlength"),
        ("RO-1234", "invalid_name_specials"),
        ("ro 1234", "invalid_name_specials"),
        ("ro.1234", "invalid_name_specials"),
        ("--", "invalid_name_punctuation"),
    ],
)
def test_channel_name_rules(client: WebClient, name: str, error: str) -> None:
    assert error_of(client.conversations_create, name=name).response["error"] == error


def test_create_channel_and_name_taken(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.scopes += ("groups:write",)  # private channels; the manifest asks for public ones only
    created = client.conversations_create(name="ro-1234_civic", is_private=True)["channel"]
    assert created["id"].startswith("C") and created["is_private"] and created["creator"] == "UBOT"
    assert created["topic"] == {"value": "", "creator": "", "last_set": 0}
    assert fake_slack.members(created["id"]) == {"UBOT"}
    assert client.conversations_create(name="x" * 80)["ok"]

    assert error_of(client.conversations_create, name="ro-1234_civic").response["error"] == "name_taken"
    client.conversations_archive(channel=created["id"])
    # Archived channels keep their name reserved, as on Slack.
    assert error_of(client.conversations_create, name="ro-1234_civic").response["error"] == "name_taken"


def test_invite_semantics(fake_slack: FakeSlack, client: WebClient) -> None:
    for uid in ("U1", "U2", "U3"):
        fake_slack.add_user(uid, uid.lower())
    fake_slack.add_user("UOLD", "old", deleted=True)
    channel = fake_slack.add_channel("ro-1", members=["UBOT", "U1"])["id"]
    outsider = fake_slack.add_channel("ro-2", members=["U1"])["id"]

    assert error_of(client.conversations_invite, channel=outsider, users="U2").response["error"] == "not_in_channel"
    assert error_of(client.conversations_invite, channel="C404", users="U2").response["error"] == "channel_not_found"

    single = error_of(client.conversations_invite, channel=channel, users="U1").response
    assert single["error"] == "already_in_channel"
    assert single["errors"] == [{"user": "U1", "ok": False, "error": "already_in_channel"}]

    # One bad user fails the whole call and nobody is added (unless force=true).
    mixed = error_of(client.conversations_invite, channel=channel, users=["U1", "U2"]).response
    assert mixed["error"] == "already_in_channel" and [e["user"] for e in mixed["errors"]] == ["U1"]
    assert fake_slack.members(channel) == {"UBOT", "U1"}

    forced = client.conversations_invite(channel=channel, users="U1,U2", force=True)
    assert forced["errors"][0]["error"] == "already_in_channel"
    assert fake_slack.members(channel) == {"UBOT", "U1", "U2"}

    for users, error in [("UBOT", "cant_invite_self"), ("U404", "user_not_found"), ("UOLD", "cant_invite")]:
        assert error_of(client.conversations_invite, channel=channel, users=users).response["error"] == error

    assert client.conversations_invite(channel=channel, users="U3")["channel"]["num_members"] == 4
    assert error_of(client.conversations_kick, channel=channel, user="UBOT").response["error"] == "cant_kick_self"
    client.conversations_kick(channel=channel, user="U3")
    assert error_of(client.conversations_kick, channel=channel, user="U3").response["error"] == "not_in_channel"


def test_channel_listing_topic_join_and_dm(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.scopes += ("groups:read", "channels:join", "im:write")
    fake_slack.add_user("U1", "alice")
    public = fake_slack.add_channel("lobby", members=["U1"])["id"]
    hidden = fake_slack.add_channel("secret", members=["U1"], is_private=True)["id"]
    for i in range(3):
        fake_slack.add_channel(f"ro-{i}", members=["UBOT"])

    listed = client.conversations_list(types="public_channel,private_channel", limit=2)
    assert len(listed["channels"]) == 2 and listed["response_metadata"]["next_cursor"]
    all_ids = [
        c["id"] for page in client.conversations_list(types="public_channel,private_channel", limit=2) for c in page["channels"]
    ]
    assert public in all_ids and hidden not in all_ids  # private channels the bot is not in are invisible
    assert error_of(client.conversations_info, channel=hidden).response["error"] == "channel_not_found"

    assert error_of(client.conversations_setTopic, channel=public, topic="x").response["error"] == "not_in_channel"
    assert client.conversations_join(channel=public)["channel"]["is_member"]
    assert client.conversations_join(channel=public)["warning"] == "already_in_channel"
    assert error_of(client.conversations_setTopic, channel=public, topic="x" * 251).response["error"] == "too_long"
    topic = client.conversations_setTopic(channel=public, topic="2019 Civic")["channel"]["topic"]
    assert topic["value"] == "2019 Civic"

    dm = client.conversations_open(users="U1")["channel"]["id"]
    assert dm.startswith("D") and client.conversations_open(users="U1")["channel"]["id"] == dm
    posted = client.chat_postMessage(channel="U1", text="hi")  # a user ID posts into the DM
    assert posted["channel"] == dm and fake_slack.messages[dm][0]["text"] == "hi"


# ---- chat & pins ----------------------------------------------------------- #


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_rules_history_and_threads(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.add_user("U1", "alice")
    channel = fake_slack.add_channel("ro-1", members=["UBOT", "U1"])["id"]
    outsider = fake_slack.add_channel("ro-2", members=["U1"])["id"]

    assert error_of(client.chat_postMessage, channel=channel).response["error"] == "no_text"
    assert error_of(client.chat_postMessage, channel=outsider, text="x").response["error"] == "not_in_channel"
    assert error_of(client.chat_postMessage, channel="C404", text="x").response["error"] == "channel_not_found"

    parent = client.chat_postMessage(channel=channel, text="RO opened")
    reply = client.chat_postMessage(channel=channel, text="parts ordered", thread_ts=parent["ts"])
    assert float(reply["ts"]) > float(parent["ts"])
    history = client.conversations_history(channel=channel)["messages"]
    assert [m["text"] for m in history] == ["RO opened"] and history[0]["reply_count"] == 1
    replies = client.conversations_replies(channel=channel, ts=parent["ts"])["messages"]
    assert [m["text"] for m in replies] == ["RO opened", "parts ordered"]

    updated = client.chat_update(channel=channel, ts=parent["ts"], text="RO closed")
    assert updated["message"]["text"] == "RO closed"
    assert error_of(client.chat_update, channel=channel, ts="1.000001", text="x").response["error"] == "message_not_found"
    fake_slack.messages[channel].append({"type": "message", "user": "U1", "text": "mine", "ts": "1700000000.000001"})
    assert (
        error_of(client.chat_update, channel=channel, ts="1700000000.000001", text="x").response["error"] == "cant_update_message"
    )

    assert client.pins_add(channel=channel, timestamp=parent["ts"])["ok"]
    assert error_of(client.pins_add, channel=channel, timestamp=parent["ts"]).response["error"] == "already_pinned"
    assert fake_slack.pins[channel] == [parent["ts"]]

    fake_slack.add_user("U2", "bob")
    assert error_of(client.chat_postEphemeral, channel=channel, user="U2", text="psst").response["error"] == "user_not_in_channel"
    client.chat_postEphemeral(channel=channel, user="U1", text="psst")
    assert fake_slack.ephemerals[0]["user"] == "U1"

    client.conversations_archive(channel=channel)
    assert error_of(client.chat_postMessage, channel=channel, text="x").response["error"] == "is_archived"


def test_archived_channel_refuses_writes_until_unarchived(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.scopes += ("channels:join",)
    for uid in ("U1", "U2"):
        fake_slack.add_user(uid, uid.lower())
    channel = fake_slack.add_channel("ro-1", members=["UBOT", "U1"])["id"]
    other = fake_slack.add_channel("ro-2", members=["U1"])["id"]
    card = client.chat_postMessage(channel=channel, text="RO card")["ts"]
    client.conversations_archive(channel=channel)
    fake_slack.channels[other]["is_archived"] = True  # archived by someone else
    assert error_of(client.conversations_archive, channel=channel).response["error"] == "already_archived"

    # chat.update answers is_inactive (Slack's documented code for edits in archived channels).
    assert error_of(client.chat_update, channel=channel, ts=card, text="edited").response["error"] == "is_inactive"
    assert fake_slack.messages[channel][0]["text"] == "RO card" and "edited" not in fake_slack.messages[channel][0]
    refused = {
        "chat.postMessage": lambda: client.chat_postMessage(channel=channel, text="x"),
        "chat.postEphemeral": lambda: client.chat_postEphemeral(channel=channel, user="U1", text="x"),
        "pins.add": lambda: client.pins_add(channel=channel, timestamp=card),
        "conversations.setTopic": lambda: client.conversations_setTopic(channel=channel, topic="x"),
        "conversations.invite": lambda: client.conversations_invite(channel=channel, users="U2"),
        "conversations.leave": lambda: client.conversations_leave(channel=channel),
    }
    for method, call in refused.items():
        assert error_of(call).response["error"] == "is_archived", method
    # Archiving takes the app out (people stay, to read it), and Slack lets no bot token unarchive.
    assert fake_slack.pins[channel] == [] and fake_slack.members(channel) == {"U1"}
    assert [m["text"] for m in fake_slack.messages[channel]] == ["RO card"] and fake_slack.ephemerals == []
    assert error_of(client.conversations_join, channel=other).response["error"] == "is_archived"
    assert error_of(client.conversations_unarchive, channel=channel).response["error"] == "not_in_channel"

    fake_slack.channels[channel]["is_archived"] = False  # a person unarchived it and added the app back
    fake_slack._members[channel].append("UBOT")
    assert error_of(client.conversations_unarchive, channel=channel).response["error"] == "not_archived"
    assert client.chat_update(channel=channel, ts=card, text="edited")["message"]["text"] == "edited"
    assert client.pins_add(channel=channel, timestamp=card)["ok"]


def test_system_messages_are_written_like_slack(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.scopes += ("channels:join",)
    fake_slack.add_user("U1", "alice")
    channel = client.conversations_create(name="ro-1")["channel"]["id"]
    client.conversations_invite(channel=channel, users="U1")
    client.conversations_setTopic(channel=channel, topic="2019 Civic")
    client.conversations_setPurpose(channel=channel, purpose="RO 1")
    card = client.chat_postMessage(channel=channel, text="RO card")["ts"]
    client.chat_postMessage(channel=channel, text="in thread", thread_ts=card)
    client.pins_add(channel=channel, timestamp=card)
    client.conversations_kick(channel=channel, user="U1")

    join, invited, topic, purpose, _, _, pin, leave = fake_slack.messages[channel]
    assert {k: join[k] for k in ("type", "subtype", "user", "text")} == {
        "type": "message",
        "subtype": "channel_join",
        "user": "UBOT",
        "text": "<@UBOT> has joined the channel",
    }
    assert "bot_id" not in join  # Slack wrote it, not the app
    assert (invited["subtype"], invited["user"], invited["inviter"]) == ("channel_join", "U1", "UBOT")
    assert (topic["subtype"], topic["user"], topic["topic"], topic["text"]) == (
        "channel_topic",
        "UBOT",
        "2019 Civic",
        "set the channel topic: 2019 Civic",
    )
    assert (purpose["subtype"], purpose["purpose"]) == ("channel_purpose", "RO 1")
    assert (pin["subtype"], pin["user"], pin["item_type"], pin["text"]) == (
        "pinned_item",
        "UBOT",
        "C",
        "<@UBOT> pinned a message to this channel.",
    )
    assert (leave["subtype"], leave["user"], leave["text"]) == ("channel_leave", "U1", "<@U1> has left the channel")

    # History has them, newest first; a thread's replies do not.
    history = client.conversations_history(channel=channel)["messages"]
    assert subtypes(history) == [
        "channel_leave",
        "pinned_item",
        None,
        "channel_purpose",
        "channel_topic",
        "channel_join",
        "channel_join",
    ]
    replies = client.conversations_replies(channel=channel, ts=card)["messages"]
    assert [m["text"] for m in replies] == ["RO card", "in thread"]
    assert [m["text"] for m in fake_slack.messages_without_system(channel)] == ["RO card", "in thread"]
    assert [m["user"] for m in fake_slack.system_messages(channel, "channel_join")] == ["UBOT", "U1"]
    assert len(fake_slack.system_messages(channel)) == 6

    # Nobody may edit, delete or pin what Slack wrote, even when its `user` is the bot.
    assert error_of(client.chat_update, channel=channel, ts=pin["ts"], text="x").response["error"] == "cant_update_message"
    assert error_of(client.chat_delete, channel=channel, ts=topic["ts"]).response["error"] == "cant_delete_message"
    assert error_of(client.pins_add, channel=channel, timestamp=join["ts"]).response["error"] == "not_pinnable"

    # join / leave by the bot itself; seeding writes nothing unless asked.
    lobby = fake_slack.add_channel("lobby", members=["U1"])["id"]
    assert fake_slack.messages[lobby] == []
    client.conversations_join(channel=lobby)
    client.conversations_join(channel=lobby)  # already in: no second join
    assert client.conversations_leave(channel=lobby)["ok"]
    assert client.conversations_leave(channel=lobby)["not_in_channel"] is True
    assert [(m["subtype"], m["user"]) for m in fake_slack.messages[lobby]] == [
        ("channel_join", "UBOT"),
        ("channel_leave", "UBOT"),
    ]
    seeded = fake_slack.add_channel("seeded", members=["UBOT", "U1"], system_messages=True)["id"]
    assert [(m["subtype"], m["user"]) for m in fake_slack.messages[seeded]] == [("channel_join", "UBOT"), ("channel_join", "U1")]
    assert fake_slack.messages_without_system(seeded) == []


def test_block_validation_in_messages(fake_slack: FakeSlack, client: WebClient) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    assert client.chat_postMessage(channel=channel, text="ok", blocks=[checkbox_block(10)])["ok"]

    too_many_options = error_of(client.chat_postMessage, channel=channel, text="x", blocks=[checkbox_block(11)])
    assert too_many_options.response["error"] == "invalid_blocks"
    assert "options" in too_many_options.response["response_metadata"]["messages"][0]

    assert client.chat_postMessage(channel=channel, text="ok", blocks=sections(50))["ok"]
    assert error_of(client.chat_postMessage, channel=channel, text="x", blocks=sections(51)).response["error"] == "invalid_blocks"

    duplicate_ids = [checkbox_block(2, "same"), checkbox_block(2, "same")]
    assert (
        error_of(client.chat_postMessage, channel=channel, text="x", blocks=duplicate_ids).response["error"] == "invalid_blocks"
    )

    # Form-encoded blocks arrive as a JSON string and are decoded before validation and recording.
    form = {"token": fake_slack.bot_token, "channel": channel, "text": "x", "blocks": json.dumps(sections(2))}
    assert requests.post(fake_slack.api_url + "chat.postMessage", data=form, timeout=5).json()["ok"]
    assert fake_slack.calls_to("chat.postMessage")[-1].args["blocks"] == sections(2)


def test_validate_blocks_unit() -> None:
    long_text = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    select = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "pick"},
        "accessory": {
            "type": "static_select",
            "action_id": "a",
            "options": [{"text": {"type": "plain_text", "text": str(i)}, "value": str(i)} for i in range(101)],
        },
    }
    same_action = {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}},
            {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}},
        ],
    }
    assert validate_blocks(long_text, 50) is not None
    assert validate_blocks([select], 50) is not None
    assert validate_blocks([same_action], 50) is not None
    assert validate_blocks(json.dumps(sections(3)), 50) is None
    assert validate_blocks(sections(100), 100) is None


@pytest.mark.parametrize(
    "kind, initial_key",
    [
        ("checkboxes", "initial_options"),
        ("multi_static_select", "initial_options"),
        ("radio_buttons", "initial_option"),
        ("static_select", "initial_option"),
    ],
)
def test_initial_options_must_be_among_the_options(kind: str, initial_key: str) -> None:
    options = [option("Upcoming", "upcoming"), option("Completed", "completed")]

    def block(initial: object, groups: bool = False) -> list[dict]:
        element: dict = {"type": kind, "action_id": "pick", initial_key: initial}
        if groups and kind.endswith("static_select"):
            element["option_groups"] = [{"label": {"type": "plain_text", "text": "g"}, "options": options}]
        else:
            element["options"] = options
        return [{"type": "actions", "block_id": "b", "elements": [element]}]

    def initial(*chosen: dict) -> object:
        return list(chosen) if initial_key == "initial_options" else chosen[0]

    assert validate_blocks(block(initial(option("Completed", "completed"))), 50) is None
    assert validate_blocks(block(initial(option("Completed", "completed")), groups=True), 50) is None
    for wrong in (
        option("Done", "completed"),
        option("Completed", "done"),
        {"text": {"type": "mrkdwn", "text": "Completed"}, "value": "completed"},
    ):
        problem = validate_blocks(block(initial(wrong)), 50)
        assert problem and f"/blocks/0/elements/0/{initial_key}" in problem and "options" in problem
    if initial_key == "initial_options":
        problem = validate_blocks(block([option("Upcoming", "upcoming"), option("Other", "other")]), 50)
        assert problem and "initial_options/1" in problem
        assert validate_blocks(block(option("Upcoming", "upcoming")), 50) is not None  # not an array


def test_initial_options_and_users_through_the_api(fake_slack: FakeSlack, client: WebClient) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    select = {
        "type": "static_select",
        "action_id": "status",
        "options": [option("Upcoming", "upcoming")],
        "initial_option": option("Completed", "completed"),
    }
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "Status"}, "accessory": select}
    answer = error_of(client.chat_postMessage, channel=channel, text="x", blocks=[section]).response
    assert answer["error"] == "invalid_blocks" and "initial_option" in answer["response_metadata"]["messages"][0]
    view = modal([{"type": "input", "label": {"type": "plain_text", "text": "Status"}, "element": select}])
    view["submit"] = {"type": "plain_text", "text": "Save"}
    answer = error_of(client.views_open, trigger_id=fake_slack.new_trigger_id(), view=view).response
    assert answer["error"] == "invalid_arguments" and "initial_option" in answer["response_metadata"]["messages"][0]

    users = {"type": "multi_users_select", "action_id": "who", "initial_users": ["U1", 2]}
    view = modal([{"type": "input", "label": {"type": "plain_text", "text": "Who"}, "element": users}])
    view["submit"] = {"type": "plain_text", "text": "Save"}
    answer = error_of(client.views_open, trigger_id=fake_slack.new_trigger_id(), view=view).response
    assert answer["error"] == "invalid_arguments" and "initial_users" in answer["response_metadata"]["messages"][0]
    users["initial_users"] = ["U1", "U2"]
    assert client.views_open(trigger_id=fake_slack.new_trigger_id(), view=view)["ok"]

    # Checking initial options no longer skips a select's placeholder.
    select.update(initial_option=option("Upcoming", "upcoming"), placeholder={"type": "mrkdwn", "text": "Pick"})
    assert error_of(client.chat_postMessage, channel=channel, text="x", blocks=[section]).response["error"] == "invalid_blocks"


# ---- views ----------------------------------------------------------------- #


def test_views(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.add_user("U1", "alice")
    opened = client.views_open(trigger_id=fake_slack.new_trigger_id(), view=modal(sections(100)))["view"]
    assert fake_slack.views[opened["id"]]["blocks"] == sections(100)

    too_big = error_of(client.views_open, trigger_id=fake_slack.new_trigger_id(), view=modal(sections(101))).response
    assert too_big["error"] == "invalid_arguments" and "100" in too_big["response_metadata"]["messages"][0]
    assert error_of(client.views_open, trigger_id="", view=modal([])).response["error"] == "invalid_arguments"
    assert error_of(client.views_open, trigger_id="expired", view=modal([])).response["error"] == "expired_trigger_id"

    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(sections(1)))["view"]
    assert updated["hash"] != opened["hash"]
    stale = error_of(client.views_update, view_id=opened["id"], hash=opened["hash"], view=modal([]))
    assert stale.response["error"] == "hash_conflict"

    home = {"type": "home", "blocks": sections(2)}
    assert client.views_publish(user_id="U1", view=home)["view"]["type"] == "home"
    assert fake_slack.home_views["U1"]["blocks"] == sections(2)


def test_trigger_ids_are_issued_single_use_and_expire(fake_slack: FakeSlack, client: WebClient) -> None:
    trigger = fake_slack.new_trigger_id()
    assert re.fullmatch(r"\d+\.\d+\.[0-9a-f]+", trigger) and fake_slack.new_trigger_id() != trigger
    assert client.views_open(trigger_id=trigger, view=modal(sections(1)))["ok"]
    assert error_of(client.views_open, trigger_id=trigger, view=modal([])).response["error"] == "exchanged_trigger_id"
    assert error_of(client.views_push, trigger_id=trigger, view=modal([])).response["error"] == "exchanged_trigger_id"
    for made_up in ("trigger-1a2b3c4d", "12345.98765.abcd2358fdea"):
        assert error_of(client.views_open, trigger_id=made_up, view=modal([])).response["error"] == "invalid_trigger_id"
    assert error_of(client.views_push, trigger_id="expired", view=modal([])).response["error"] == "expired_trigger_id"

    # A view Slack refuses does not spend the trigger; pushing uses one just like opening.
    fresh = fake_slack.new_trigger_id()
    assert error_of(client.views_push, trigger_id=fresh, view=modal(sections(101))).response["error"] == "invalid_arguments"
    assert client.views_push(trigger_id=fresh, view=modal([]))["ok"]
    assert len(fake_slack.views) == 2

    fake_slack.trigger_ttl_seconds = 0.2
    late = fake_slack.new_trigger_id()
    time.sleep(0.3)
    assert error_of(client.views_open, trigger_id=late, view=modal([])).response["error"] == "expired_trigger_id"

    # Not strict: any id, reusable unless single_use_triggers.
    fake_slack.strict_triggers = False
    for _ in range(2):
        assert client.views_open(trigger_id="trigger-1a2b3c4d", view=modal([]))["ok"]
    fake_slack.single_use_triggers = True
    assert client.views_open(trigger_id="trigger-99", view=modal([]))["ok"]
    assert error_of(client.views_open, trigger_id="trigger-99", view=modal([])).response["error"] == "exchanged_trigger_id"


# ---- files ----------------------------------------------------------------- #


def test_file_download_needs_bearer_token(fake_slack: FakeSlack, client: WebClient) -> None:
    file = fake_slack.add_file("F1", "invoice.pdf", b"%PDF-1.7 data", "application/pdf", "pdf", "UBOT")
    info = client.files_info(file="F1")["file"]
    assert info["size"] == len(b"%PDF-1.7 data") and info["url_private"].startswith(fake_slack.url)

    auth = {"Authorization": f"Bearer {fake_slack.bot_token}"}
    good = requests.get(file["url_private_download"], headers=auth, timeout=5)
    assert good.status_code == 200 and good.content == b"%PDF-1.7 data"
    assert good.headers["Content-Type"] == "application/pdf"

    # The trap: a missing/wrong token is NOT an error status, it is an HTML login page.
    for headers in ({}, {"Authorization": "Bearer xoxb-wrong"}):
        trap = requests.get(file["url_private"], headers=headers, timeout=5)
        assert trap.status_code == 200 and trap.headers["Content-Type"].startswith("text/html")
        assert b"<html" in trap.content
    assert error_of(client.files_info, file="F404").response["error"] == "file_not_found"


def test_files_upload_v2_end_to_end(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.scopes += ("files:write",)
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    result = client.files_upload_v2(
        channel=channel, content=b"quote body", filename="quote.txt", title="Quote", initial_comment="Here is the quote"
    )
    file = result["file"]
    assert file["title"] == "Quote" and file["channels"] == [channel] and file["size"] == 10
    assert fake_slack.uploads[0]["content"] == b"quote body"
    assert fake_slack.uploads[0]["initial_comment"] == "Here is the quote"
    assert [c.method for c in fake_slack.calls] == ["files.getUploadURLExternal", "files.completeUploadExternal"]

    message = fake_slack.messages[channel][-1]
    assert message["text"] == "Here is the quote" and message["files"][0]["id"] == file["id"]
    downloaded = requests.get(
        client.files_info(file=file["id"])["file"]["url_private"],
        headers={"Authorization": f"Bearer {fake_slack.bot_token}"},
        timeout=5,
    )
    assert downloaded.content == b"quote body"

    outsider = fake_slack.add_channel("ro-2")["id"]
    assert (
        error_of(client.files_upload_v2, channel=outsider, content=b"x", filename="a.txt").response["error"] == "not_in_channel"
    )


# ---- fault injection & retries --------------------------------------------- #


def test_rate_limit_then_success_with_retry_handler(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)

    bare = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url, retry_handlers=[])
    limited = error_of(bare.chat_postMessage, channel=channel, text="x").response
    assert limited.status_code == 429 and limited["error"] == "ratelimited"
    assert limited.headers["Retry-After"] == "1"

    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    retrying = WebClient(
        token=fake_slack.bot_token, base_url=fake_slack.api_url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)]
    )
    assert retrying.chat_postMessage(channel=channel, text="x")["ok"]
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [429, 429, 200]
    assert len(fake_slack.messages[channel]) == 1


def test_conversations_create_tier_limit() -> None:
    with FakeSlack(enforce_rate_limits=True) as fake:
        fake.create_limit_per_minute = 2
        client = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
        client.conversations_create(name="a")
        client.conversations_create(name="b")
        limited = error_of(client.conversations_create, name="c").response
        assert limited.status_code == 429 and 55 <= int(limited.headers["Retry-After"]) <= 60
        assert fake.channel_by_name("c") is None


def test_every_tier_is_enforced_per_method() -> None:
    # A 30 s "minute": wide enough for 170 calls on a loaded machine, still a scaled window.
    with FakeSlack(enforce_rate_limits=True, rate_window_seconds=30) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
        fake.add_user("U1", "alice", email="alice@dealer.ca")
        channel = fake.add_channel("ro-1", members=["UBOT"])["id"]
        tiers = [
            ("conversations.setTopic", 20, lambda: client.conversations_setTopic(channel=channel, topic="t")),
            ("users.lookupByEmail", 50, lambda: client.users_lookupByEmail(email="alice@dealer.ca")),
            ("users.info", 100, lambda: client.users_info(user="U1")),
        ]
        for method, allowed, call in tiers:
            for _ in range(allowed):
                call()
            limited = error_of(call).response
            assert (limited.status_code, limited["error"]) == (429, "ratelimited"), method
            assert 1 <= int(limited.headers["Retry-After"]) <= 30
            assert [c.status for c in fake.calls_to(method)][-2:] == [200, 429]
        assert client.conversations_info(channel=channel)["ok"]  # each method has its own count
        assert not fake.server_errors


def test_rate_window_seconds_scales_retry_after() -> None:
    with FakeSlack(enforce_rate_limits=True, rate_window_seconds=2) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
        channel = fake.add_channel("ro-1", members=["UBOT"])["id"]
        for _ in range(20):  # tier 2: 20 calls per 2 s
            client.conversations_setTopic(channel=channel, topic="t")
        limited = error_of(client.conversations_setTopic, channel=channel, topic="t").response
        assert limited.status_code == 429 and limited.headers["Retry-After"] in ("1", "2")
        assert fake.channels[channel]["topic"]["value"] == "t" and len(fake.system_messages(channel)) == 20
        time.sleep(int(limited.headers["Retry-After"]) + 0.05)
        assert client.conversations_setTopic(channel=channel, topic="later")["ok"]


def test_post_message_is_limited_per_channel_with_bursts() -> None:
    with FakeSlack(enforce_rate_limits=True) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
        first = fake.add_channel("ro-1", members=["UBOT"])["id"]
        second = fake.add_channel("ro-2", members=["UBOT"])["id"]
        for n in range(fake.post_message_burst):
            client.chat_postMessage(channel=first, text=f"burst {n}")
        limited = error_of(client.chat_postMessage, channel=first, text="one too many").response
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= fake.post_message_burst
        assert len(fake.messages[first]) == fake.post_message_burst
        assert client.chat_postMessage(channel=second, text="another channel")["ok"]


def test_rate_limits_are_off_unless_enforced(fake_slack: FakeSlack, client: WebClient) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    for _ in range(25):
        client.conversations_setTopic(channel=channel, topic="t")
    fake_slack.create_limit_per_minute = 3  # the older knob is the conversations.create entry of rate_limits
    assert fake_slack.rate_limits["conversations.create"] == 3


def test_the_product_methods_have_their_documented_tiers() -> None:
    expected = {
        "conversations.create": 2,
        "conversations.invite": 3,
        "conversations.kick": 3,
        "conversations.setTopic": 2,
        "conversations.archive": 2,
        "conversations.unarchive": 2,
        "chat.update": 3,
        "chat.postEphemeral": 4,
        "pins.add": 2,
        "views.open": 4,
        "views.update": 4,
        "views.push": 4,
        "views.publish": 4,
        "files.getUploadURLExternal": 4,
        "files.completeUploadExternal": 4,
        "users.info": 4,
        "users.lookupByEmail": 3,
        "conversations.history": 3,
        "conversations.members": 4,
        "conversations.list": 2,
        "usergroups.users.list": 2,
        "conversations.info": 3,
        "users.list": 2,
        "team.info": 3,
        "files.info": 4,
    }
    assert {m: RATE_TIERS.get(m) for m in expected} == expected
    # Every method the fake answers has a tier, or is one of Slack's "special" ones.
    assert set(_API) - set(RATE_TIERS) == {"auth.test", "chat.postMessage", "chat.getPermalink"}


def test_server_error_is_retried(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    fake_slack.fail("chat.postMessage", times=2, status=503)
    retrying = WebClient(
        token=fake_slack.bot_token,
        base_url=fake_slack.api_url,
        retry_handlers=[ServerErrorRetryHandler(max_retry_count=2, interval_calculator=FAST)],
    )
    assert retrying.chat_postMessage(channel=channel, text="x")["ok"]
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [503, 503, 200]

    fake_slack.fail("auth.test", status=500)
    bare = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url, retry_handlers=[])
    assert error_of(bare.auth_test).response.status_code == 500


def test_fail_with_and_crash_after(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    bare = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url, retry_handlers=[])
    fake_slack.fail_with("chat.postMessage", "fatal_error")
    assert error_of(bare.chat_postMessage, channel=channel, text="x").response["error"] == "fatal_error"

    # Slack did the work but the answer never arrived.
    fake_slack.crash_after("chat.postMessage")
    with pytest.raises(ConnectionError):
        bare.chat_postMessage(channel=channel, text="once")
    assert [m["text"] for m in fake_slack.messages[channel]] == ["once"]
    assert fake_slack.calls_to("chat.postMessage")[-1].status == 0

    # slack_sdk's default ConnectionErrorRetryHandler retries that blindly: a duplicate post.
    fake_slack.crash_after("chat.postMessage")
    default_like = WebClient(
        token=fake_slack.bot_token,
        base_url=fake_slack.api_url,
        retry_handlers=[ConnectionErrorRetryHandler(interval_calculator=FAST)],
    )
    assert default_like.chat_postMessage(channel=channel, text="twice")["ok"]
    assert [m["text"] for m in fake_slack.messages[channel]] == ["once", "twice", "twice"]


# ---- scopes ---------------------------------------------------------------- #


def test_missing_scope_names_the_needed_and_the_provided_scopes() -> None:
    with FakeSlack(scopes=["chat:write", "channels:read"]) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
        fake.add_user("U1", "alice")
        channel = fake.add_channel("ro-1", members=["UBOT"])["id"]
        answer = error_of(client.users_info, user="U1").response
        assert {k: answer[k] for k in ("ok", "error", "needed", "provided")} == {
            "ok": False,
            "error": "missing_scope",
            "needed": "users:read",
            "provided": "chat:write,channels:read",
        }
        assert answer.headers["X-OAuth-Scopes"] == "chat:write,channels:read"
        assert answer.headers["X-Accepted-OAuth-Scopes"] == "users:read"
        assert error_of(client.pins_add, channel=channel, timestamp="1.0").response["needed"] == "pins:write"
        assert error_of(client.conversations_setTopic, channel=channel, topic="x").response["needed"] == "channels:manage"

        # Methods that need no scope, and ones this token has.
        assert client.auth_test()["ok"] and client.conversations_info(channel=channel)["ok"]
        ts = client.chat_postMessage(channel=channel, text="hi")["ts"]
        assert client.chat_getPermalink(channel=channel, message_ts=ts)["ok"]
        assert client.views_open(trigger_id=fake.new_trigger_id(), view=modal([]))["ok"]
        assert not fake.calls_to("users.info")[0].ok and fake.calls_to("users.info")[0].error == "missing_scope"


def test_scopes_depend_on_the_kind_of_conversation(fake_slack: FakeSlack, client: WebClient) -> None:
    assert fake_slack.scopes == slack_scopes.manifest_bot_scopes() and "chat:write" in fake_slack.scopes
    fake_slack.add_user("U1", "alice")
    public = fake_slack.add_channel("lobby", members=["U1"])["id"]
    assert client.conversations_create(name="ro-1")["ok"]  # channels:manage
    needs = {
        "groups:write": lambda: client.conversations_create(name="ro-2", is_private=True),
        "groups:read": lambda: client.conversations_list(types="public_channel,private_channel"),
        "channels:join": lambda: client.conversations_join(channel=public),
        "mpim:write": lambda: client.conversations_open(users="U1,U2"),  # a group DM (im:write, a DM, is in the manifest)
        "pins:read": lambda: client.pins_list(channel=public),
    }
    for scope, call in needs.items():
        answer = error_of(call).response
        assert (answer["error"], answer["needed"]) == ("missing_scope", scope)
        assert answer["provided"] == ",".join(fake_slack.scopes)
    assert client.conversations_list(types="public_channel")["ok"]
    assert client.conversations_open(users="U1")["ok"]  # im:write: the DM a metrics workbook is uploaded to

    # Posting to a public channel the bot is not in needs chat:write.public.
    assert error_of(client.chat_postMessage, channel=public, text="x").response["error"] == "not_in_channel"
    fake_slack.scopes += ("chat:write.public",)
    assert client.chat_postMessage(channel=public, text="x")["ok"]


def test_every_method_of_the_fake_has_a_scope_rule() -> None:
    assert set(_API) <= set(slack_scopes.METHOD_SCOPES)
    assert slack_scopes.scopes_for("conversations.history", "private") == ("groups:history",)
    assert slack_scopes.scopes_for("views.open") == () and slack_scopes.scopes_for("nope.nothing") == ()


def test_manifest_scopes_parser() -> None:
    manifest = """
features:
  bot_user:
    display_name: Bot   # not a scope
oauth_config:
  scopes:
    user:
      - search:read
    bot:
    - "chat:write"
    - 'pins:write'  # a comment
    - users:read
settings:
  bot: [not, these]
"""
    assert slack_scopes.parse_bot_scopes(manifest) == ("chat:write", "pins:write", "users:read")
    flow = 'oauth_config:\n  scopes:\n    bot: [chat:write, "team:read"]\n'
    assert slack_scopes.parse_bot_scopes(flow) == ("chat:write", "team:read")
    assert slack_scopes.parse_bot_scopes("display_information:\n  name: x\n") == ()


# ---- response_url & waiting ------------------------------------------------ #


def test_response_url_capture(fake_slack: FakeSlack) -> None:
    url = fake_slack.response_url()
    assert url.startswith(fake_slack.url + "response/")
    assert WebhookClient(url).send(text="Working on it", response_type="ephemeral").status_code == 200
    assert fake_slack.wait_for_response(1) == [{"text": "Working on it", "response_type": "ephemeral"}]
    assert fake_slack.responses_for(url) == fake_slack.responses
    assert fake_slack.response_url() != url

    for _ in range(4):
        requests.post(url, json={"text": "again"}, timeout=5)
    sixth = requests.post(url, json={"text": "too many"}, timeout=5)
    assert sixth.status_code == 404 and sixth.json()["error"] == "used_url"
    assert requests.post(fake_slack.response_url(), json={}, timeout=5).json()["error"] == "no_text"


def test_wait_for_returns_and_times_out_helpfully(fake_slack: FakeSlack, client: WebClient) -> None:
    client.auth_test()
    assert len(fake_slack.wait_for("auth.test", timeout=1)) == 1
    with pytest.raises(AssertionError) as info:
        fake_slack.wait_for("chat.postMessage", count=1, timeout=0.1)
    message = str(info.value)
    assert "chat.postMessage" in message and "auth.test -> ok (200)" in message

    fake_slack.reset_calls()
    assert fake_slack.calls == []


def test_fakes_started_together_are_isolated() -> None:
    fakes = [FakeSlack().start() for _ in range(5)]
    assert len({f.url for f in fakes}) == 5
    for fake in fakes:
        fake.stop()
