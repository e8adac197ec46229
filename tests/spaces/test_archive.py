"""Channels do not pile up: completed ROs' channels archived `ARCHIVE_AFTER_DAYS` after they
completed (a last note first), a batch per pass, resumed after a 429 without repeating anything;
unarchived when the DMS or `/ro reopen` reopens the RO; `bot.py archive [--dry-run]`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from core.config import ConfigError, load_settings
from dms.file_feed import FileFeedConnector
from server.scheduler import sync_once
from spaces import archive_rules
from spaces.archive_flow import archive_pass, due
from storage.models import RepairOrder, utcnow
from tests.support.dms_feed import row, write_feed
from tests.support.factories import make_ro
from tests.support.harness import make_env, wait_until

TZ = ZoneInfo("America/Toronto")
SYNC_NOW = datetime(2026, 11, 29, 7, 0, tzinfo=TZ)
# The archive job's clock is naive UTC, like the database: three weeks after the feed's closings.
LATER = datetime(2026, 11, 29, 12, 0) + timedelta(days=21)
ROOT = Path(__file__).resolve().parents[2]
CLOSED = dict(status="closed", closed_at="2026-11-29T16:00")


def run_sync(services, feed):
    return sync_once(services, FileFeedConnector(str(feed), TZ), SYNC_NOW)


def archived(fake_slack, channel_id: str) -> bool:
    return bool(fake_slack.channels[channel_id]["is_archived"])


def texts_in(fake_slack, channel_id: str) -> list[str]:
    return [m.get("text", "") for m in fake_slack.messages.get(channel_id, [])]


def notes_in(fake_slack, channel_id: str) -> list[str]:
    return [text for text in texts_in(fake_slack, channel_id) if "archiv" in text]


def a_minute_passes(fake_slack) -> None:
    """Slack's tier windows move on (the scheduler's next pass is a minute later)."""
    with fake_slack._lock:
        fake_slack._rate_windows.clear()


def completed_ros(fake_slack, count: int, first_day_ago: int = 800) -> list[RepairOrder]:
    """`count` ROs completed long ago, oldest first (one day apart), each with its channel."""
    now = utcnow()
    return [
        make_ro(
            fake_slack,
            ro_number=str(60000 + n),
            owner="UADVISOR",
            status="completed",
            status_changed_at=now - timedelta(days=first_day_ago - n),
        )
        for n in range(count)
    ]


# -- the setting and the rules ---------------------------------------------------------------------


def test_archive_after_days_defaults_to_14_and_is_validated(tmp_path):
    assert load_settings(make_env(None, "sqlite:///x.db", tmp_path)).archive_after_days == 14
    assert load_settings(make_env(None, "sqlite:///x.db", tmp_path, ARCHIVE_AFTER_DAYS="0")).archive_after_days == 0
    for bad in ("-1", "two weeks"):
        with pytest.raises(ConfigError, match="ARCHIVE_AFTER_DAYS"):
            load_settings(make_env(None, "sqlite:///x.db", tmp_path, ARCHIVE_AFTER_DAYS=bad))


def _ro(**fields):
    base = dict(
        status="completed",
        channel_id="C1",
        channel_archived_at=None,
        archived_by_app=False,
        dms_closed=False,
        status_manual=False,
        closed_at=None,
        status_changed_at=None,
    )
    return SimpleNamespace(**{**base, **fields})


def test_due_on_the_day_boundary_and_never_with_zero():
    now = datetime(2026, 12, 20, 12, 0)
    exactly = _ro(status_changed_at=now - timedelta(days=14))
    almost = _ro(status_changed_at=now - timedelta(days=14) + timedelta(seconds=1))
    assert archive_rules.is_due(exactly, now, 14)
    assert not archive_rules.is_due(almost, now, 14)
    assert not archive_rules.is_due(_ro(status_changed_at=now - timedelta(days=3000)), now, 0)
    assert not archive_rules.is_due(_ro(status="in_progress", status_changed_at=now - timedelta(days=30)), now, 14)
    assert not archive_rules.is_due(_ro(channel_id=None, status_changed_at=now - timedelta(days=30)), now, 14)
    assert not archive_rules.is_due(_ro(channel_archived_at=now, status_changed_at=now - timedelta(days=30)), now, 14)
    # Closed in the DMS long ago, first seen today: the DMS's closing time counts.
    backlog = _ro(dms_closed=True, closed_at=now - timedelta(days=700), status_changed_at=now)
    assert archive_rules.is_due(backlog, now, 14)
    # Completed by hand (again) today: that moment counts, not an old DMS closing.
    by_hand = _ro(dms_closed=True, status_manual=True, closed_at=now - timedelta(days=700), status_changed_at=now)
    assert not archive_rules.is_due(by_hand, now, 14)


def test_the_query_agrees_with_the_rules_on_the_boundary(db):
    """On SQLite and PostgreSQL: the completion time's SQL, the filter and the oldest-first order."""
    now = utcnow().replace(microsecond=0)
    channels = iter(range(1, 100))

    def ro(**fields):
        return make_ro(channel_id=f"C{next(channels):08d}", **fields)

    on_time = ro(status="completed", status_changed_at=now - timedelta(days=14))
    ro(status="completed", status_changed_at=now - timedelta(days=14) + timedelta(seconds=1))
    ro(status="in_progress", status_changed_at=now - timedelta(days=40))
    ro(status="completed", status_changed_at=now - timedelta(days=40), channel_archived_at=now)
    backlog = ro(status="completed", dms_closed=True, closed_at=now - timedelta(days=700), status_changed_at=now)
    by_hand = ro(
        status="completed", status_manual=True, dms_closed=True, closed_at=now - timedelta(days=900), status_changed_at=now
    )
    assert [r.id for r in due(now, 14, 15)] == [backlog.id, on_time.id]
    assert [r.id for r in due(now, 14, 1)] == [backlog.id]
    assert due(now, 0, 15) == []
    assert by_hand.id not in [r.id for r in due(now + timedelta(days=13), 14, 15)]


