"""The fakes' own tests get a bare fake Slack (no seeded users), still checked for internal errors."""

from __future__ import annotations

import pytest

from tests.conftest import stop_checked
from tests.fakes.fake_slack import FakeSlack


@pytest.fixture
def fake_slack():
    fake = FakeSlack().start()
    yield fake
    stop_checked(fake)
