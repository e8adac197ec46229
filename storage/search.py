"""Finding repair orders by customer name, mobile phone, RO number or tag number, in the database.

Every RO has search keys in `RoSearchTerm`, one per row, built here from its fields:

    n  each word of the customer's name, accent-folded and lower-case ("Bélanger" -> "belanger";
       "O'Brien" -> "obrien", "o", "brien")
    p  the mobile's digits reversed ("+15145550142" -> "24105554151"), so "ends with 0142" is
       the prefix "2410"
    r  the RO number, t  the tag number: lower-case letters and digits only ("T-213" -> "t213")

A query becomes prefix ranges `kind = ? AND term >= 'bel' AND term < 'bem'` on the
(kind, term, activity, ro) index (name words AND-ed with INTERSECT, shapes OR-ed with UNION).
Each key carries a copy of its RO's last activity, so "the 20 newest matches" is answered from
that index alone, and only those 20 ROs are read; with a status or "mine" filter the matches are
joined to the RO table instead. The same SQL runs on SQLite and PostgreSQL (the term column
compares bytewise on both). No LIKE is used, so `%`, `_` and `'` in what people type are plain
text: punctuation is ignored like the dash in "514-555-0142".

The DMS sync calls `index_ro(ro)` whenever it creates or changes an RO; `touch(ro_id, at)` moves
an RO's activity (people.unread does it for every message); `reindex_all()` rebuilds every
RO's keys (after a bulk import or a restore).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Iterable, Iterator

from peewee import SQL, Expression

from dms.normalize import fold_text
from storage.db import database
from storage.models import Participant, RepairOrder, RoSearchTerm

NAME, PHONE, RO_NUMBER, TAG = "n", "p", "r", "t"
MIN_CHARS = 2  # fewer letters/digits than this is a hint, never a table scan
MAX_CHARS = 100  # longer input is cut: nobody types a 100-letter name
MAX_WORDS = 6
MIN_PHONE_DIGITS = 4
TERM_LENGTH = 64

_APOSTROPHES = re.compile(r"['’‘`´]")
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script
_PHONE_LIKE = re.compile(r"\+?[\d\s().\-]+")
_RO_PREFIX = re.compile(r"^\s*(?:ro|bt|#)\s*[-#:]?\s*(?=\d)", re.IGNORECASE)


class QueryTooShort(ValueError):
    """Fewer than MIN_CHARS letters or digits: the caller shows a hint instead of searching."""


@dataclass(frozen=True)
class Query:
    words: tuple[str, ...]  # folded name words, each a prefix
    number: str  # RO/tag prefix ("" when the text has no digit)
    phone_suffix: str  # reversed phone digits ("" when the text is not a phone of 4+ digits)


@dataclass(frozen=True)
class Page:
    items: list[RepairOrder]
    has_more: bool
    offset: int


# -- keys --------------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    # ASCII needs no accent folding; skipping it makes bulk indexing several times faster.
    return _WORD.findall(text.lower() if text.isascii() else fold_text(text))


def compact(text: str | None) -> str:
    """Folded letters and digits only: "T-213" -> "t213"."""
    return "".join(_words(text or ""))[:TERM_LENGTH]


def name_terms(first: str | None, last: str | None) -> frozenset[str]:
    return _part_terms(first or "") | _part_terms(last or "")


@lru_cache(maxsize=16384)  # first and last names repeat a lot; bulk indexing mostly hits the cache
def _part_terms(text: str) -> frozenset[str]:
    # "O'Brien" is typed "obrien" as often as "brien": keep the joined word and its parts.
    terms = set(_words(_APOSTROPHES.sub("", text))) | set(_words(text))
    return frozenset(term[:TERM_LENGTH] for term in terms)


def phone_term(phone: str | None) -> str | None:
    digits = re.sub(r"\D", "", phone or "")
    return digits[::-1][:TERM_LENGTH] if digits else None


def terms_for(first_name: str | None, last_name: str | None, phone: str | None,
              ro_number: str | None, tag_number: str | None) -> list[tuple[str, str]]:
    """The (kind, term) keys of one RO; pure, so bulk loaders use exactly what index_ro stores."""
    keys = [(NAME, term) for term in sorted(name_terms(first_name, last_name))]
    reversed_phone = phone_term(phone)
    if reversed_phone:
        keys.append((PHONE, reversed_phone))
    # "RO-7001" and "7001" are the same RO number to whoever types it (the query drops "RO" too).
    for kind, value in ((RO_NUMBER, _RO_PREFIX.sub("", ro_number or "")), (TAG, tag_number)):
        key = compact(value)
        if key:
            keys.append((kind, key))
    return keys


def _ro_terms(ro: RepairOrder) -> list[tuple[str, str]]:
    return terms_for(ro.customer_first_name, ro.customer_last_name, ro.mobile_phone or ro.phone_digits,
                     ro.ro_number, ro.tag_number)


def _rows(ro: RepairOrder, activity) -> list[dict]:
    return [{"ro": ro.id, "kind": kind, "term": term, "activity": activity} for kind, term in _ro_terms(ro)]


def _activity(ro_ids: list[int]) -> dict[int, datetime]:
    # From the table, not the caller's copy: a message may have moved it since the RO was read.
    return dict(RepairOrder.select(RepairOrder.id, RepairOrder.last_activity_at).where(RepairOrder.id.in_(ro_ids)).tuples())


def index_ro(ro: RepairOrder) -> None:
    """(Re)write the search keys of one RO; call it after creating or changing an RO."""
    index_many([ro])


def index_many(ros: Iterable[RepairOrder]) -> int:
    """index_ro for many ROs in one transaction; returns how many."""
    ros = list(ros)
    if not ros:
        return 0
    ids = [ro.id for ro in ros]
    with database.atomic():
        activity = _activity(ids)
        rows = [row for ro in ros if ro.id in activity for row in _rows(ro, activity[ro.id])]
        RoSearchTerm.delete().where(RoSearchTerm.ro.in_(ids)).execute()
        for start in range(0, len(rows), 500):
            RoSearchTerm.insert_many(rows[start:start + 500]).execute()
    return len(ros)


def touch(ro_id: int, at: datetime) -> None:
    """The RO had activity at `at`: it moves up every list (its row and its search keys)."""
    with database.atomic():
        RepairOrder.update(last_activity_at=at).where((RepairOrder.id == ro_id) & (RepairOrder.last_activity_at < at)).execute()
        RoSearchTerm.update(activity=at).where((RoSearchTerm.ro == ro_id) & (RoSearchTerm.activity < at)).execute()


def reindex_all(batch_size: int = 2000) -> int:
    """Rebuild the keys of every RO, a batch per transaction; returns how many ROs."""
    done, last_id = 0, 0
    while True:
        batch = list(RepairOrder.select().where(RepairOrder.id > last_id).order_by(RepairOrder.id).limit(batch_size))
        if not batch:
            return done
        done += index_many(batch)
        last_id = batch[-1].id


# -- queries -----------------------------------------------------------------------------------

def parse_query(text: str | None) -> Query:
    """What a search box text means. Raises QueryTooShort for fewer than MIN_CHARS letters/digits."""
    text = (text or "")[:MAX_CHARS]
    if len(compact(text)) < MIN_CHARS:
        raise QueryTooShort(text)
    words = tuple(word[:TERM_LENGTH] for word in _words(_APOSTROPHES.sub("", text))[:MAX_WORDS])
    number = compact(_RO_PREFIX.sub("", text))
    digits = re.sub(r"\D", "", text)
    phone = digits[::-1] if _PHONE_LIKE.fullmatch(text.strip()) and len(digits) >= MIN_PHONE_DIGITS else ""
    return Query(words=words if not all(w.isdigit() for w in words) else (),
                 number=number if any(c.isdigit() for c in number) else "",
                 phone_suffix=phone[:TERM_LENGTH])


def _after(prefix: str) -> str:
    """The smallest string greater than every string that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _starting_with(kind: str, prefix: str, columns: tuple):
    return (RoSearchTerm.select(*columns)
            .where((RoSearchTerm.kind == kind) & (RoSearchTerm.term >= prefix) & (RoSearchTerm.term < _after(prefix))))


