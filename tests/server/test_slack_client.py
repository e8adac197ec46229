"""The product's Slack client survives Slack's 429 (honouring Retry-After) and passing 5xx errors."""

from __future__ import annotations

import time

import pytest

from slackapi.client import make_web_client
from slackapi.errors import SlackError, SlackErrorCode
from slackapi.service import SlackService
from tests.support.harness import BOT_TOKEN


@pytest.fixture
def service(fake_slack):
    return SlackService(make_web_client(BOT_TOKEN, fake_slack.api_url))


def test_rate_limited_call_waits_retry_after_then_succeeds(service, fake_slack):
    fake_slack.rate_limit("conversations.create", times=1, retry_after=1)
    started = time.monotonic()
    channel = service.create_channel("ro-1-test")
    assert channel["name"] == "ro-1-test"
    assert time.monotonic() - started >= 0.9
    statuses = [c.status for c in fake_slack.calls_to("conversations.create")]
    assert statuses == [429, 200]
    assert len([c for c in fake_slack.channels.values() if c["name"] == "ro-1-test"]) == 1


def test_server_errors_are_retried(service, fake_slack):
    fake_slack.fail("auth.test", times=2, status=503)
    assert service.auth_test()["user_id"] == fake_slack.bot_user_id


def test_slack_errors_come_out_named(service, fake_slack):
    service.create_channel("ro-2-dupe")
    with pytest.raises(SlackError) as error:
        service.create_channel("ro-2-dupe")
    assert error.value.code is SlackErrorCode.NAME_TAKEN
    assert BOT_TOKEN not in str(error.value)


def test_unreachable_slack_is_a_named_error_not_a_crash():
    service = SlackService(make_web_client(BOT_TOKEN, "http://127.0.0.1:9/api/", max_retries=0, timeout=2))
    with pytest.raises(SlackError) as error:
        service.auth_test()
    assert error.value.code is SlackErrorCode.OTHER
