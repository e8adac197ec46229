"""User-visible text: one catalog per language (core/locales/<lang>.json), keys shared by all.

Staff see Slack's locale (French for fr-*, English otherwise); customers see their DMS language.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "fr")
_DIR = Path(__file__).with_name("locales")


@cache
def catalog(lang: str) -> dict[str, str]:
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def language_of(locale: str | None) -> str:
    """Slack locale ("fr-CA", "en-US") or DMS language ("fr") → catalog language."""
    return "fr" if (locale or "").lower().startswith("fr") else "en"


def t(key: str, locale: str | None = None, **values: object) -> str:
    lang = language_of(locale)
    text = catalog(lang).get(key)
    if text is None:
        # A key missing from one catalog must still show something readable, never crash a listener.
        text = catalog("en").get(key, key)
    return text.format(**values) if values else text
