"""Configuration: each problem names its variable and the fix; the command line exits 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_contract():
    settings = load_settings({}, require_slack=False)
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_url == "sqlite:///data/repair_orders.db"
    assert str(settings.media_dir) == "data/media"
    assert settings.public_url == "http://localhost:3000"
    assert settings.port == 3000
    assert settings.shop_timezone.key == "America/Toronto"
    assert settings.shop_name == "Service" and settings.shop_phone is None
    assert settings.dms == "file" and settings.dms_file_is_sample
    assert settings.sync_interval_minutes == 5
    assert settings.twilio_api_url == "https://api.twilio.com"
    assert not settings.sms_enabled and not settings.email_enabled


def test_missing_slack_credentials_name_the_variables():
    with pytest.raises(ConfigError) as error:
        load_settings({}, require_slack=True)
    text = str(error.value)
    assert "SLACK_BOT_TOKEN" in text and "SLACK_SIGNING_SECRET" in text


@pytest.mark.parametrize(
    "name,value,expected",
    [
        ("PORT", "eighty", "PORT"),
        ("PORT", "70000", "PORT"),
        ("SHOP_TIMEZONE", "Mars/Olympus", "SHOP_TIMEZONE"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL"),
        ("DMS", "cdk", "DMS"),
        ("SYNC_INTERVAL_MINUTES", "0", "SYNC_INTERVAL_MINUTES"),
        ("ADMIN_SLACK_USER_IDS", "U012ABC,marie", "ADMIN_SLACK_USER_IDS"),
        ("TWILIO_ACCOUNT_SID", "AC123", "TWILIO_AUTH_TOKEN"),
        ("SMTP_URL", "mail.example.com", "SMTP_URL"),
        ("DEFAULT_CAN_MESSAGE_CUSTOMERS", "maybe", "DEFAULT_CAN_MESSAGE_CUSTOMERS"),
        ("REPORT_CHANNEL", "#service-managers", "REPORT_CHANNEL"),
        ("REPORT_CRON", "every monday", "REPORT_CRON"),
        ("REPORT_CRON", "0 7 * * 8", "REPORT_CRON"),
        ("METRICS_MAX_DAYS", "-3", "METRICS_MAX_DAYS"),
    ],
)
def test_malformed_values_are_named(name, value, expected):
    with pytest.raises(ConfigError) as error:
        load_settings({name: value}, require_slack=False)
    assert any(expected in problem for problem in error.value.problems)


def test_tekmetric_requires_its_credentials():
    with pytest.raises(ConfigError) as error:
        load_settings({"DMS": "tekmetric"}, require_slack=False)
    problems = " ".join(error.value.problems)
    for name in ("TEKMETRIC_URL", "TEKMETRIC_CLIENT_ID", "TEKMETRIC_CLIENT_SECRET", "TEKMETRIC_SHOP_ID"):
        assert name in problems


def test_secret_values_never_appear_in_problems():
    with pytest.raises(ConfigError) as error:
        load_settings({"SLACK_BOT_TOKEN": "not-a-token-supersecret", "SLACK_SIGNING_SECRET": "s3cr3t"}, require_slack=True)
    assert "supersecret" not in str(error.value)


def _run_bot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "DMS", "TEKMETRIC", "TWILIO"))}
    clean.update(env)
    clean["DOTENV_PATH"] = str(cwd / "no.env")
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args], env=clean, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_command_line_exits_2_without_a_traceback(tmp_path):
    result = _run_bot(["web"], {"PORT": "not-a-port"}, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "SLACK_BOT_TOKEN" in result.stderr and "PORT" in result.stderr


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / "my.env").write_text("SHOP_NAME=Garage Tremblay\n")
    os.environ["DOTENV_PATH"] = str(tmp_path / "my.env")
    try:
        os.environ.pop("SHOP_NAME", None)
        settings = load_settings(require_slack=False)
        assert settings.shop_name == "Garage Tremblay"
    finally:
        os.environ.pop("DOTENV_PATH", None)
        os.environ.pop("SHOP_NAME", None)
