"""Status rules, in the shop's time zone.

closed in the DMS, or deleted / cancelled there → completed (a removed RO leaves the
in-progress lists and is never rolled over at midnight); appointment today or earlier (or no appointment: the car is in
the shop) → in progress; appointment tomorrow or later → upcoming. A manual status holds until
the DMS changes that RO again.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from storage.values import COMPLETED, IN_PROGRESS, UPCOMING

# How people type them in `/ro status …` and `/ro all …` (English and French).
_WORDS = {
    IN_PROGRESS: ("in-progress", "in_progress", "inprogress", "progress", "en-cours", "encours", "en_cours"),
    UPCOMING: ("upcoming", "a-venir", "à-venir", "avenir", "a_venir", "à_venir"),
    COMPLETED: ("completed", "complete", "done", "closed", "termine", "terminé", "ferme", "fermé"),
}


def parse_status(text: str) -> str | None:
    word = (text or "").strip().lower().replace(" ", "-")
    for status, words in _WORDS.items():
        if word in words:
            return status
    return None


def computed_status(closed: bool, appointment_at: datetime | None, now: datetime, tz: ZoneInfo, *, removed: bool = False) -> str:
    if closed or removed:
        return COMPLETED
    if appointment_at is None:
        return IN_PROGRESS
    return IN_PROGRESS if _local_date(appointment_at, tz) <= _local_date(now, tz) else UPCOMING


def _local_date(moment: datetime, tz: ZoneInfo):
    if moment.tzinfo is None:
        raise ValueError("status rules need aware datetimes")
    return moment.astimezone(tz).date()
