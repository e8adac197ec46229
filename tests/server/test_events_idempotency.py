"""Slack retries an event (same event_id, X-Slack-Retry-Num) when it thinks we were slow: process once."""

from __future__ import annotations

import threading

import pytest

from storage.models import ProcessedEvent
from tests.support.harness import SlackTestClient, wait_until


@pytest.fixture
def app_env(fake_slack, database_url, tmp_path):
    """These scenarios run on SQLite and on PostgreSQL (pool hygiene in Flask and Bolt threads)."""
    from tests.support.harness import make_env

    return make_env(fake_slack, database_url, tmp_path)


@pytest.fixture
def counting_app(app_env, fake_slack):
    """The real app with one extra listener that counts deliveries (stands in for a feature)."""
    import bot
    from core.config import load_settings
    from handlers.message_fanout import on_message
    from tests.support.harness import RunningApp

    settings = load_settings(app_env, require_slack=True)
    bot.open_storage(settings)
    services, bolt_app, flask_app = bot.build(settings)
    seen: list[str] = []
    lock = threading.Lock()

    def count(event, ro):
        with lock:
            seen.append(event["text"])

    on_message(bolt_app, count)  # after the features' handlers: it sees what they saw

    app = RunningApp(settings, flask_app, services, bolt_app)
    yield app, seen
    app.stop()


def test_retried_event_is_processed_once(counting_app, fake_slack):
    app, seen = counting_app
    client = SlackTestClient(app.url, fake_slack)
    event = {"type": "message", "user": "UTECH", "text": "hello", "channel": "C1", "ts": "1.1"}
    assert client.event(event, event_id="Ev0001").status_code == 200
    wait_until(lambda: seen, message="first delivery")
    for retry in (1, 2, 3):
        assert client.event(event, event_id="Ev0001", retry_num=retry).status_code == 200
    app.settle()  # every listener the retries could have started has finished
    assert seen == ["hello"]
    assert ProcessedEvent.select().where(ProcessedEvent.event_id == "Ev0001").count() == 1


def test_distinct_events_are_each_processed(counting_app, fake_slack):
    app, seen = counting_app
    client = SlackTestClient(app.url, fake_slack)
    for n in range(3):
        client.event({"type": "message", "user": "UTECH", "text": f"m{n}", "channel": "C1", "ts": f"1.{n}"}, event_id=f"EvX{n}")
    wait_until(lambda: len(seen) == 3, message="three deliveries")
    assert sorted(seen) == ["m0", "m1", "m2"]


def test_concurrent_duplicate_deliveries_run_once(counting_app, fake_slack):
    app, seen = counting_app
    client = SlackTestClient(app.url, fake_slack)
    event = {"type": "message", "user": "UTECH", "text": "race", "channel": "C1", "ts": "2.1"}
    threads = [
        threading.Thread(target=client.event, args=(event,), kwargs={"event_id": "EvRACE", "retry_num": n or None})
        for n in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    app.settle()
    assert seen == ["race"]
