"""A worker process SIGKILLed half-way through inviting a large @group: the next worker finishes
the work without inviting anyone twice.

Real processes (`python bot.py worker`), a real SIGKILL, the fake Slack holding the second batch's
conversations.invite in flight and carrying it out after the worker is gone."""

from __future__ import annotations

import collections

import pytest

from storage.models import Participant, TaskRecord
from tests.support.factories import make_ro
from tests.support.harness import SlackTestClient, make_env, start_app, wait_until
from tests.support.people import next_ts
from tests.support.processes import kill, stop, worker

CREW = [f"UCREW{n:04d}" for n in range(1100)]


@pytest.fixture
def web(fake_slack, sqlite_url, tmp_path):
    """The web process alone (no task workers in it): the group's task waits for a worker process."""
    env = make_env(fake_slack, sqlite_url, tmp_path)
    running = start_app(env, workers=0)
    yield running, env
    running.stop()


def test_a_worker_killed_mid_group_leaves_every_member_invited_once(web, fake_slack, tmp_path):
    running, env = web
    log = tmp_path / "workers.log"
    for user_id in CREW:
        fake_slack.add_user(user_id, user_id.lower())
    fake_slack.add_usergroup("S0CREW", "crew", CREW)
    ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",))
    # The second batch (the last 100) reaches Slack, and waits there.
    held = fake_slack.hold("conversations.invite", lambda args: len(str(args.get("users")).split(",")) == 100, seconds=120)
    SlackTestClient(running.url, fake_slack).event(
        {
            "type": "message",
            "channel": ro.channel_id,
            "user": "UTECH",
            "text": "<!subteam^S0CREW|@crew> all hands on the recall",
            "ts": next_ts(),
            "channel_type": "channel",
        }
    )

    first = worker(env, log)
    try:
        assert held.arrived.wait(120), "the first worker never reached the second batch:\n" + log.read_text()
        [claimed] = TaskRecord.select().where((TaskRecord.name == "participants.groups") & (TaskRecord.status == "running"))
        kill(first)
    finally:
        stop(first)
    held.release()  # Slack carries out the batch; nobody hears its answer
    assert held.answered.wait(30)
    assert set(CREW) <= fake_slack.members(ro.channel_id)
    recorded = Participant.select().where((Participant.ro == ro.id) & Participant.user_id.in_(CREW)).count()
    assert recorded == 1000, "the first batch was recorded before the kill, the second was not"

    second = worker(env, log)
    try:
        wait_until(
            lambda: TaskRecord.get_by_id(claimed.id).status in ("done", "failed"),
            timeout=120,
            message="the group task finished by the second worker",
        )
    finally:
        stop(second)
    record = TaskRecord.get_by_id(claimed.id)
    assert (record.status, record.attempts) == ("done", 2), log.read_text()
    active = {p.user_id for p in Participant.select().where((Participant.ro == ro.id) & (Participant.active == True))}
    assert set(CREW) <= active
    # Nobody invited twice: each member joined once, and the first batch was not sent again.
    joins = collections.Counter(m["user"] for m in fake_slack.system_messages(ro.channel_id, "channel_join"))
    assert all(joins[u] == 1 for u in CREW)
    sent = collections.Counter(u for c in fake_slack.calls_to("conversations.invite") for u in c.args["users"].split(","))
    assert all(sent[u] == 1 for u in CREW[:1000])
    assert [len(c.args["users"].split(",")) for c in fake_slack.calls_to("conversations.invite")] == [1000, 100, 100]
    assert fake_slack.ephemerals == []  # nobody refused: no note