# -- archiving ---------------------------------------------------------------------------------


def test_a_completed_ro_gets_a_last_note_then_its_channel_is_archived(services, fake_slack, feed):
    write_feed(feed, [row("48213", **CLOSED)])
    run_sync(services, feed)
    ro = RepairOrder.get()
    assert ro.status == "completed" and not archived(fake_slack, ro.channel_id)
    fake_slack.reset_calls()
    assert archive_pass(services, LATER - timedelta(days=8)).archived == []  # 13 days: not yet
    assert fake_slack.calls == []
    report = archive_pass(services, LATER)
    assert report.archived == [("48213", "ro-48213-tremblay")] and not report.failed
    assert [c.method for c in fake_slack.calls if c.method != "users.info"] == ["chat.postMessage", "conversations.archive"]
    assert archived(fake_slack, ro.channel_id)
    assert notes_in(fake_slack, ro.channel_id) == [
        "Ce bon de travail est terminé depuis 14 jours : son canal est maintenant archivé. "
        "On le retrouve toujours avec `/ro search 48213` ; `/ro reopen 48213` le rouvre dans un nouveau canal qui renvoie à celui-ci."
    ]
    stored = RepairOrder.get()
    assert stored.archived_by_app and stored.channel_archived_at and stored.channel_id == ro.channel_id
    # The next pass has nothing to do, and a later sync leaves the archived channel quiet.
    fake_slack.reset_calls()
    assert archive_pass(services, LATER).archived == []
    write_feed(feed, [row("48213", vehicle_model="Accord", **CLOSED)])
    outcome = run_sync(services, feed)
    assert not outcome.publish.failed and archived(fake_slack, ro.channel_id)
    assert fake_slack.calls_to("conversations.unarchive") == [] and fake_slack.calls_to("chat.postMessage") == []


def test_a_backlog_drains_a_batch_per_pass_oldest_first_without_repeating(services, fake_slack):
    ros = completed_ros(fake_slack, 40)
    fake_slack.reset_calls()
    done: list[str] = []
    for expected in (15, 15, 10, 0):
        report = archive_pass(services)
        assert len(report.archived) == expected and not report.failed and report.stopped_early is None
        done += [number for number, _ in report.archived]
        a_minute_passes(fake_slack)
    assert done == [ro.ro_number for ro in ros]  # oldest first, each once
    archives = fake_slack.calls_to("conversations.archive")
    assert len(archives) == 40 and all(c.ok for c in archives)  # a pass of 15 stays inside tier 2
    assert len({c.args["channel"] for c in archives}) == 40
    assert all(len(notes_in(fake_slack, ro.channel_id)) == 1 for ro in ros)


