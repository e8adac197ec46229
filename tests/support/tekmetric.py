"""The Tekmetric connector pointed at the fake Tekmetric, as the DMS and spaces tests build it."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from dms.tekmetric import TekmetricConnector
from tests.fakes.fake_tekmetric import FakeTekmetric


def tekmetric_connector(fake: FakeTekmetric, tz: ZoneInfo, **overrides) -> TekmetricConnector:
    """Short time-outs and retry waits: the fake answers at once, or the test makes it fail."""
    options = dict(
        base_url=fake.url,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        shop_id=fake.shop_id,
        tz=tz,
        timeout=2,
        max_retry_wait=1.0,
    )
    options.update(overrides)
    return TekmetricConnector(**options)
