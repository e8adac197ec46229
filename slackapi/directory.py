"""Staff profiles cached from `users.info`: locale, names, email, bot/deactivated flags.

The locale is read once per user (and refreshed daily) so answering a command costs no extra
Slack call in the common case.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from peewee import IntegrityError

from slackapi.errors import SlackError
from slackapi.service import SlackService
from storage.models import StaffUser, utcnow

log = logging.getLogger(__name__)
PROFILE_TTL = timedelta(hours=24)


class Directory:
    def __init__(self, slack: SlackService, admin_ids: tuple[str, ...] = ()):
        self.slack = slack
        self.admin_ids = admin_ids

    def get(self, user_id: str, *, refresh: bool = False) -> StaffUser:
        """The user's row, fetched from Slack when unknown or stale. Slack down → what we have."""
        user = StaffUser.get_or_none(StaffUser.slack_user_id == user_id)
        fresh = user is not None and user.profile_fetched_at and utcnow() - user.profile_fetched_at < PROFILE_TTL
        if fresh and not refresh:
            return user
        try:
            profile = self.slack.user_info(user_id)
        except SlackError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.raw_code)
            return user or StaffUser(slack_user_id=user_id, is_admin=user_id in self.admin_ids)
        return self.remember(profile)

    def remember(self, profile: dict) -> StaffUser:
        """Store a Slack user object (from users.info / users.lookupByEmail)."""
        user_id = profile["id"]
        fields = {
            "name": profile.get("name") or "",
            "real_name": profile.get("real_name") or (profile.get("profile") or {}).get("real_name") or "",
            "email": ((profile.get("profile") or {}).get("email") or "").lower() or None,
            "is_bot": bool(profile.get("is_bot")) or user_id == "USLACKBOT",
            "deleted": bool(profile.get("deleted")),
            "is_guest": bool(profile.get("is_restricted") or profile.get("is_ultra_restricted")),
        }
        if profile.get("locale"):
            # Only users.info with include_locale carries the locale: only that counts as a full fetch.
            fields["locale"] = profile["locale"]
            fields["profile_fetched_at"] = utcnow()
        updated = StaffUser.update(**fields).where(StaffUser.slack_user_id == user_id).execute()
        if not updated:
            try:
                StaffUser.create(slack_user_id=user_id, is_admin=user_id in self.admin_ids, **fields)
            except IntegrityError:  # another thread created it first
                StaffUser.update(**fields).where(StaffUser.slack_user_id == user_id).execute()
        return StaffUser.get(StaffUser.slack_user_id == user_id)

    def listing_scope(self, user_id: str | None) -> str | None:
        """Whose ROs a listing or search by `user_id` may show: None = every RO; a user id = only
        the ROs that user owns or takes part in. Guests get their own, and so does anyone Slack
        could not tell us about (a listing holds customers' names and phones: fail closed)."""
        if not user_id:
            return "?"  # nobody: a member no RO has
        user = self.get(user_id)
        return user_id if user.is_guest or user.profile_fetched_at is None else None

    def locale(self, user_id: str | None) -> str:
        if not user_id:
            return "en-US"
        return self.get(user_id).locale or "en-US"
