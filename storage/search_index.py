"""Finding repair orders by customer name, mobile phone, RO number or tag number, in the database.

Every RO has search keys in `RoSearchTerm`, one per row, built here from its fields:

    n  each word of the customer's name, accent-folded and lower-case ("Bélanger" -> "belanger";
       "O'Brien" -> "obrien", "o", "brien"; "St-Pierre" -> "stpierre", "st", "pierre")
    p  the mobile's digits reversed ("+15145550142" -> "24105554151"), so "ends with 0142" is
       the prefix "2410"
    r  the RO number, t  the tag number: lower-case letters and digits only ("T-213" -> "t213")

A query becomes prefix ranges `kind = ? AND term >= 'bel' AND term < 'bem'` on the
(kind, term, activity, ro) index: name words AND-ed (INTERSECT), and with digits typed beside
them ("tremblay 0142") AND-ed with what the digits can be (phone suffix, RO or tag prefix); the
name part, the phone, the RO number and the tag OR-ed (UNION). Each part is its own subquery,
so the meaning does not depend on the database's operator precedence. Each key carries a copy
of its RO's last activity, so "the 20 newest matches" is answered from that index alone: each
part keeps only its (offset + 20) newest with a top-N pass (a 2-digit RO prefix still reads its
~10 % of the index, but never sorts it), then only the page's ROs are read. With a status or
"mine" filter the matches are joined to their ROs by primary key instead.

Lists without text are read in index order too: a status from (status, last_activity_at, id);
"mine" as a UNION of the ROs the user owns ((owner_user_id[, status], last_activity_at, id))
and of those they take part in (participant (user_id, active, activity, ro), whose activity is
another copy of the RO's). SQLite never has statistics here (nobody runs ANALYZE), so joins are
written CROSS JOIN, which makes SQLite start from the left side; PostgreSQL plans by its own
statistics. The same SQL runs on both (the term column compares bytewise on both). No LIKE is
used, so `%`, `_` and `'` in what people type are plain text: punctuation is ignored like the
dash in "514-555-0142".

The DMS sync calls `index_ro(ro)` whenever it creates or changes an RO; `touch(ro_id, at)` moves
an RO's activity and its copies (people.unread_rules does it for every message and file);
`copy_activity` writes the copy on participant rows (people.participant_rules calls it);
`reindex_all()` rebuilds every RO's keys and copies (after a bulk import or a restore).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from peewee import JOIN, SQL, Select, fn

from core.text import fold_text
from storage.db import database
from storage.models import Participant, RepairOrder, RoSearchTerm

NAME, PHONE, RO_NUMBER, TAG = "n", "p", "r", "t"
MIN_CHARS = 2  # fewer letters/digits than this is a hint, never a table scan
MAX_CHARS = 100  # longer input is cut: nobody types a 100-letter name
MAX_WORDS = 6
MIN_PHONE_DIGITS = 4
TERM_LENGTH = 64

_APOSTROPHES = re.compile(r"['’‘`´]")
_JOINERS = re.compile(r"['’‘`´\-‐‑–]")  # apostrophes and hyphens inside a name: "St-Pierre" -> "stpierre"
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
    digits: str = ""  # "tremblay 0142": the digits typed beside name words, AND-ed with them


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
    # "O'Brien" is typed "obrien" as often as "brien", "St-Pierre" "stpierre" as often as
    # "st pierre": keep the joined words and their parts.
    terms = set(_words(_APOSTROPHES.sub("", text))) | set(_words(text)) | set(_words(_JOINERS.sub("", text)))
    return frozenset(term[:TERM_LENGTH] for term in terms)


def phone_term(phone: str | None) -> str | None:
    digits = re.sub(r"\D", "", phone or "")
    return digits[::-1][:TERM_LENGTH] if digits else None


def terms_for(
    first_name: str | None, last_name: str | None, phone: str | None, ro_number: str | None, tag_number: str | None
) -> list[tuple[str, str]]:
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
    return terms_for(
        ro.customer_first_name, ro.customer_last_name, ro.mobile_phone or ro.phone_digits, ro.ro_number, ro.tag_number
    )


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
            RoSearchTerm.insert_many(rows[start : start + 500]).execute()
        copy_activity(ids)
    return len(ros)


def copy_activity(ro_ids: list[int], user_id: str | None = None) -> None:
    """Copy each RO's last activity onto its participant rows (all, or `user_id`'s), so "the
    ROs I take part in, newest first" is read from the participant index. people.participant_rules
    calls it for a row it writes; touch() and index_many() for every row of their ROs."""
    current = RepairOrder.select(RepairOrder.last_activity_at).where(RepairOrder.id == Participant.ro)
    where = Participant.ro.in_(ro_ids)
    if user_id is not None:
        where &= Participant.user_id == user_id
    Participant.update(activity=current).where(where).execute()


def touch(ro_id: int, at: datetime) -> None:
    """The RO had activity at `at`: it moves up every list (its row, its search keys, its
    participant rows)."""
    with database.atomic():
        if (
            RepairOrder.update(last_activity_at=at)
            .where((RepairOrder.id == ro_id) & (RepairOrder.last_activity_at < at))
            .execute()
        ):
            RoSearchTerm.update(activity=at).where((RoSearchTerm.ro == ro_id) & (RoSearchTerm.activity < at)).execute()
            copy_activity([ro_id])


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
    words = [word[:TERM_LENGTH] for word in _words(_APOSTROPHES.sub("", text))[:MAX_WORDS]]
    names = tuple(word for word in words if not word.isdigit())
    number = compact(_RO_PREFIX.sub("", text))
    digits = re.sub(r"\D", "", text)
    phone = digits[::-1] if _PHONE_LIKE.fullmatch(text.strip()) and len(digits) >= MIN_PHONE_DIGITS else ""
    return Query(
        words=names,
        number=number if any(c.isdigit() for c in number) else "",
        phone_suffix=phone[:TERM_LENGTH],
        digits="".join(word for word in words if word.isdigit())[:TERM_LENGTH] if names else "",
    )


def _after(prefix: str) -> str:
    """The smallest string greater than every string that starts with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


