"""`python bot.py check` says line by line what is fine and what is not, and exits non-zero on trouble."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.harness import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]


def _check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "DMS", "TEKMETRIC", "TWILIO", "SMTP"))
    }
    clean.update(env, DOTENV_PATH=str(cwd / "absent.env"))
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "check"], env=clean, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def _feed(tmp_path: Path) -> str:
    feed = tmp_path / "feed.csv"
    feed.write_text("ro_number,customer_last_name,status\n48213,Tremblay,open\n", encoding="utf-8")
    return str(feed)


def test_check_passes_when_everything_is_reachable(fake_slack, tmp_path):
    result = _check(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake_slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
            "DMS_FILE": _feed(tmp_path),
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] database" in result.stdout
    assert "[ok  ] Slack: auth.test ok" in result.stdout
    assert "[ok  ] DMS" in result.stdout
    assert "All checks passed." in result.stdout


def test_check_names_missing_values_and_unreachable_parts(fake_slack, tmp_path):
    result = _check(
        {
            "SLACK_BOT_TOKEN": "xoxb-wrong-token",
            "SLACK_API_URL": fake_slack.api_url,
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "DMS_FILE": str(tmp_path / "missing.csv"),
        },
        tmp_path,
    )
    assert result.returncode == 1
    out = result.stdout
    assert "[FAIL] configuration: SLACK_SIGNING_SECRET is missing" in out
    assert "[FAIL] database" in out
    assert "[FAIL] Slack" in out and "invalid_auth" in out
    assert "[FAIL] DMS" in out
    assert "xoxb-wrong-token" not in out and "Traceback" not in out + result.stderr


def _env(fake_slack, tmp_path: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "DMS_FILE": _feed(tmp_path),
    }


def _line(out: str, what: str) -> str:
    [line] = [line for line in out.splitlines() if line[7:].startswith(what + ":")]
    return line


def test_check_shows_the_queue_backlog_and_who_holds_the_leases(fake_slack, tmp_path):
    from datetime import timedelta

    from storage.db import database, open_database
    from storage.migrations import migrate
    from storage.models import Lease, TaskRecord, utcnow

    env = _env(fake_slack, tmp_path)
    quiet = _check(env, tmp_path)
    assert _line(quiet.stdout, "queue backlog") == "[ok  ] queue backlog: 0 queued, 0 waiting, 0 running"
    assert _line(quiet.stdout, "leases") == "[ok  ] leases: none held (no scheduler running, no sync or merge under way)"
    assert _line(quiet.stdout, "object storage").startswith("[ok  ] object storage: local folder")
    assert _line(quiet.stdout, "task queue") == "[ok  ] task queue: in the database (REDIS_URL unset)"

    open_database(env["DATABASE_URL"])
    migrate()
    with database.connection_context():
        now = utcnow()
        Lease.create(name="scheduler", holder="web-2:4711:abc", expires_at=now + timedelta(seconds=60))
        Lease.create(name="sync", holder="gone:1:x", expires_at=now - timedelta(minutes=5))  # expired: nobody's
        TaskRecord.create(name="send.deliver", status="running", run_after=now)
        TaskRecord.create(name="send.deliver", status="queued", run_after=now - timedelta(minutes=25))
        TaskRecord.create(name="files.copy", status="queued", run_after=now + timedelta(minutes=5))  # not due yet
    database.close()

    busy = _check(env, tmp_path)
    assert busy.returncode == 1, busy.stdout
    assert _line(busy.stdout, "leases") == "[ok  ] leases: scheduler by web-2:4711:abc"
    backlog = _line(busy.stdout, "queue backlog")
    assert backlog.startswith("[FAIL] queue backlog: 2 queued, 0 waiting, 1 running; the oldest due task has waited 2")
    assert backlog.endswith("min: is a worker running?")
