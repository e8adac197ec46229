"""Crontab lines read as cron reads them.

APScheduler 3.x's `CronTrigger.from_crontab` takes weekday numbers as 0 = Monday, where crontab
says 0 (and 7) = Sunday: "0 7 * * 1" would run on Tuesdays (agronholm/apscheduler#286, fixed only
in 4.0, which we do not use). We keep APScheduler's parser and hand it weekday names instead.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

# crontab's weekday numbers, 0..7 (0 and 7 are Sunday)
NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NUMERIC = re.compile(r"^(\*|\d)(?:-(\d))?(?:/(\d+))?$")


def crontab_trigger(line: str, timezone: tzinfo | None = None) -> CronTrigger:
    """A CronTrigger for a five-field crontab line; raises ValueError for a line cron would refuse."""
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab line has 5 fields (minute hour day month weekday), not {len(fields)}")
    fields[4] = _weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


def _weekdays(field: str) -> str:
    """Numeric parts of the weekday field as names ("1-5" → "mon,tue,wed,thu,fri"); names pass as they are."""
    parts = []
    for part in field.split(","):
        match = _NUMERIC.match(part)
        if not match or (match.group(1) == "*" and match.group(2)):
            parts.append(part)  # names (mon-fri), or something APScheduler will refuse with its own message
            continue
        first, last, step = match.groups()
        if first == "*":
            if not step:
                parts.append("*")
                continue
            start, end = 0, 6
        else:
            start = int(first)
            end = int(last) if last else (6 if step else start)
        if start > 7 or end > 7 or start > end:
            raise ValueError(f"weekday {part!r}: use 0-7 (0 and 7 are Sunday) or mon..sun")
        days = range(start, end + 1, int(step or 1))
        parts.append(",".join(dict.fromkeys(NAMES[d] for d in days)))
    return ",".join(parts)
