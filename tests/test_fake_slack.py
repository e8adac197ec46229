"""Tests for tests/fake_slack.py, driven through the real slack_sdk WebClient."""

from __future__ import annotations

import json

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from tests.fake_slack import FakeSlack, fake_slack, validate_blocks  # noqa: F401  (fixture import)

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
    return {"type": "actions", "block_id": block_id,
            "elements": [{"type": "checkboxes", "action_id": "pick", "options": options}]}


def sections(n: int) -> list[dict]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": f"line {i}"}} for i in range(n)]


def modal(blocks: list[dict]) -> dict:
    return {"type": "modal", "title": {"type": "plain_text", "text": "RO"}, "blocks": blocks}


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
    fake_slack.add_user("U1", "alice")
    public = fake_slack.add_channel("lobby", members=["U1"])["id"]
    hidden = fake_slack.add_channel("secret", members=["U1"], is_private=True)["id"]
    for i in range(3):
        fake_slack.add_channel(f"ro-{i}", members=["UBOT"])

    listed = client.conversations_list(types="public_channel,private_channel", limit=2)
    assert len(listed["channels"]) == 2 and listed["response_metadata"]["next_cursor"]
    all_ids = [c["id"] for page in client.conversations_list(types="public_channel,private_channel", limit=2)
               for c in page["channels"]]
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
    assert error_of(client.chat_update, channel=channel, ts="1.000001", text="x").response["error"] == \
        "message_not_found"
    fake_slack.messages[channel].append({"type": "message", "user": "U1", "text": "mine", "ts": "1700000000.000001"})
    assert error_of(client.chat_update, channel=channel, ts="1700000000.000001", text="x").response["error"] == \
        "cant_update_message"

    assert client.pins_add(channel=channel, timestamp=parent["ts"])["ok"]
    assert error_of(client.pins_add, channel=channel, timestamp=parent["ts"]).response["error"] == "already_pinned"
    assert fake_slack.pins[channel] == [parent["ts"]]

    fake_slack.add_user("U2", "bob")
    assert error_of(client.chat_postEphemeral, channel=channel, user="U2", text="psst").response["error"] == \
        "user_not_in_channel"
    client.chat_postEphemeral(channel=channel, user="U1", text="psst")
    assert fake_slack.ephemerals[0]["user"] == "U1"

    client.conversations_archive(channel=channel)
    assert error_of(client.chat_postMessage, channel=channel, text="x").response["error"] == "is_archived"


def test_block_validation_in_messages(fake_slack: FakeSlack, client: WebClient) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    assert client.chat_postMessage(channel=channel, text="ok", blocks=[checkbox_block(10)])["ok"]

    too_many_options = error_of(client.chat_postMessage, channel=channel, text="x", blocks=[checkbox_block(11)])
    assert too_many_options.response["error"] == "invalid_blocks"
    assert "options" in too_many_options.response["response_metadata"]["messages"][0]

    assert client.chat_postMessage(channel=channel, text="ok", blocks=sections(50))["ok"]
    assert error_of(client.chat_postMessage, channel=channel, text="x", blocks=sections(51)).response["error"] == \
        "invalid_blocks"

    duplicate_ids = [checkbox_block(2, "same"), checkbox_block(2, "same")]
    assert error_of(client.chat_postMessage, channel=channel, text="x", blocks=duplicate_ids).response["error"] == \
        "invalid_blocks"

    # Form-encoded blocks arrive as a JSON string and are decoded before validation and recording.
    form = {"token": fake_slack.bot_token, "channel": channel, "text": "x", "blocks": json.dumps(sections(2))}
    assert requests.post(fake_slack.api_url + "chat.postMessage", data=form, timeout=5).json()["ok"]
    assert fake_slack.calls_to("chat.postMessage")[-1].args["blocks"] == sections(2)