_KEY = (RoSearchTerm.ro, RoSearchTerm.activity)  # every key SELECT yields ("ro_id", "activity")
_NEWEST = (SQL('"activity" DESC'), SQL('"ro_id" DESC'))


def _starting_with(kind: str, prefix: str):
    return RoSearchTerm.select(*_KEY).where(
        (RoSearchTerm.kind == kind) & (RoSearchTerm.term >= prefix) & (RoSearchTerm.term < _after(prefix))
    )


def _wrapped(select, name: str, limit: int | None = None) -> Select:
    """SELECT ro_id, activity FROM (select [newest first, LIMIT limit]): one self-contained arm of
    a compound. Wrapping keeps each arm's meaning whatever the database's operator precedence
    (SQLite reads INTERSECT/UNION left to right, PostgreSQL binds INTERSECT tighter), and lets
    an arm keep only its `limit` newest rows: a top-N pass over the arm's index range, never a
    sort of every match."""
    if limit is not None:
        select = select.order_by(*_NEWEST).limit(limit)
    sub = select.alias(name)
    return Select([sub], [sub.c.ro_id, sub.c.activity])


def _union(arms: list):
    compound = arms[0]
    for arm in arms[1:]:
        compound = compound | arm
    return compound


def _number_arms(digits: str, phone_suffix: str) -> list:
    arms = [_starting_with(RO_NUMBER, digits), _starting_with(TAG, digits)]
    if phone_suffix:
        arms.insert(0, _starting_with(PHONE, phone_suffix))
    return arms


def _parts(query: Query) -> list:
    """The SELECTs of (ro_id, activity) whose UNION is the matching ROs: the name words AND-ed
    (and, in "tremblay 0142", AND-ed with what the number can be), the phone, the RO number, the tag."""
    parts = []
    if query.words:
        names = _starting_with(NAME, query.words[0])
        for word in query.words[1:]:
            names = names & _starting_with(NAME, word)
        if query.digits:
            reversed_digits = query.digits[::-1] if len(query.digits) >= MIN_PHONE_DIGITS else ""
            names = names & _wrapped(_union(_number_arms(query.digits, reversed_digits)), "number_part")
        elif len(query.words) == 1:
            names = names.distinct()  # one RO can have two name words with this prefix
        parts.append(names)
    if query.phone_suffix:
        parts.append(_starting_with(PHONE, query.phone_suffix))
    if query.number:
        parts += [_starting_with(RO_NUMBER, query.number), _starting_with(TAG, query.number)]
    return parts


