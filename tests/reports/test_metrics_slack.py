"""Metrics in Slack, end to end: `/ro metrics` and Home's Export to Excel send the requester a
workbook by DM (files.getUploadURLExternal + files.completeUploadExternal, read back with
openpyxl) with the top lines as its comment; refusals answer privately and send nothing; a
message deleted in Slack still counts."""

from __future__ import annotations

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from blocks import ids
from reports.metrics_rules import last_month, last_week
from storage import metric_events
from storage.db import database
from storage.models import StaffUser, TaskRecord
from tests.support.factories import make_ro
from tests.support.harness import wait_until
from tests.support.metrics import at, read_workbook, staff
from tests.support.people import answer, dms_to, open_home

TZ = ZoneInfo("America/Toronto")


@pytest.fixture
def people_env() -> dict:
    return {"ADMIN_SLACK_USER_IDS": "UADVISOR"}


def _seed(fake_slack) -> dict:
    """November 2026: Marie (French, admin) shared 3 pictures, 1 video and 2 messages; Luc (English)
    1 picture and 1 message. Written as the metrics' own record, as the app writes it."""
    staff("UADVISOR", "Marie Roy", locale="fr-CA")
    staff("UTECH", "Luc Martin", locale="en-US")
    ro = make_ro(fake_slack, ro_number="48213")
    done = [
        ("picture", "UADVISOR", "2026-11-02 15:00"),
        ("picture", "UADVISOR", "2026-11-03 15:00"),
        ("picture", "UADVISOR", "2026-11-15 15:00"),
        ("video", "UADVISOR", "2026-11-15 15:05"),
        ("message", "UADVISOR", "2026-11-03 14:00"),
        ("message", "UADVISOR", "2026-11-20 14:00"),
        ("picture", "UTECH", "2026-11-10 13:00"),
        ("message", "UTECH", "2026-11-10 13:05"),
    ]
    for n, (kind, user, when) in enumerate(done):
        metric_events.record(kind, f"{ro.id}:seed-{n}", at=at(when), user_id=user, ro_id=ro.id)
    return {"ro": ro}


@pytest.fixture
def shop(people, fake_slack):
    with database.connection_context():
        return _seed(fake_slack)


def _dm_channel(fake_slack, user: str) -> str:
    return next(c["id"] for c in fake_slack.channels.values() if c.get("is_im") and c.get("user") == user)


def _uploads(fake_slack) -> list[dict]:
    return [u for u in fake_slack.uploads if u["filename"].endswith(".xlsx")]


def _wait_upload(fake_slack, count: int = 1) -> list[dict]:
    return wait_until(lambda: len(_uploads(fake_slack)) >= count and _uploads(fake_slack), message=f"{count} workbook(s)")


def _today():
    return datetime.now(TZ).date()


def _no_upload_attempted(fake_slack) -> None:
    assert _uploads(fake_slack) == []
    assert fake_slack.calls_to("files.getUploadURLExternal") == []
    assert fake_slack.calls_to("files.completeUploadExternal") == []
    with database.connection_context():
        assert TaskRecord.select().where(TaskRecord.name == "metrics.send").count() == 0


def test_a_manager_gets_the_workbook_in_a_dm_with_the_top_lines_in_their_language(people, shop, fake_slack):
    response = people.client.command("metrics 2026-11-01 2026-11-30", user_id="UADVISOR")
    assert response.status_code == 200
    preparing = answer(fake_slack)
    assert "2026-11-01" in preparing["text"] and preparing.get("response_type", "ephemeral") == "ephemeral"
    [upload] = _wait_upload(fake_slack)
    people.settle()
    dm = _dm_channel(fake_slack, "UADVISOR")
    assert re.fullmatch(r"metrics-2026-11-01-2026-11-30-[0-9a-f]{6}\.xlsx", upload["filename"])
    # Slack's external upload: ask for a URL for this file, send the bytes, complete it into the DM.
    [asked] = fake_slack.calls_to("files.getUploadURLExternal")
    assert asked.args["filename"] == upload["filename"] and int(asked.args["length"]) == len(upload["content"])
    [completed] = fake_slack.calls_to("files.completeUploadExternal")
    assert completed.args["channel_id"] == dm and upload["channels"] == [dm]
    assert fake_slack.calls_to("conversations.open")[0].args["users"] == "UADVISOR"
    assert not fake_slack.calls_to("files.upload")  # the retired method
    # The top lines come with the file, in the same DM: the period, then the busiest first.
    comment = completed.args["initial_comment"]
    assert comment == upload["initial_comment"]
    assert "2026-11-01" in comment and "2026-11-30" in comment
    assert comment.index("Marie Roy") < comment.index("Luc Martin")
    out = read_workbook(upload["content"])
    assert out["header"][1] == "Photos internes" and out["header"][2] == "Vidéos internes"  # Marie reads French
    assert {row[0] for row in out["users"]} >= {"Marie Roy", "Luc Martin"}
    assert len(_uploads(fake_slack)) == 1