def test_a_429_mid_pass_ends_it_and_the_next_pass_resumes_without_repeating(services, fake_slack):
    ros = completed_ros(fake_slack, 8)
    # Still limited after the client's own waits: the client here does not wait at all.
    services.slack.client.retry_handlers = [
        h for h in services.slack.client.retry_handlers if not isinstance(h, RateLimitErrorRetryHandler)
    ]
    fake_slack.rate_limits["conversations.archive"] = 3
    fake_slack.reset_calls()
    first = archive_pass(services)
    assert [n for n, _ in first.archived] == [ro.ro_number for ro in ros[:3]]
    assert first.stopped_early == "ratelimited" and first.failed == [(ros[3].ro_number, "ratelimited")]
    assert not archived(fake_slack, ros[3].channel_id) and len(notes_in(fake_slack, ros[3].channel_id)) == 1
    assert fake_slack.messages.get(ros[4].channel_id, []) == []  # nothing tried after the 429
    fake_slack.rate_limits["conversations.archive"] = 20
    a_minute_passes(fake_slack)
    second = archive_pass(services)
    assert [n for n, _ in second.archived] == [ro.ro_number for ro in ros[3:]] and second.stopped_early is None
    assert all(archived(fake_slack, ro.channel_id) for ro in ros)
    assert all(len(notes_in(fake_slack, ro.channel_id)) == 1 for ro in ros)  # no note twice
    archives = [c for c in fake_slack.calls_to("conversations.archive") if c.ok]
    assert len(archives) == 8 and len({c.args["channel"] for c in archives}) == 8


def test_a_channel_staff_archived_by_hand_stays_archived(services, fake_slack, feed):
    write_feed(feed, [row("48213", **CLOSED)])
    run_sync(services, feed)
    ro = RepairOrder.get()
    fake_slack.channels[ro.channel_id]["is_archived"] = True  # a workspace admin archived it
    fake_slack.reset_calls()
    report = archive_pass(services, LATER)
    assert report.archived == [] and report.left_alone == [("48213", "is_archived")]
    assert fake_slack.calls_to("conversations.archive") == []
    assert not RepairOrder.get().archived_by_app
    assert archive_pass(services, LATER).left_alone == []  # not tried again
    # Reopened in the DMS: the channel staff archived is left as it is.
    write_feed(feed, [row("48213")])
    run_sync(services, feed)
    assert archived(fake_slack, ro.channel_id) and RepairOrder.get().status == "in_progress"
    assert fake_slack.calls_to("conversations.unarchive") == []


# -- unarchiving ---------------------------------------------------------------------------------


def reopened_in_a_new_channel(fake_slack, old: RepairOrder) -> RepairOrder:
    """Slack refuses a bot's unarchive (not_in_channel): the reopened RO's new channel, checked."""
    [refused] = fake_slack.calls_to("conversations.unarchive")
    assert refused.error == "not_in_channel" and archived(fake_slack, old.channel_id)
    ro = RepairOrder.get_by_id(old.id)
    assert (
        ro.channel_id != old.channel_id and ro.channel_name == "ro-48213-tremblay-2" and not archived(fake_slack, ro.channel_id)
    )
    assert ro.replaced_channel_id is None and not ro.archived_by_app and ro.channel_archived_at is None and not ro.slack_dirty
    texts = texts_in(fake_slack, ro.channel_id)
    assert any(f"<#{old.channel_id}>" in text and "archiv" in text for text in texts), texts
    [card] = [m for m in fake_slack.messages[ro.channel_id] if m["ts"] == ro.card_ts]
    assert "En cours" in str(card["blocks"]) and card["ts"] in fake_slack.pins[ro.channel_id]
    assert fake_slack.members(ro.channel_id) >= {"UADVISOR"}, "its people are invited to the new channel"
    return ro


def test_a_dms_reopen_gives_the_ro_a_new_channel_that_links_the_archived_one(services, fake_slack, feed):
    write_feed(feed, [row("48213", **CLOSED)])
    run_sync(services, feed)
    archive_pass(services, LATER)
    old = RepairOrder.get()
    assert archived(fake_slack, old.channel_id) and "UBOT" not in fake_slack.members(old.channel_id)
    fake_slack.reset_calls()
    write_feed(feed, [row("48213")])  # open again in the DMS
    outcome = run_sync(services, feed)
    assert not outcome.publish.failed, outcome.publish.failed
    ro = reopened_in_a_new_channel(fake_slack, old)
    assert ro.status == "in_progress"
    # Completed again later: the new channel is archived in its turn, after its own note.
    write_feed(feed, [row("48213", status="closed", closed_at="2026-12-01T10:00")])
    run_sync(services, feed)
    assert archive_pass(services, LATER + timedelta(days=2)).archived == [("48213", "ro-48213-tremblay-2")]
    assert archived(fake_slack, ro.channel_id) and len(notes_in(fake_slack, old.channel_id)) == 1


def test_the_pass_unarchives_a_reopened_ro_whose_publish_has_not_run(services, fake_slack, feed):
    write_feed(feed, [row("48213", **CLOSED)])
    run_sync(services, feed)
    archive_pass(services, LATER)
    RepairOrder.update(status="in_progress", status_manual=True, slack_dirty=True).execute()
    old = RepairOrder.get()
    report = archive_pass(services, LATER)
    assert report.unarchived == [("48213", "ro-48213-tremblay-2")] and report.archived == []
    reopened_in_a_new_channel(fake_slack, old)


# -- /ro reopen -------------------------------------------------------------------------------------