def _matching(query: Query, limit: int | None = None):
    """The SELECT of (ro_id, activity) of the ROs matching `query` (each part cut to its `limit`
    newest when given), or None when nothing can match."""
    parts = _parts(query)
    if not parts:
        return None
    return _union([_wrapped(part, f"part{n}", limit) for n, part in enumerate(parts)])


def _ro_key(select):
    return select.select(RepairOrder.id.alias("ro_id"), RepairOrder.last_activity_at.alias("activity"))


_RO_NEWEST = (RepairOrder.last_activity_at.desc(), RepairOrder.id.desc())


def _involving(user_id: str, status: str | None, limit: int) -> Select:
    """ "Mine": the user owns the RO (its DMS advisor) or takes part in it. A UNION of arms that
    each read an index in order and keep their `limit` newest, never a walk of every RO:
    - owned: the (owner_user_id[, status], last_activity_at, id) index;
    - taken part in: the participant (user_id, active, activity, ro) index, whose activity is
      the RO's, copied; each row joined to its RO by primary key for the status and the
      true activity (CROSS JOIN: SQLite starts from the participant rows);
    - participant rows not copied yet (the channel publisher records an RO's owner without the
      copy; the next activity or DMS change writes it): the same join, few rows."""
    owned = _ro_key(RepairOrder.select()).where(RepairOrder.owner_user_id == user_id)
    if status:
        owned = owned.where(RepairOrder.status == status)
    arms = [_wrapped(owned.order_by(*_RO_NEWEST).limit(limit), "owned")]
    for name, copied in (("taking_part", True), ("not_copied", False)):
        taking_part = (
            _ro_key(Participant.select())
            .join(RepairOrder, JOIN.CROSS)
            .where(
                (RepairOrder.id == Participant.ro)
                & (Participant.user_id == user_id)
                & (Participant.active == True)
                & (Participant.activity.is_null(not copied))
            )
        )
        if status:
            taking_part = taking_part.where(RepairOrder.status == status)
        order = (Participant.activity.desc(), Participant.ro.desc()) if copied else _RO_NEWEST
        arms.append(_wrapped(taking_part.order_by(*order).limit(limit), name))
    return _union(arms)


def _filtered(matching, status: str | None, member: str | None) -> Select:
    """Matches, kept when their RO has `status` / involves `member`: driven by the key index
    (the matches), each joined to its RO by primary key (CROSS JOIN: the matches come first)."""
    matches = matching.alias("matches")
    select = (
        Select([matches], [matches.c.ro_id, matches.c.activity])
        .join(RepairOrder, JOIN.CROSS)
        .where(RepairOrder.id == matches.c.ro_id)
    )
    if status:
        select = select.where(RepairOrder.status == status)
    if member:
        taking_part = Participant.select(Participant.id).where(
            (Participant.ro == RepairOrder.id) & (Participant.user_id == member) & (Participant.active == True)
        )
        select = select.where((RepairOrder.owner_user_id == member) | fn.EXISTS(taking_part))
    return select


def page_keys(query: Query | None, *, status: str | None = None, member: str | None = None, limit: int = 21, offset: int = 0):
    """The SELECT of (ro_id, activity) of one page of ROs, newest activity first, or None when
    nothing can match. `query` None = no text: every RO (of `status`, involving `member`)."""
    n = offset + limit  # what each arm must keep for this page to be right
    if query is None:
        if member:
            keys = _involving(member, status, n)
        else:
            keys = _ro_key(RepairOrder.select())
            if status:
                keys = keys.where(RepairOrder.status == status)
            return keys.order_by(*_RO_NEWEST).limit(limit).offset(offset)
    else:
        filtered = bool(status or member)
        keys = _matching(query, None if filtered else n)
        if keys is None:
            return None
        if filtered:
            keys = _filtered(keys, status, member)
    return keys.order_by(*_NEWEST).limit(limit).offset(offset).bind(database)


def find(
    text: str | None = None, *, status: str | None = None, member: str | None = None, limit: int = 20, offset: int = 0
) -> Page:
    """ROs matching `text` (all ROs when None), of `status`, involving `member`, newest activity first.

    Raises QueryTooShort when `text` is given but too short to search.
    """
    offset = max(0, offset)
    query = parse_query(text) if text is not None else None
    keys = page_keys(query, status=status, member=member, limit=limit + 1, offset=offset)
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
