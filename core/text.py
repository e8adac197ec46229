"""Text folding shared by every layer: search keys, channel names and DMS names fold the same way."""

from __future__ import annotations

import unicodedata

# Letters NFKD does not decompose, but that people still type without the accent.
_LIGATURES = str.maketrans(
    {
        "œ": "oe",
        "Œ": "OE",
        "æ": "ae",
        "Æ": "AE",
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "ı": "i",
    }
)


def fold_text(text: str) -> str:
    """Lower-case with accents removed, for accent-insensitive search: "Bélanger" -> "belanger"."""
    decomposed = unicodedata.normalize("NFKD", (text or "").translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