def test_validate_blocks_unit() -> None:
    long_text = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    select = {"type": "section", "text": {"type": "mrkdwn", "text": "pick"},
              "accessory": {"type": "static_select", "action_id": "a",
                            "options": [{"text": {"type": "plain_text", "text": str(i)}, "value": str(i)}
                                        for i in range(101)]}}
    same_action = {"type": "actions", "elements": [
        {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}},
        {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}}]}
    assert validate_blocks(long_text, 50) is not None
    assert validate_blocks([select], 50) is not None
    assert validate_blocks([same_action], 50) is not None
    assert validate_blocks(json.dumps(sections(3)), 50) is None
    assert validate_blocks(sections(100), 100) is None


# ---- views ----------------------------------------------------------------- #


def test_views(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.add_user("U1", "alice")
    opened = client.views_open(trigger_id="123.456", view=modal(sections(100)))["view"]
    assert fake_slack.views[opened["id"]]["blocks"] == sections(100)

    too_big = error_of(client.views_open, trigger_id="123.456", view=modal(sections(101))).response
    assert too_big["error"] == "invalid_arguments" and "100" in too_big["response_metadata"]["messages"][0]
    assert error_of(client.views_open, trigger_id="", view=modal([])).response["error"] == "invalid_arguments"
    assert error_of(client.views_open, trigger_id="expired", view=modal([])).response["error"] == \
        "expired_trigger_id"

    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal(sections(1)))["view"]
    assert updated["hash"] != opened["hash"]
    stale = error_of(client.views_update, view_id=opened["id"], hash=opened["hash"], view=modal([]))
    assert stale.response["error"] == "hash_conflict"

    home = {"type": "home", "blocks": sections(2)}
    assert client.views_publish(user_id="U1", view=home)["view"]["type"] == "home"
    assert fake_slack.home_views["U1"]["blocks"] == sections(2)


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
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    result = client.files_upload_v2(channel=channel, content=b"quote body", filename="quote.txt", title="Quote",
                                    initial_comment="Here is the quote")
    file = result["file"]
    assert file["title"] == "Quote" and file["channels"] == [channel] and file["size"] == 10
    assert fake_slack.uploads[0]["content"] == b"quote body"
    assert fake_slack.uploads[0]["initial_comment"] == "Here is the quote"
    assert [c.method for c in fake_slack.calls] == ["files.getUploadURLExternal", "files.completeUploadExternal"]

    message = fake_slack.messages[channel][-1]
    assert message["text"] == "Here is the quote" and message["files"][0]["id"] == file["id"]
    downloaded = requests.get(client.files_info(file=file["id"])["file"]["url_private"],
                              headers={"Authorization": f"Bearer {fake_slack.bot_token}"}, timeout=5)
    assert downloaded.content == b"quote body"

    outsider = fake_slack.add_channel("ro-2")["id"]
    assert error_of(client.files_upload_v2, channel=outsider, content=b"x", filename="a.txt").response["error"] == \
        "not_in_channel"


# ---- fault injection & retries --------------------------------------------- #


def test_rate_limit_then_success_with_retry_handler(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)

    bare = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url, retry_handlers=[])
    limited = error_of(bare.chat_postMessage, channel=channel, text="x").response
    assert limited.status_code == 429 and limited["error"] == "ratelimited"
    assert limited.headers["Retry-After"] == "1"

    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    retrying = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url,
                         retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
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


def test_server_error_is_retried(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel("ro-1", members=["UBOT"])["id"]
    fake_slack.fail("chat.postMessage", times=2, status=503)
    retrying = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url,
                         retry_handlers=[ServerErrorRetryHandler(max_retry_count=2, interval_calculator=FAST)])
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
    with pytest.raises(Exception):
        bare.chat_postMessage(channel=channel, text="once")
    assert [m["text"] for m in fake_slack.messages[channel]] == ["once"]
    assert fake_slack.calls_to("chat.postMessage")[-1].status == 0

    # slack_sdk's default ConnectionErrorRetryHandler retries that blindly: a duplicate post.
    fake_slack.crash_after("chat.postMessage")
    default_like = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url,
                             retry_handlers=[ConnectionErrorRetryHandler(interval_calculator=FAST)])
    assert default_like.chat_postMessage(channel=channel, text="twice")["ok"]
    assert [m["text"] for m in fake_slack.messages[channel]] == ["once", "twice", "twice"]


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