@pytest.fixture
def archived_ro(running_app, fake_slack, tmp_path):
    feed = write_feed(Path(running_app.settings.dms_file), [row("48213", **CLOSED)])
    run_sync(running_app.services, feed)
    archive_pass(running_app.services, LATER)
    ro = RepairOrder.get()
    assert archived(fake_slack, ro.channel_id)
    fake_slack.reset_calls()
    return ro


def answer(fake_slack, n=1) -> dict:
    wait_until(lambda: len(fake_slack.responses) >= n, message="an ephemeral answer")
    return fake_slack.responses[n - 1]


def test_ro_reopen_gives_the_ro_a_new_channel_that_links_the_archived_one(slack, fake_slack, running_app, archived_ro):
    slack.command("reopen 48213", user_id="UTECH", channel_id="CGENERAL")
    said = answer(fake_slack)
    assert said["response_type"] == "ephemeral"
    assert said["text"] == (
        f"RO 48213 reopened: status In progress. Its space is back in a moment: a new channel that links "
        f"<#{archived_ro.channel_id}>, as Slack does not let apps unarchive channels."
    )
    running_app.settle()
    ro = reopened_in_a_new_channel(fake_slack, archived_ro)
    assert ro.status == "in_progress" and ro.status_manual
    assert fake_slack.calls_to("chat.update") == [], "the archived channel's card cannot change: the new channel has its own"


def test_ro_reopen_refuses_a_guest(slack, fake_slack, running_app, archived_ro):
    fake_slack.add_user("UGUEST", "gus", guest="multi")
    slack.command("reopen 48213", user_id="UGUEST", channel_id="CGENERAL")
    said = answer(fake_slack)
    assert said["response_type"] == "ephemeral" and said["text"] == "Guests cannot reopen repair orders. Ask a service advisor."
    running_app.settle()
    assert RepairOrder.get().status == "completed" and archived(fake_slack, archived_ro.channel_id)
    assert fake_slack.calls_to("conversations.unarchive") == []


def test_ro_reopen_of_an_unknown_number_says_so(slack, fake_slack, running_app, archived_ro):
    slack.command("reopen 99999", user_id="UTECH", channel_id="CGENERAL")
    said = answer(fake_slack)
    assert said["text"] == "No repair order 99999. Check the number, or find it with `/ro search`."
    slack.command("reopen", user_id="UTECH", channel_id="CGENERAL")
    assert answer(fake_slack, 2)["text"] == "Usage: `/ro reopen <RO number>`, e.g. `/ro reopen 48213`."
    running_app.settle()
    assert RepairOrder.get().status == "completed" and fake_slack.calls_to("conversations.unarchive") == []


def test_search_still_finds_an_archived_ro_and_links_its_channel(slack, fake_slack, archived_ro):
    slack.command("search 48213", user_id="UTECH", channel_id="CGENERAL")
    said = answer(fake_slack)
    assert "48213" in str(said) and archived_ro.channel_id in str(said)


# -- bot.py archive -------------------------------------------------------------------------------


def _bot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "DMS", "TEKMETRIC", "ARCHIVE"))}
    clean.update(env, DOTENV_PATH=str(cwd / "absent.env"))
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args], env=clean, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_bot_archive_dry_run_prints_and_changes_nothing_then_a_pass_archives(services, fake_slack, sqlite_url, tmp_path):
    old = make_ro(fake_slack, ro_number="48213", status="completed", status_changed_at=utcnow() - timedelta(days=30))
    make_ro(fake_slack, ro_number="48214", status="completed", status_changed_at=utcnow() - timedelta(days=2))
    fake_slack.reset_calls()
    env = make_env(fake_slack, sqlite_url, tmp_path)
    dry = _bot(["archive", "--dry-run"], env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would archive RO 48213 #ro-48213-tremblay" in dry.stdout and "48214" not in dry.stdout
    assert "1 would archive, 0 would unarchive. Nothing was changed (dry run)." in dry.stdout
    assert fake_slack.calls == [] and not archived(fake_slack, old.channel_id)
    assert RepairOrder.select().where(RepairOrder.channel_archived_at.is_null(False)).count() == 0
    real = _bot(["archive"], env, tmp_path)
    assert real.returncode == 0, real.stderr
    assert "archived RO 48213 #ro-48213-tremblay" in real.stdout and "1 archived, 0 unarchived" in real.stdout
    assert archived(fake_slack, old.channel_id)
    RepairOrder.update(status="in_progress").where(RepairOrder.id == old.id).execute()
    dry = _bot(["archive", "--dry-run"], env, tmp_path)
    assert "would unarchive RO 48213 #ro-48213-tremblay" in dry.stdout and archived(fake_slack, old.channel_id)