@pytest.mark.parametrize(
    ("words", "user", "period_of"),
    [
        ("last-week", "UTECH", last_week),
        ("Semaine dernière", "UADVISOR", last_week),
        ("last-month", "UTECH", last_month),
        ("mois-dernier", "UADVISOR", last_month),
    ],
)
def test_last_week_and_last_month_in_either_language(people, shop, fake_slack, words, user, period_of):
    with database.connection_context():
        StaffUser.update(can_see_metrics=True).where(StaffUser.slack_user_id == "UTECH").execute()
    people.client.command(f"metrics {words}", user_id=user)
    period = period_of(_today())
    assert period.start.isoformat() in answer(fake_slack)["text"] and period.end.isoformat() in answer(fake_slack)["text"]
    [upload] = _wait_upload(fake_slack)
    assert upload["filename"].startswith(f"metrics-{period.start.isoformat()}-{period.end.isoformat()}-")
    assert upload["channels"] == [_dm_channel(fake_slack, user)]


def test_home_shows_admins_the_months_lines_and_exports_on_a_click(people, shop, fake_slack):
    home = open_home(people, "UADVISOR")
    block_ids = [b.get("block_id") for b in home["blocks"]]
    assert "home_metrics_title" in block_ids and len(home["blocks"]) <= 100
    title = next(b for b in home["blocks"] if b.get("block_id") == "home_metrics_title")
    assert title["accessory"]["action_id"] == ids.METRICS_EXPORT
    before = len(fake_slack.calls_to("views.publish"))
    people.action(
        "UADVISOR", ids.METRICS_EXPORT, view={"id": "VHOME", "type": "home", "private_metadata": home["private_metadata"]}
    )
    [upload] = _wait_upload(fake_slack)
    assert upload["channels"] == [_dm_channel(fake_slack, "UADVISOR")]
    assert fake_slack.calls_to("files.completeUploadExternal")[0].args["channel_id"] == _dm_channel(fake_slack, "UADVISOR")
    people.settle()
    first = _today().replace(day=1).isoformat()
    assert any(first in m["text"] for m in dms_to(fake_slack, "UADVISOR"))  # "on its way", then the file
    assert len(fake_slack.calls_to("views.publish")) == before  # the tab is left as it was


def test_home_shows_metrics_to_people_an_admin_allowed_and_to_no_one_else(people, shop, fake_slack):
    home = open_home(people, "UTECH")
    assert "home_metrics_title" not in [b.get("block_id") for b in home["blocks"]]
    with database.connection_context():
        StaffUser.update(can_see_metrics=True).where(StaffUser.slack_user_id == "UTECH").execute()
    home = open_home(people, "UTECH")
    assert "home_metrics_title" in [b.get("block_id") for b in home["blocks"]]


def test_someone_not_allowed_is_told_and_nothing_is_sent(people, shop, fake_slack):
    people.client.command("metrics", user_id="UTECH")
    reply = answer(fake_slack)
    assert "admins" in reply["text"] and reply.get("response_type", "ephemeral") == "ephemeral"
    people.settle()
    _no_upload_attempted(fake_slack)


