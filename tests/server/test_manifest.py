"""What the Slack app manifest promises people, checked against what the app listens to."""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST = (Path(__file__).resolve().parents[2] / "manifest.yml").read_text(encoding="utf-8")


def _setting(name: str) -> str:
    found = re.search(rf"^\s*{re.escape(name)}:\s*([^\s#]+)", MANIFEST, re.MULTILINE)
    assert found, f"{name} missing from manifest.yml"
    return found.group(1)


def _bot_events() -> list[str]:
    block = MANIFEST.split("bot_events:", 1)[1]
    return re.findall(r"^\s*-\s*([\w.]+)", block.split("interactivity:", 1)[0], re.MULTILINE)


def test_nobody_can_write_to_the_app_where_nothing_reads_it():
    """The app's Messages tab carries its DMs (notifications, answers); what a person typed there
    would vanish unless message.im is subscribed, so the tab is read-only."""
    if _setting("messages_tab_enabled") == "true" and "message.im" not in _bot_events():
        assert _setting("messages_tab_read_only_enabled") == "true"
