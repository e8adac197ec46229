"""The sync and the publisher meet Slack's rate tiers here, on every write method (the fake's
windows scaled down to 3 s so a test that crosses a limit waits seconds, not a minute)."""

from __future__ import annotations

import pytest

from tests.conftest import started_fake_slack, stop_checked


@pytest.fixture
def fake_slack():
    fake = started_fake_slack(enforce_rate_limits=True, rate_window_seconds=3)
    yield fake
    stop_checked(fake)