def _matching(query: Query, *columns):
    """One compound SELECT of `columns` of the keys of matching ROs. The INTERSECT of name words
    comes first: SQLite reads compound operators left to right, PostgreSQL binds INTERSECT
    tighter, and with it first both mean (words) UNION phone UNION number."""
    columns = columns or (RoSearchTerm.ro,)
    parts = []
    if query.words:
        names = _starting_with(NAME, query.words[0], columns)
        for word in query.words[1:]:
            names = names & _starting_with(NAME, word, columns)
        parts.append(names)
    if query.phone_suffix:
        parts.append(_starting_with(PHONE, query.phone_suffix, columns))
    if query.number:
        parts += [_starting_with(RO_NUMBER, query.number, columns), _starting_with(TAG, query.number, columns)]
    if not parts:
        return None
    compound = parts[0]
    for part in parts[1:]:
        compound = compound | part
    return compound


def involving(user_id: str) -> Expression:
    """"Mine": the user owns the RO (its DMS advisor) or takes part in it."""
    taking_part = Participant.select(Participant.ro).where((Participant.user_id == user_id) & (Participant.active == True))  # noqa: E712
    return (RepairOrder.owner_user_id == user_id) | RepairOrder.id.in_(taking_part)


def find(text: str | None = None, *, status: str | None = None, member: str | None = None,
         limit: int = 20, offset: int = 0) -> Page:
    """ROs matching `text` (all ROs when None), of `status`, involving `member`, newest activity first.

    Raises QueryTooShort when `text` is given but too short to search.
    """
    offset = max(0, offset)
    if text is not None:
        query = parse_query(text)
        if not (status or member):
            return _newest_matches(query, limit, offset)
    select = RepairOrder.select()
    if text is not None:
        matching = _matching(query)
        if matching is None:
            return Page([], False, offset)
        select = select.where(RepairOrder.id.in_(matching))
    if status:
        select = select.where(RepairOrder.status == status)
    if member:
        select = select.where(involving(member))
    rows = list(select.order_by(RepairOrder.last_activity_at.desc(), RepairOrder.id.desc())
                .limit(limit + 1).offset(offset))
    return Page(rows[:limit], len(rows) > limit, offset)


