"""The Slack Web API client the whole product uses: SLACK_API_URL, retries on 429/5xx/network."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)


def make_web_client(token: str | None, base_url: str, *, max_retries: int = 5, timeout: int = 30) -> WebClient:
    # RateLimitErrorRetryHandler sleeps for Slack's Retry-After, so a burst of channel creations
    # (tier 2, ~20/min) slows down instead of failing.
    handlers = [
        RateLimitErrorRetryHandler(max_retry_count=max_retries),
        ServerErrorRetryHandler(max_retry_count=3),
        ConnectionErrorRetryHandler(max_retry_count=3),
    ]
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=handlers)
