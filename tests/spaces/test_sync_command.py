"""`python bot.py sync` and `sync --dry-run` as a DMS integrator would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.dms_feed import row, write_feed
from tests.support.harness import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]


def _bot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "DMS", "TEKMETRIC"))}
    clean.update(env, DOTENV_PATH=str(cwd / "absent.env"))
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args], env=clean, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_dry_run_needs_no_slack_and_shows_status_and_channel(tmp_path):
    feed = write_feed(
        tmp_path / "feed.csv",
        [
            row("48213", "2020-01-01T09:00"),
            row("48214", "2099-01-01T09:00", customer_last_name="Bélanger"),
            row("48215", mobile_phone="12"),
        ],
    )
    result = _bot(["sync", "--dry-run"], {"DMS_FILE": str(feed)}, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "48213" in out and "in_progress" in out and "#ro-48213-tremblay" in out
    assert "upcoming" in out and "#ro-48214-belanger" in out
    assert "skipped row" in out and "2 RO(s), 1 skipped" in out
    assert not (tmp_path / "data").exists()  # nothing written


def test_sync_prints_what_it_created_changed_and_skipped(fake_slack, tmp_path):
    feed = write_feed(tmp_path / "feed.csv", [row("48213"), row("", customer_last_name="X")])
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "DMS_FILE": str(feed),
    }
    first = _bot(["sync"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "1 created, 0 changed, 0 unchanged, 1 skipped" in first.stdout
    assert "created: 48213" in first.stdout and "Slack: 1 channel(s) created" in first.stdout
    second = _bot(["sync"], env, tmp_path)
    assert "0 created, 0 changed, 1 unchanged" in second.stdout
    assert "Slack: 0 channel(s) created, 0 card(s) posted, 0 card(s) updated" in second.stdout


def test_sync_with_the_dms_down_says_so_and_exits_1(fake_slack, tmp_path):
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "DMS_FILE": str(tmp_path / "missing.csv"),
    }
    result = _bot(["sync"], env, tmp_path)
    assert result.returncode == 1
    assert "DMS not read" in result.stdout and "Nothing was changed" in result.stdout
    assert "Traceback" not in result.stderr


def test_sync_without_slack_credentials_points_to_dry_run(tmp_path):
    result = _bot(["sync"], {"DMS_FILE": str(tmp_path / "x.csv")}, tmp_path)
    assert result.returncode == 2 and "SLACK_BOT_TOKEN" in result.stderr
    assert "sync --dry-run" in result.stderr


def test_reindex_rebuilds_search_keys(tmp_path):
    from storage import search_index as search
    from storage.db import database, open_database
    from storage.migrations import migrate
    from storage.models import RoSearchTerm
    from tests.support.factories import make_ro

    db = f"sqlite:///{tmp_path}/db.sqlite"
    open_database(db)
    migrate()
    with database.connection_context():
        make_ro(ro_number="48213", customer_last_name="Bélanger")
        RoSearchTerm.delete().execute()  # as after a restore without the search table
        assert search.find("belanger").items == []
    result = _bot(["reindex"], {"DATABASE_URL": db}, tmp_path)
    assert result.returncode == 0 and "1 repair order(s) reindexed." in result.stdout
    with database.connection_context():
        assert [ro.ro_number for ro in search.find("belanger").items] == ["48213"]


def test_dry_run_of_the_bundled_sample_writes_nothing(tmp_path):
    result = _bot(["sync", "--dry-run"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "20 RO(s), 0 skipped. Nothing was written (dry run)." in result.stdout
    assert not (tmp_path / "data").exists()
