"""How times, dates, sizes and phone numbers read, in the reader's language (fr/en).

Shared by the Slack views, the customer page and customer texts, so a date reads the same
everywhere. Stored times are naive UTC (storage convention); these take the shop's zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from core.i18n import language_of

_DAYS = {"en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "fr": ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."]}
_SHORT_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "fr": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."],
}
_MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "fr": [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
}


def _local(value: datetime, tz: ZoneInfo) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(tz)


def when(value: datetime | None, tz: ZoneInfo, locale: str | None) -> str:
    """A stored UTC time as the shop reads it: "Mon Nov 30, 09:15" / "lun. 30 nov., 09 h 15"."""
    if value is None:
        return "—"
    local = _local(value, tz)
    lang = language_of(locale)
    day, month = _DAYS[lang][local.weekday()], _SHORT_MONTHS[lang][local.month - 1]
    if lang == "fr":
        return f"{day} {local.day} {month}, {local.hour:02d} h {local.minute:02d}"
    return f"{day} {month} {local.day}, {local.hour:02d}:{local.minute:02d}"


def long_date(value: datetime, tz: ZoneInfo, locale: str | None) -> str:
    """A stored UTC time as a date people read: "December 30, 2026" / "30 décembre 2026"."""
    local = _local(value, tz)
    lang = language_of(locale)
    month = _MONTHS[lang][local.month - 1]
    return f"{local.day} {month} {local.year}" if lang == "fr" else f"{month} {local.day}, {local.year}"


def human_size(size: int, locale: str | None = None) -> str:
    """1536000 → "1.5 MB" (English) or "1,5 Mo" (French)."""
    french = language_of(locale) == "fr"
    units = ("o", "Ko", "Mo", "Go") if french else ("B", "KB", "MB", "GB")
    value, unit = float(size), 0
    while value >= 1000 and unit < len(units) - 1:
        value /= 1000
        unit += 1
    text = f"{value:.0f}" if unit == 0 or value >= 100 else f"{value:.1f}"
    return f"{text.replace('.', ',') if french else text} {units[unit]}"


def phone_display(value: str | None) -> str:
    """ "+15145550142" → "(514) 555-0142"; other numbers as stored; none → "—"."""
    if not value:
        return "—"
    if value.startswith("+1") and len(value) == 12:
        return f"({value[2:5]}) {value[5:8]}-{value[8:]}"
    return value
