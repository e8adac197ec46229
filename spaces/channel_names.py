"""Channel names: `ro-<ro number>-<customer last name slug>`, Slack's alphabet, at most 80 chars.

The RO number comes first so that truncation only ever shortens the name part; `name_taken`
moves to `-2`, `-3`… with the suffix kept inside the 80 characters.
"""

from __future__ import annotations

import re

from dms.normalize import slugify_name

MAX_LENGTH = 80


def _clean(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def channel_name(ro_number: str, last_name: str, attempt: int = 1) -> str:
    """attempt 1 is the plain name; attempt n > 1 appends `-n`."""
    number = _clean(ro_number) or "x"
    suffix = f"-{attempt}" if attempt > 1 else ""
    base = f"ro-{number}"[: MAX_LENGTH - len(suffix)]
    slug = slugify_name(last_name or "")
    room = MAX_LENGTH - len(base) - len(suffix) - 1
    if slug and room > 0:
        base = f"{base}-{slug[:room].rstrip('-')}"
    return base + suffix


def carries_number(name: str, ro_number: str) -> bool:
    """Whether a channel name is one of this RO number's (`ro-<number>`, then `-…` or nothing):
    an appointment's space (`ro-a1234-…`) no longer is once its RO number is written."""
    prefix = channel_name(ro_number, "")
    return name == prefix or name.startswith(prefix + "-")
