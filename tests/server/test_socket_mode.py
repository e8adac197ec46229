"""Socket Mode end to end: envelopes from the fake WebSocket endpoint into the real app, answered
with acks and with Web API calls the fake Slack records."""

from __future__ import annotations

import uuid

import pytest

from tests.support.harness import command_payload, event_callback, start_app, wait_until


def home_opened(user: str = "UTECH", event_id: str | None = None) -> dict:
    event = {"type": "app_home_opened", "user": user, "channel": "D0000HOME", "tab": "home", "event_ts": "1700000000.000100"}
    return event_callback(event, event_id or f"Ev{uuid.uuid4().hex[:10].upper()}")


def command(fake_slack, text: str, user_id: str = "UTECH") -> dict:
    """A slash command's Socket Mode payload: the HTTP form's fields, as JSON."""
    return command_payload(fake_slack, text, user_id, is_enterprise_install="false")


def publishes_for(fake_slack, user: str) -> list:
    return [c for c in fake_slack.calls_to("views.publish") if c.args.get("user_id") == user]


def test_event_is_acked_and_processed(socket_app, fake_slack, fake_socket_mode):
    envelope = fake_socket_mode.push("events_api", home_opened("UTECH"))
    fake_socket_mode.wait_for_ack(envelope)
    fake_slack.wait_for("views.publish", predicate=lambda c: c.args.get("user_id") == "UTECH")


@pytest.mark.parametrize("kind", ["events_api", "slash_commands"])
def test_ack_does_not_wait_for_slow_work(socket_app, fake_slack, fake_socket_mode, kind):
    """The listener's Slack call is held at the fake (work under way, not finished): the envelope
    is acked all the same; released, the work finishes."""
    if kind == "events_api":
        held = fake_slack.hold("views.publish", seconds=60)
        envelope = fake_socket_mode.push(kind, home_opened("UTECH"))
    else:
        held = fake_slack.hold("users.info", seconds=60)  # /ro help reads the user's locale first
        envelope = fake_socket_mode.push(kind, command(fake_slack, "help"))
    assert held.arrived.wait(10), "the listener never started its work"
    fake_socket_mode.wait_for_ack(envelope)
    assert not held.answered.is_set()
    held.release()
    assert held.answered.wait(10)
    if kind == "events_api":
        fake_slack.wait_for("views.publish")
    else:
        answer = fake_slack.wait_for_response(1)[0]
        assert "/ro search" in answer["text"]


def test_redelivered_event_is_processed_once(socket_app, fake_slack, fake_socket_mode):
    payload = home_opened("UTECH", event_id="EvSOCKET1")
    first = fake_socket_mode.push("events_api", payload)
    fake_socket_mode.wait_for_ack(first)
    fake_slack.wait_for("views.publish")
    retry = fake_socket_mode.push("events_api", payload, retry_attempt=1, retry_reason="timeout")
    fake_socket_mode.wait_for_ack(retry)
    socket_app.settle()  # whatever the retry could have started has finished
    assert len(publishes_for(fake_slack, "UTECH")) == 1


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "closed"])
def test_reconnects_after_the_connection_drops(socket_app, fake_slack, fake_socket_mode, reset):
    fake_socket_mode.drop(reset=reset)
    fake_socket_mode.wait_for_connections(1, total=2)
    envelope = fake_socket_mode.push("events_api", home_opened("UTECH"))
    fake_socket_mode.wait_for_ack(envelope)
    fake_slack.wait_for("views.publish")


def test_reconnects_when_slack_says_disconnect(socket_app, fake_slack, fake_socket_mode):
    old = fake_socket_mode.open_connections()[0]
    fake_socket_mode.send_disconnect(old)
    fake_socket_mode.wait_for_connections(1, total=2)
    wait_until(lambda: not old.open, message="the client to close the old connection")
    assert fake_socket_mode.connection_count() == 1
    envelope = fake_socket_mode.push("events_api", home_opened("UTECH"))
    fake_socket_mode.wait_for_ack(envelope)
    fake_slack.wait_for("views.publish")


def test_malformed_envelopes_are_acked_and_skipped(socket_app, fake_slack, fake_socket_mode):
    fake_socket_mode.send_raw("this is not JSON")
    fake_socket_mode.send_raw('["a", "list"]')
    malformed = [
        fake_socket_mode.push("events_api", ["not", "an", "object"]),
        fake_socket_mode.push("events_api", "a string"),
        fake_socket_mode.push("events_api", {"type": "event_callback", "event_id": "EvNOEVENT"}),
        fake_socket_mode.push("events_api", {"type": "event_callback", "event": {"type": "app_home_opened"}, "event_id": 7}),
        fake_socket_mode.push("events_api", {"type": "event_callback", "event": "x", "event_id": "EvBADEVENT"}),
        fake_socket_mode.push("slash_commands", {"text": "help"}),
        fake_socket_mode.push("interactive", {"actions": "nope"}),
        fake_socket_mode.push("interactive", {"type": "block_actions", "actions": "nope", "user": "U1"}),
        fake_socket_mode.push("surprise", {"type": "whatever"}),
    ]
    for envelope in malformed:
        fake_socket_mode.wait_for_ack(envelope)
    # Still connected, still working: the next good envelope is processed.
    envelope = fake_socket_mode.push("events_api", home_opened("UTECH"))
    fake_socket_mode.wait_for_ack(envelope)
    fake_slack.wait_for("views.publish")
    socket_app.settle()
    assert len(fake_slack.calls_to("views.publish")) == 1
    assert fake_socket_mode.connection_count() == 1 and len(fake_socket_mode.connections) == 1


def test_reconnects_when_the_connection_goes_silent(fake_slack, fake_socket_mode, socket_env):
    """A path that dies without a reset or a close: no pong comes back, and the client must notice
    by itself (pinging every second here) and open a new connection."""
    from server.socket_mode import start_socket_mode

    app = start_app({**socket_env, "SOCKET_MODE_PING_SECONDS": "1"})
    connection = start_socket_mode(app.settings, app.bolt_app)
    try:
        [old] = fake_socket_mode.wait_for_connections(1)
        fake_socket_mode.silence(old)
        fake_socket_mode.wait_for_connections(1, total=2)
        wait_until(lambda: not old.open, timeout=20, message="the client to give up the silent connection")
        envelope = fake_socket_mode.push("events_api", home_opened("UTECH"))
        fake_socket_mode.wait_for_ack(envelope)
        fake_slack.wait_for("views.publish", predicate=lambda c: c.args.get("user_id") == "UTECH")
    finally:
        connection.stop()
        app.stop()
