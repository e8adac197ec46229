"""Named Slack failures, so services branch on a code instead of parsing exceptions."""

from __future__ import annotations

from enum import StrEnum

from slack_sdk.errors import SlackApiError


class SlackErrorCode(StrEnum):
    NAME_TAKEN = "name_taken"
    ALREADY_IN_CHANNEL = "already_in_channel"
    NOT_IN_CHANNEL = "not_in_channel"
    CHANNEL_NOT_FOUND = "channel_not_found"
    USER_NOT_FOUND = "user_not_found"
    USERS_NOT_FOUND = "users_not_found"
    CANT_INVITE = "cant_invite"
    CANT_INVITE_SELF = "cant_invite_self"
    CANT_KICK_SELF = "cant_kick_self"
    USER_IS_BOT = "user_is_bot"
    USER_IS_DEACTIVATED = "user_is_deactivated"
    ALREADY_PINNED = "already_pinned"
    MESSAGE_NOT_FOUND = "message_not_found"
    IS_ARCHIVED = "is_archived"
    # chat.update in a frozen, archived or deleted channel (Slack's reference for chat.update).
    IS_INACTIVE = "is_inactive"
    RATELIMITED = "ratelimited"
    INVALID_AUTH = "invalid_auth"
    NOT_AUTHED = "not_authed"
    EXPIRED_TRIGGER = "expired_trigger_id"
    OTHER = "other"


class SlackError(Exception):
    """A Slack call that failed, with its code; the message never contains the token."""

    def __init__(self, method: str, code: str, detail: dict | None = None):
        self.method = method
        self.raw_code = code
        try:
            self.code = SlackErrorCode(code)
        except ValueError:
            self.code = SlackErrorCode.OTHER
        self.detail = detail or {}
        if "exception" in self.detail:
            # No answer at all (refused, timed out, DNS): say so, not just "other".
            super().__init__(f"Slack unreachable for {method} ({self.detail['exception']})")
        else:
            super().__init__(f"Slack {method} failed: {code}")

    @property
    def unanswered(self) -> bool:
        """No answer came (refused, timed out, cut): Slack may or may not have done it."""
        return "exception" in self.detail

    @classmethod
    def from_api_error(cls, method: str, error: SlackApiError) -> SlackError:
        data = getattr(error.response, "data", None) or {}
        code = data.get("error") if isinstance(data, dict) else None
        return cls(
            method, code or f"http_{getattr(error.response, 'status_code', 'error')}", data if isinstance(data, dict) else {}
        )
