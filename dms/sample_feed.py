"""The bundled sample feed: a new install shows RO channels at once, dated around today.

The template writes dates as ``{day-1}``, ``{day+0}``, ``{day+2}``; rendering replaces them
with ISO dates relative to the day of the first start. The rendered file is then an ordinary
feed the shop may edit, so it is written once and never overwritten.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import date, timedelta
from pathlib import Path

TEMPLATE = Path(__file__).with_name("sample") / "feed_template.csv"
_DAY = re.compile(r"\{day([+-]\d+)\}")


def render_template(text: str, today: date) -> str:
    """Replace each ``{day±N}`` with the ISO date N days from ``today``."""
    return _DAY.sub(lambda m: (today + timedelta(days=int(m.group(1)))).isoformat(), text)


def ensure_sample_feed(target_path: Path, today: date) -> Path:
    """Render the sample feed to ``target_path`` unless it already exists; return the path."""
    target = Path(target_path)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    rendered = render_template(TEMPLATE.read_text(encoding="utf-8"), today)
    # Write-then-rename so a sync running at the same moment never reads half a file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(rendered)
        if target.exists():  # another process won the race: theirs stands
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target
