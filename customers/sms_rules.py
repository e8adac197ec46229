"""What a text is, by the rules of SMS and of consent. No Slack, no database.

- Segments: a text that fits the GSM-7 alphabet (the GSM 03.38 basic set; the extension table's
  characters cost two septets) goes in 160-septet segments, 153 each once it needs more than one;
  any other character (ê, ç, ’, an emoji…) makes the whole text UCS-2: 70 UTF-16 units, 67 each
  once concatenated. A two-unit character is never split between segments.
- Twilio refuses a body over 1,600 characters: a longer reply is refused with a clear note.
- Keywords, when they are the whole text (any case, accents or not, trailing punctuation ignored):
  opt out  STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT, and French ARRET / ARRÊT
  opt in   START, UNSTOP, YES, and French DEBUT / DÉBUT, REPRENDRE
  help     HELP, INFO, and French AIDE
  ("OUI" is not a keyword: customers answer questions with it.)
- A staff reply in the conversation thread that starts with (interne) / (internal) / [interne] /
  [internal] stays in Slack.
"""

from __future__ import annotations

import math
import re
import unicodedata

import gsm0338

MAX_BODY = 1600  # UTF-16 units, as Twilio counts them
_GSM = gsm0338.Codec()
OPT_OUT, OPT_IN, HELP = "opt_out", "opt_in", "help"
_KEYWORDS = {
    OPT_OUT: {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "ARRET"},
    OPT_IN: {"START", "UNSTOP", "YES", "DEBUT", "REPRENDRE"},
    HELP: {"HELP", "INFO", "AIDE"},
}
# Keywords Twilio itself answers (and, for opt-outs, enforces) on long codes: we record them and do
# not answer a second time. The French ones only we know: we answer them.
TWILIO_ANSWERS = {
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "START",
    "UNSTOP",
    "YES",
    "HELP",
    "INFO",
}
_INTERNAL = re.compile(r"^\s*[(\[]\s*(interne|internal)\s*[)\]]", re.IGNORECASE)


def fold_keyword(body: str) -> str:
    """ "  Arrêt. " → "ARRET": upper case, accents and surrounding punctuation gone."""
    text = unicodedata.normalize("NFKD", body or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).strip().strip(".!?¡¿,;:'\"«» ").upper()
    return text


def keyword(body: str) -> tuple[str | None, str]:
    """(OPT_OUT | OPT_IN | HELP | None, the keyword as folded)."""
    word = fold_keyword(body)
    for kind, words in _KEYWORDS.items():
        if word in words:
            return kind, word
    return None, word


def is_internal(text: str) -> bool:
    return bool(_INTERNAL.match(text or ""))


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def segments(body: str) -> tuple[str, int]:
    """("GSM-7" | "UCS-2", how many segments carriers bill)."""
    try:
        septets = _GSM.encode(body)[0]
    except UnicodeEncodeError:
        return "UCS-2", _count(_units(body), 70, 67)
    # Encoded, an extension character is ESC + its code: two septets that must stay together.
    return "GSM-7", _count([2 if b == 0x1B else 1 for b in _pairs(septets)], 160, 153)


def _pairs(encoded: bytes) -> list[int]:
    """Each character's cost marker: 0x1B for an escaped (two-septet) character, else its byte."""
    out, i = [], 0
    while i < len(encoded):
        if encoded[i] == 0x1B and i + 1 < len(encoded):
            out.append(0x1B)
            i += 2
        else:
            out.append(encoded[i])
            i += 1
    return out


def _units(body: str) -> list[int]:
    return [utf16_units(c) for c in body]


def _count(costs: list[int], single: int, part: int) -> int:
    total = sum(costs)
    if total <= single:
        return 1 if total else 0
    count, used = 1, 0
    for cost in costs:
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return max(count, math.ceil(total / part))


def too_long(body: str) -> bool:
    return utf16_units(body) > MAX_BODY
