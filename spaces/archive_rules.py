"""Which repair orders' channels the archive job archives, and when: pure rules, no I/O.

A completed RO's channel is archived `ARCHIVE_AFTER_DAYS` after the RO completed (0 = never).
When it completed: the DMS's closing time for an RO the DMS closed (a first sync of years of
closed ROs records them all today, but they completed long ago), else the moment its status
became completed (a manual completion, or a DMS without a closing time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from storage.values import COMPLETED

# Channels archived per pass. conversations.archive is Slack's tier 2 (about 20 calls a minute,
# shared with unarchive and everything else the app archives); a pass a minute at 15 leaves room
# for the rest, so a backlog of years drains over hours instead of in one burst.
BATCH = 15


def completed_at(ro) -> datetime | None:
    """When the RO completed (naive UTC, like the database), None when nothing says so."""
    if ro.dms_closed and not ro.status_manual and ro.closed_at:
        return ro.closed_at
    return ro.status_changed_at or ro.closed_at


def cutoff(now: datetime, days: int) -> datetime | None:
    """ROs completed at or before this moment are due; None when archiving is off (0 days)."""
    if days <= 0:
        return None
    return now - timedelta(days=days)


def is_due(ro, now: datetime, days: int) -> bool:
    """The RO's channel should be archived now: completed at least `days` ago, a channel, and not
    archived by us already."""
    limit = cutoff(now, days)
    if limit is None or ro.status != COMPLETED or not ro.channel_id or ro.channel_archived_at is not None:
        return False
    done = completed_at(ro)
    return done is not None and done <= limit


def needs_unarchive(ro) -> bool:
    """We archived the RO's channel and the RO is open again (the DMS or someone reopened it)."""
    return bool(ro.channel_id) and bool(ro.archived_by_app) and ro.status != COMPLETED
