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