def newest_keys(query: Query, limit: int, offset: int = 0):
    """The SELECT of (ro id, activity) of the page's matches, newest first, from the keys alone."""
    matching = _matching(query, RoSearchTerm.ro, RoSearchTerm.activity)
    if matching is None:
        return None
    return matching.order_by(SQL('"activity" DESC'), SQL('"ro_id" DESC')).limit(limit).offset(offset)


def _newest_matches(query: Query, limit: int, offset: int) -> Page:
    keys = newest_keys(query, limit + 1, offset)
    if keys is None:
        return Page([], False, offset)
    ids = list(dict.fromkeys(ro_id for ro_id, _ in keys.tuples()))
    by_id = {ro.id: ro for ro in RepairOrder.select().where(RepairOrder.id.in_(ids[:limit]))} if ids else {}
    return Page([by_id[i] for i in ids[:limit] if i in by_id], len(ids) > limit, offset)


def iter_terms(ros: Iterable[tuple]) -> Iterator[tuple[int, str, str, datetime]]:
    """(ro id, kind, term, activity) rows for bulk loaders, from
    (id, first, last, phone, ro number, tag, last activity) tuples."""
    for ro_id, first, last, phone, number, tag, activity in ros:
        for kind, term in terms_for(first, last, phone, number, tag):
            yield ro_id, kind, term, activity
