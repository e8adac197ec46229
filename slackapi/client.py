"""The Slack Web API client the whole product uses: SLACK_API_URL, retries on 429/5xx/network."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

# Calls Slack may have carried out although the connection broke before its answer: sent again,
# they would post a second message. Their callers find what was done instead (a card, a thread,
# a note is looked up by its block id) and the task queue tries again.
NOT_REPEATABLE = ("chat.postMessage", "chat.postEphemeral", "files.completeUploadExternal", "conversations.create")
# Calls whose 5xx answer may hide work Slack did: a conversations.create repeated here would meet
# `name_taken` with no sign that the channel is ours. The publisher repeats it knowing that.
NOT_REPEATABLE_ON_5XX = ("conversations.create",)


class RepeatableConnectionErrorRetryHandler(ConnectionErrorRetryHandler):
    """slack_sdk's handler retries every call the same way; ours leaves out the calls that post."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if any(request.url.endswith("/" + method) for method in NOT_REPEATABLE):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


class RepeatableServerErrorRetryHandler(ServerErrorRetryHandler):
    """slack_sdk's 500/503 handler, leaving out the calls in NOT_REPEATABLE_ON_5XX."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if any(request.url.endswith("/" + method) for method in NOT_REPEATABLE_ON_5XX):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


def make_web_client(token: str | None, base_url: str, *, max_retries: int = 5, timeout: int = 30) -> WebClient:
    # RateLimitErrorRetryHandler sleeps for Slack's Retry-After, so a burst of channel creations
    # (tier 2, ~20/min) slows down instead of failing.
    handlers = [
        RateLimitErrorRetryHandler(max_retry_count=max_retries),
        RepeatableServerErrorRetryHandler(max_retry_count=3),
        RepeatableConnectionErrorRetryHandler(max_retry_count=3),
    ]
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=handlers)
