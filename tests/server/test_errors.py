"""What a user sees when something goes wrong: a refusal in their language, an error id they can
quote to their admin (and the log line carrying it), and no Slack error for what we do not know."""

from __future__ import annotations

import json
import logging
import re

from blocks import ids
from blocks.codec import RoRef
from tests.support.factories import make_ro
from tests.support.harness import form_body, wait_until


def _action(slack, action_id: str, value: str = "", **fields):
    payload = {
        "type": "block_actions",
        "user": {"id": "UTECH"},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value}],
        **fields,
    }
    return slack.action(payload)


def test_a_listener_that_fails_tells_the_user_an_error_id_found_in_the_log(slack, fake_slack, running_app, caplog):
    ro = make_ro(fake_slack, members=("UTECH",))
    caplog.set_level(logging.ERROR)
    # A payload without the trigger id the Files button needs: the listener fails (KeyError).
    payload = {
        "type": "block_actions",
        "user": {"id": "UTECH"},
        "team": {"id": "T0001"},
        "channel": {"id": ro.channel_id},
        "actions": [{"type": "button", "action_id": ids.FILES_OPEN, "block_id": "b", "value": RoRef(ro.id).encode()}],
    }
    body = json.dumps({**payload, "response_url": fake_slack.response_url()})
    response = slack.post_raw(form_body({"payload": body}), "application/x-www-form-urlencoded")
    assert response.status_code == 200
    answer = wait_until(lambda: fake_slack.responses, message="the error answer")[-1]
    found = re.search(r"`([0-9a-f]{8})`", answer["text"])
    assert found, answer
    error_id = found.group(1)
    assert answer["response_type"] == "ephemeral" and "admin" in answer["text"]
    running_app.settle()
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is KeyError, "the traceback is logged under the id"


def test_a_button_no_listener_knows_is_answered_as_out_of_date(slack, fake_slack):
    response = _action(slack, "files.some_old_button", "x")
    assert response.status_code == 200
    answer = wait_until(lambda: fake_slack.responses, message="an answer")[-1]
    assert "out of date" in answer["text"] and answer["response_type"] == "ephemeral"


def test_a_home_tab_button_no_listener_knows_is_answered_in_a_dm(slack, fake_slack):
    """The Home tab has no response_url: the answer goes to the person's DM with the app."""
    from tests.support.people import dms_to

    response = _action(
        slack, "home.some_old_button", "x", view={"id": "V1", "type": "home"}, container={"type": "view"}, response_url=None
    )
    assert response.status_code == 200
    told = wait_until(lambda: dms_to(fake_slack, "UTECH"), message="the DM")
    assert "out of date" in told[-1]["text"] and fake_slack.responses == []


def test_a_form_no_listener_knows_is_replaced_by_a_notice(slack, fake_slack):
    response = slack.action(
        {
            "type": "view_submission",
            "user": {"id": "UTECH"},
            "team": {"id": "T0001"},
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": "someone_elses_modal",
                "private_metadata": "",
                "state": {"values": {}},
            },
        }
    )
    body = response.json()
    assert response.status_code == 200 and body["response_action"] == "update" and "out of date" in str(body["view"]["blocks"])


def test_an_event_nobody_listens_to_is_acknowledged(slack, running_app):
    response = slack.event({"type": "channel_rename", "channel": {"id": "C1", "name": "x"}})
    assert response.status_code == 200
    running_app.settle()


def test_a_refusal_is_in_the_users_language(slack, fake_slack):
    _action(slack, ids.SEND_RETRY, '{"v":1,"k":"send","send":"1"}', channel={"id": "C1"})  # tampered
    answer = wait_until(lambda: fake_slack.responses, message="an answer")[-1]
    assert "out of date" in answer["text"]  # Luc's Slack is in English
    fake_slack.responses.clear()
    payload = {
        "type": "block_actions",
        "user": {"id": "UADVISOR"},
        "team": {"id": "T0001"},
        "channel": {"id": "C1"},
        "actions": [{"type": "button", "action_id": ids.SEND_RETRY, "block_id": "b", "value": "garbage"}],
    }
    slack.action(payload)
    answer = wait_until(lambda: fake_slack.responses, message="an answer")[-1]
    assert "n'est plus à jour" in answer["text"]  # Marie's is in French


def test_a_form_whose_listener_fails_before_its_ack_shows_the_error_id_in_the_modal(slack, fake_slack, running_app, caplog):
    """No `user` in the submission: the Files form's listener fails (KeyError) before its ack. The
    guard answers Slack itself, with the error id in the modal, instead of a 500."""
    from blocks.codec import FilesState

    ro = make_ro(fake_slack, members=("UTECH",))
    caplog.set_level(logging.ERROR)
    view = {
        "id": "V1",
        "type": "modal",
        "callback_id": ids.FILES_MODAL,
        "private_metadata": FilesState(ro.id).encode(),
        "state": {"values": {}},
    }
    response = slack.action({"type": "view_submission", "team": {"id": "T0001"}, "view": view})
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "update"
    error_id = re.search(r"`([0-9a-f]{8})`", json.dumps(body["view"]["blocks"])).group(1)
    running_app.settle()
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is KeyError


def test_a_message_handler_that_fails_tells_the_author_and_the_others_still_run(slack, fake_slack, running_app, caplog):
    """One feature failing on a message logs an error id and tells the author, in the thread; the
    features after it still see the message."""
    from handlers.message_fanout import on_message

    ro = make_ro(fake_slack, members=("UTECH",))
    caplog.set_level(logging.ERROR)
    seen: list[str] = []

    def failing(event, ro):
        raise RuntimeError("boom")

    on_message(running_app.bolt_app, failing)
    on_message(running_app.bolt_app, lambda event, ro: seen.append(event["ts"]))
    response = slack.event(
        {"type": "message", "channel": ro.channel_id, "user": "UTECH", "text": "hi", "ts": "1.000100", "thread_ts": "1.000001"}
    )
    assert response.status_code == 200
    running_app.settle()
    assert seen == ["1.000100"]
    [note] = [c.args for c in fake_slack.calls_to("chat.postEphemeral") if c.args.get("user") == "UTECH"]
    assert note["channel"] == ro.channel_id and note["thread_ts"] == "1.000001"
    error_id = re.search(r"`([0-9a-f]{8})`", note["text"]).group(1)
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is RuntimeError
