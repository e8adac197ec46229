"""A modal that only says something: a refusal, an out-of-date form."""

from __future__ import annotations

from blocks import ids, kit
from core.i18n import t


def notice_modal(text: str, locale: str | None, title_key: str = "error.title") -> dict:
    """`text`: mrkdwn the caller escaped."""
    return kit.modal(ids.NOTICE_MODAL, t(title_key, locale), [kit.section("⚠️ " + text)], close=t("files.modal.close", locale))
