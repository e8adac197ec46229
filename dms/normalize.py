"""Pure helpers that turn DMS field values into the one RO model's conventions.

Shared by every connector so a phone, a time or a name means the same thing
whatever DMS it came from.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import phonenumbers

from core.logsafe import mask_phone
from core.text import fold_text

_APOSTROPHES = "'’‘`´"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FRENCH = {"fr", "fra", "fre", "french", "francais", "français", "francaise", "française"}


# --- phones -----------------------------------------------------------------


def parse_phone(raw: object, region: str = "CA") -> str | None:
    """E.164 for any common way of writing a phone; None when empty.

    Raises ValueError for something that is not a valid number, so the caller
    decides whether that rejects the record.
    """
    text = _text(raw)
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {mask_phone(text)}") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"not a valid phone number: {mask_phone(text)}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- times ------------------------------------------------------------------


def parse_time(raw: object, tz: ZoneInfo) -> datetime | None:
    """An aware datetime in ``tz`` from ISO 8601 text; None when empty.

    Without an offset the value is shop-local. A local time that does not exist
    (spring-forward gap) moves forward by the gap; an ambiguous one (fall-back)
    takes the first occurrence, the one on the clock before the change.
    A bare date is local midnight. Anything else raises ValueError.
    """
    if isinstance(raw, datetime):
        parsed = raw
    elif isinstance(raw, date):
        parsed = datetime.combine(raw, time())
    else:
        text = _text(raw)
        if not text:
            return None
        try:
            parsed = datetime.fromisoformat(_iso_z(text))
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or time: {text!r}") from None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=tz, fold=0)
        # Round-tripping through UTC normalises a wall time that falls in a DST gap.
        return parsed.astimezone(UTC).astimezone(tz)
    return parsed.astimezone(tz)


def _iso_z(text: str) -> str:
    # Python 3.11 accepts "Z", but a lower-case "z" and a space before the offset happen in exports.
    text = text.strip()
    if text[-1:] in ("z", "Z"):
        return text[:-1] + "+00:00"
    return text


# --- other fields -----------------------------------------------------------


def parse_language(raw: object) -> str:
    """'fr' for any spelling of French ("FR", "fr-CA", "français", "French"), else 'en'."""
    text = fold_text(_text(raw)).strip()
    if not text:
        return "en"
    head = re.split(r"[-_\s]", text, maxsplit=1)[0]
    return "fr" if text in _FRENCH or head in _FRENCH else "en"


def parse_email(raw: object) -> str | None:
    """Lower-cased address, or None when empty or not shaped like an email."""
    text = _text(raw).lower()
    return text if _EMAIL.match(text) else None


def parse_vin(raw: object) -> str | None:
    text = re.sub(r"\s+", "", _text(raw)).upper()
    return text or None


def parse_year(raw: object) -> int | None:
    """A model year, or None when empty or not a plausible year."""
    text = _text(raw)
    if not text:
        return None
    try:
        year = int(float(text))
    except ValueError:
        return None
    return year if 1886 <= year <= 2100 else None


def clean(raw: object) -> str | None:
    """Stripped text, or None when empty."""
    return _text(raw) or None


# --- names ------------------------------------------------------------------


def slugify_name(text: str) -> str:
    """ASCII a-z0-9 and '-': "Bélanger-Côté" -> "belanger-cote", "O'Brien" -> "obrien"."""
    folded = fold_text(text)
    for mark in _APOSTROPHES:
        folded = folded.replace(mark, "")
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")


def _text(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return str(raw).strip()