def test_an_export_click_after_the_permission_went_is_refused(people, shop, fake_slack):
    people.action("UTECH", ids.METRICS_EXPORT, view={"id": "VHOME", "type": "home", "private_metadata": ""})
    wait_until(lambda: dms_to(fake_slack, "UTECH"), message="a DM saying no")
    people.settle()
    assert "admins" in dms_to(fake_slack, "UTECH")[-1]["text"]
    _no_upload_attempted(fake_slack)


def test_an_allowed_person_gets_a_workbook_and_loses_it_when_the_admin_says_so(people, shop, fake_slack):
    with database.connection_context():
        StaffUser.update(can_see_metrics=True).where(StaffUser.slack_user_id == "UTECH").execute()
    people.client.command("metrics 2026-11-01 2026-11-30", user_id="UTECH")
    [upload] = _wait_upload(fake_slack)
    assert read_workbook(upload["content"])["header"][1] == "Internal pictures"  # Luc reads English
    with database.connection_context():
        StaffUser.update(can_see_metrics=False).where(StaffUser.slack_user_id == "UTECH").execute()
    people.client.command("metrics", user_id="UTECH")
    assert "admins" in answer(fake_slack, 2)["text"]
    people.settle()
    assert len(_uploads(fake_slack)) == 1


@pytest.mark.parametrize(
    ("text", "user", "says"),
    [
        ("metrics 2026-13-01", "UADVISOR", "2026-13-01"),  # not a date
        ("metrics yesterday", "UTECH", "last-week"),  # not a date; the English answer names the forms
        ("metrics <!channel>", "UADVISOR", "&lt;!channel&gt;"),
        ("metrics 2026-11-30 2026-11-01", "UADVISOR", "2026-11-30"),  # from after to
        ("metrics 2024-01-01 2026-11-30", "UADVISOR", "400"),  # over METRICS_MAX_DAYS
        ("metrics 2026-11-01 2026-11-02 2026-11-03", "UADVISOR", "semaine-derniere"),  # the French forms
        ("metrics last week please", "UTECH", "/ro metrics last-month"),
    ],
)
def test_bad_periods_get_a_clear_answer_and_no_workbook(people, shop, fake_slack, text, user, says):
    with database.connection_context():
        StaffUser.update(can_see_metrics=True).where(StaffUser.slack_user_id == "UTECH").execute()
    people.client.command(text, user_id=user)
    reply = answer(fake_slack)
    assert says in reply["text"] and reply.get("response_type", "ephemeral") == "ephemeral"
    assert "<!channel>" not in reply["text"]
    people.settle()
    _no_upload_attempted(fake_slack)


def test_a_new_attempt_after_a_crash_does_not_send_the_workbook_twice(people, shop, fake_slack):
    """An attempt that uploaded, then died before it was marked done, left its file in the DM: the
    next attempt (the same task, run again) finds it by name and uploads nothing."""
    people.client.command("metrics 2026-11-01 2026-11-30", user_id="UADVISOR")
    [upload] = _wait_upload(fake_slack)
    people.settle()
    with database.connection_context():
        record = TaskRecord.get(TaskRecord.name == "metrics.send")
        assert upload["filename"] in record.args
        people.services.tasks.enqueue(record.name, *json.loads(record.args), key="the-same-work-run-again")
    people.settle()
    with database.connection_context():
        again = TaskRecord.get(TaskRecord.key == "the-same-work-run-again")
        assert again.status == "done"
    assert len(_uploads(fake_slack)) == 1
    assert len(fake_slack.calls_to("files.completeUploadExternal")) == 1
    assert fake_slack.calls_to("files.list")  # it looked


def test_a_message_deleted_in_slack_still_counts(people, shop, fake_slack):
    """Luc's only activity this month is a message he then deleted: he is still in the top lines."""
    channel = shop["ro"].channel_id
    ts = people.say(channel, "pneus arrière à changer", user="UTECH")
    people.client.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "ts": f"{ts.split('.')[0]}.999999",
            "deleted_ts": ts,
            "previous_message": {"type": "message", "user": "UTECH", "text": "pneus arrière à changer", "ts": ts},
            "channel_type": "channel",
        }
    )
    people.settle()
    people.client.command("metrics", user_id="UADVISOR")
    [upload] = _wait_upload(fake_slack)
    assert "Luc Martin" in upload["initial_comment"]
