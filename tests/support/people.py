"""Fixtures and helpers for the people-and-search tests: the app with a probe that sees every
message event after the features did, and the Slack payloads people produce."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from tests.support.harness import RunningApp, SlackTestClient, make_env, wait_until

_ts = itertools.count(1)


def next_ts() -> str:
    """A fresh, realistic Slack message ts."""
    return f"{int(time.time())}.{next(_ts):06d}"


class Probe:
    """Subscribed last to message events: once it has seen a ts, every feature has handled it."""

    def __init__(self):
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, event: dict, ro) -> None:
        with self._lock:
            self.seen.add(str((event.get("message") or event).get("ts")))

    def wait(self, ts: str) -> None:
        wait_until(lambda: ts in self.seen, message=f"message {ts} handled")


class PeopleApp:
    def __init__(self, running: RunningApp, client: SlackTestClient, probe: Probe, fake):
        self.running, self.client, self.probe, self.fake = running, client, probe, fake
        self.services = running.services

    def settle(self) -> None:
        """Every listener started by the requests sent so far has finished, and the tasks they queued."""
        self.running.settle()

    def say(self, channel: str, text: str, user: str = "UADVISOR", wait: bool = True, **extra) -> str:
        """Post a message event as Slack does; returns its ts once every feature handled it."""
        ts = extra.pop("ts", None) or next_ts()
        self.client.event(
            {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts, "channel_type": "channel", **extra}
        )
        if wait:
            self.probe.wait(ts)
        return ts

    def edit(self, channel: str, before: str, after: str, user: str = "UADVISOR", **message_fields) -> str:
        ts = next_ts()
        self.client.event(
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": channel,
                "hidden": True,
                "ts": next_ts(),
                "message": {
                    "type": "message",
                    "user": user,
                    "text": after,
                    "ts": ts,
                    "edited": {"user": user, "ts": next_ts()},
                    **message_fields,
                },
                "previous_message": {"type": "message", "user": user, "text": before, "ts": ts},
            }
        )
        self.probe.wait(ts)
        return ts

    def action(
        self, user: str, action_id: str, value: str = "", *, view: dict | None = None, channel: str | None = None, **action_fields
    ):
        action = {"action_id": action_id, "block_id": "b", "type": "button", "value": value, **action_fields}
        payload: dict = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T0001"}, "actions": [action]}
        if view is not None:
            payload["view"] = view
            payload["container"] = {"type": "view", "view_id": view.get("id", "V0")}
        if channel:
            payload["channel"] = {"id": channel}
            payload["container"] = {"type": "message", "channel_id": channel}
        return self.client.action(payload)

    def submit(self, user: str, callback_id: str, private_metadata: str, values: dict):
        return self.client.action(
            {
                "type": "view_submission",
                "user": {"id": user},
                "team": {"id": "T0001"},
                "view": {
                    "id": "V0SUBMIT",
                    "type": "modal",
                    "callback_id": callback_id,
                    "private_metadata": private_metadata,
                    "state": {"values": values},
                },
            }
        )


def start_people_app(fake_slack, db_url: str, tmp_path, **env) -> tuple[RunningApp, Probe]:
    import bot
    from core.config import load_settings
    from handlers.message_fanout import on_message

    settings = load_settings(make_env(fake_slack, db_url, tmp_path, **env), require_slack=True)
    bot.open_storage(settings)
    services, bolt_app, flask_app = bot.build(settings)
    probe = Probe()
    on_message(bolt_app, probe)
    return RunningApp(settings, flask_app, services, bolt_app), probe


@pytest.fixture
def people_env() -> dict:
    """Extra environment for the app under test; tests override this fixture to configure it."""
    return {}


def _people_app(fake_slack, db_url: str, tmp_path, people_env):
    running, probe = start_people_app(fake_slack, db_url, tmp_path, **people_env)
    yield PeopleApp(running, SlackTestClient(running.url, fake_slack), probe, fake_slack)
    running.stop()


@pytest.fixture
def people(fake_slack, sqlite_url, tmp_path, people_env):
    yield from _people_app(fake_slack, sqlite_url, tmp_path, people_env)


@pytest.fixture
def people_any_db(fake_slack, database_url, tmp_path, people_env):
    """The app on each database (PostgreSQL when TEST_POSTGRES_URL is set). A module whose tests
    must run on both overrides `people` with it."""
    yield from _people_app(fake_slack, database_url, tmp_path, people_env)


def open_home(people: PeopleApp, user: str = "UADVISOR", view: dict | None = None) -> dict:
    """Open the Home tab as Slack does; the view the app published."""
    before = len(people.fake.calls_to("views.publish"))
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    if view:
        event["view"] = view
    people.client.event(event)
    return people.fake.wait_for("views.publish", count=before + 1)[-1].args["view"]


def answer(fake_slack, n: int = 1) -> dict:
    wait_until(lambda: len(fake_slack.responses) >= n, message="an answer through response_url")
    return fake_slack.responses[n - 1]


def ephemerals_to(fake_slack, user: str) -> list[dict]:
    return [e for e in fake_slack.ephemerals if e["user"] == user]


def dms_to(fake_slack, user: str) -> list[dict]:
    """Messages the bot posted in its DM with `user`."""
    channel = next((c["id"] for c in fake_slack.channels.values() if c.get("is_im") and c.get("user") == user), None)
    return list(fake_slack.messages.get(channel, [])) if channel else []
