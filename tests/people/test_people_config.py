"""Settings of the people feature: NOTIFY_INTERVAL_MINUTES and SLACK_INVITE_URL."""

from __future__ import annotations

import pytest

from core.config import ConfigError, load_settings


def test_defaults():
    settings = load_settings({}, require_slack=False)
    assert settings.notify_interval_minutes == 5 and settings.slack_invite_url is None


def test_values_are_read():
    settings = load_settings({"NOTIFY_INTERVAL_MINUTES": "10", "SLACK_INVITE_URL": "https://join.slack.com/t/x/shared_invite/y"})
    assert settings.notify_interval_minutes == 10
    assert settings.slack_invite_url == "https://join.slack.com/t/x/shared_invite/y"


@pytest.mark.parametrize(
    "name,value",
    [
        ("NOTIFY_INTERVAL_MINUTES", "soon"),
        ("NOTIFY_INTERVAL_MINUTES", "0"),
        ("NOTIFY_INTERVAL_MINUTES", "100000"),
        ("SLACK_INVITE_URL", "join-us"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError) as error:
        load_settings({name: value})
    assert name in str(error.value)


def test_the_smtp_password_never_reaches_a_log(monkeypatch):
    """SMTP_URL carries a password (the invitation emails): it is masked like the other secrets."""
    import bot
    from core.logsafe import redact

    monkeypatch.setenv("SMTP_URL", "smtp://mailer:Kx9-smtp-pass@mail.example.com:587")
    bot._settings(require_slack=False)
    assert (
        redact("login failed for smtp://mailer:Kx9-smtp-pass@mail.example.com")
        == "login failed for smtp://mailer:***@mail.example.com"
    )
