"""Search benchmark: p50/p95 latency of each query shape on a large table, against what it replaces.

    .venv/bin/python bench/search.py                      # 1,000,000 ROs in SQLite
    .venv/bin/python bench/search.py --rows 200000        # smaller
    .venv/bin/python bench/search.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

Loads synthetic ROs (Quebec-like names with accents and a realistic skew: the commonest surname
is about 1 % of ROs; mobile phones; RO and tag numbers; 40 advisors owning ROs with a skew, the
busiest owning about a sixth of them, each also a participant of their ROs as the channel
publisher records it; 150 technicians taking part in most ROs; 300 people in a handful each)
with bulk inserts (executemany on SQLite, COPY on PostgreSQL, indexes built after the load),
builds the search keys with the same `storage.search_index.terms_for` the app uses, then times
`storage.search_index.find` (the app's code path, rows fetched as models) and, in the same run, the
baseline it replaces: the naive `LIKE '%…%'` scan for text, the previous queries for "mine",
filters and the broad RO-number prefix. SQLite gets no ANALYZE (a production SQLite file never
has statistics), PostgreSQL gets the VACUUM ANALYZE its autovacuum would do.
PostgreSQL runs in a throw-away schema that is dropped at the end. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peewee import SQL

from bench import bulk
from core.text import fold_text
from storage import search_index as search
from storage.db import database, is_postgres, open_database
from storage.migrations import migrate
from storage.models import Participant, RepairOrder, RoSearchTerm

FIRST = [
    "Jean",
    "Marie",
    "Hélène",
    "François",
    "Louis",
    "Chloé",
    "Émilie",
    "Luc",
    "Benoît",
    "Zoé",
    "Mathieu",
    "Geneviève",
    "André",
    "Noémie",
    "Gaétan",
    "Josée",
    "Sébastien",
    "Amélie",
    "Réjean",
    "Maxime",
    "Olivier",
    "Catherine",
    "Stéphane",
    "Isabelle",
    "Éric",
    "Nathalie",
    "Patrick",
    "Julie",
    "Michel",
    "Sophie",
]
COMMON_LAST = [
    "Tremblay",
    "Gagnon",
    "Roy",
    "Côté",
    "Bouchard",
    "Gauthier",
    "Morin",
    "Lavoie",
    "Fortin",
    "Gagné",
    "Ouellet",
    "Pelletier",
    "Bélanger",
    "Lévesque",
    "Bergeron",
    "Leblanc",
    "Paquette",
    "Girard",
    "Simard",
    "Boucher",
    "Caron",
    "Beaulieu",
    "Cloutier",
    "Dubé",
    "Poirier",
    "Fournier",
    "Lapointe",
    "Leclerc",
    "Lefebvre",
    "Poulin",
    "Thibault",
    "St-Pierre",
    "Nadeau",
    "Martin",
    "Landry",
    "Martel",
    "Bédard",
    "Grenier",
    "Lessard",
    "O'Brien",
]
SYLLABLES = [
    "ba",
    "bé",
    "ca",
    "ché",
    "da",
    "do",
    "fa",
    "ga",
    "gé",
    "la",
    "lé",
    "ma",
    "mo",
    "na",
    "pa",
    "pé",
    "ra",
    "ré",
    "sa",
    "si",
    "ta",
    "té",
    "va",
    "vi",
    "zo",
    "ar",
    "el",
    "on",
    "ur",
    "ien",
]
AREAS = ["514", "438", "450", "579", "819", "873", "418", "581"]
SHAPES = ["name", "partial name", "phone last 4", "full phone", "RO number", "tag"]
ADVISORS = [f"UADV{n:03d}" for n in range(40)]
TECHS = [f"UTECH{n:03d}" for n in range(150)]
FEW = [f"UFEW{n:03d}" for n in range(300)]


# -- data ----------------------------------------------------------------------------------------


def _surnames(rng: random.Random) -> tuple[list[str], list[float]]:
    synthetic = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize() for _ in range(30000)})
    names = COMMON_LAST + synthetic
    # Common names follow 1/rank from ~1 % down; the long tail shares the rest evenly.
    common = [0.011 / rank**0.7 for rank in range(1, len(COMMON_LAST) + 1)]
    tail = (1.0 - sum(common)) / len(synthetic)
    return names, common + [tail] * len(synthetic)


def _skewed(names: list[str], exponent: float) -> list[float]:
    return [1 / rank**exponent for rank in range(1, len(names) + 1)]


def generate(rows: int, seed: int = 42) -> Iterator[dict]:
    rng = random.Random(seed)
    surnames, weights = _surnames(rng)
    advisor_weights, tech_weights = _skewed(ADVISORS, 0.8), _skewed(TECHS, 0.6)
    now = datetime(2026, 11, 1)
    folded: dict[tuple[str, str], str] = {}
    batch = 10000
    ids = 0
    while ids < rows:
        size = min(batch, rows - ids)
        lasts = rng.choices(surnames, weights, k=size)
        owners = rng.choices(ADVISORS, advisor_weights, k=size)
        techs = rng.choices(TECHS, tech_weights, k=size)
        for last, owner, tech in zip(lasts, owners, techs):
            ids += 1
            members = [(owner, "owner")]  # the publisher records the owner as a participant too
            if rng.random() < 0.9:
                members.append((tech, "participant"))
            if rng.random() < 0.001:
                members.append((rng.choice(FEW), "participant"))
            first = rng.choice(FIRST)
            phone = f"+1{rng.choice(AREAS)}{rng.randint(2000000, 9999999)}"
            number = str(100000 + ids)
            activity = now - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
            yield {
                "id": ids,
                "source": "file",
                "external_id": number,
                "ro_number": number,
                "tag_number": f"T{rng.randint(1, 99999)}",
                "customer_first_name": first,
                "customer_last_name": last,
                "mobile_phone": phone,
                "name_folded": folded.get((first, last)) or folded.setdefault((first, last), fold_text(f"{first} {last}")),
                "phone_digits": phone[1:],
                "status": rng.choice(("completed", "completed", "completed", "in_progress", "upcoming")),
                "dms_closed": False,
                "channel_id": f"C{ids:010d}",
                "last_activity_at": activity,
                "created_at": activity,
                "updated_at": activity,
                "appointment_at": activity,
                "owner_user_id": owner,
                "members": members,
            }


# -- loading -------------------------------------------------------------------------------------


def load(rows: int, log: Callable[[str], None]) -> float:
    tables = [RepairOrder._meta.table_name, RoSearchTerm._meta.table_name, Participant._meta.table_name]
    started = time.perf_counter()
    chunk: list[dict] = []

    def flush() -> None:
        ro_columns, ro_rows = bulk.model_rows(RepairOrder, chunk)  # "members" is not a column: left out
        term_rows = list(
            search.iter_terms(
                (
                    r["id"],
                    r["customer_first_name"],
                    r["customer_last_name"],
                    r["mobile_phone"],
                    r["ro_number"],
                    r["tag_number"],
                    r["last_activity_at"],
                )
                for r in chunk
            )
        )
        member_rows = [
            (r["id"], user, role, True, r["created_at"], r["last_activity_at"]) for r in chunk for user, role in r["members"]
        ]
        bulk.insert_rows(tables[0], ro_columns, ro_rows)
        bulk.insert_rows(tables[1], ["ro_id", "kind", "term", "activity"], term_rows)
        bulk.insert_rows(tables[2], ["ro_id", "user_id", "role", "active", "added_at", "activity"], member_rows)
        chunk.clear()

    with bulk.indexes_dropped(tables):
        with database.atomic():
            for n, row in enumerate(generate(rows), 1):
                chunk.append(row)
                if len(chunk) == 50000:
                    flush()
                    log(f"  {n:,} rows")
            if chunk:
                flush()
        log(f"  loaded in {time.perf_counter() - started:.0f} s; building indexes")
    bulk.reset_sequence(tables[0])
    return time.perf_counter() - started


# -- queries -------------------------------------------------------------------------------------


def _naive(column: str, value: str) -> int:
    table = RepairOrder._meta.table_name
    mark = "%s" if is_postgres() else "?"
    sql = f'SELECT * FROM "{table}" WHERE "{column}" LIKE {mark} ORDER BY "last_activity_at" DESC, "id" DESC LIMIT 21'
    return len(database.execute_sql(sql, (f"%{value}%",)).fetchall())


# -- what the new shapes replace: the previous storage.search_index queries, verbatim in effect ------------


def _before_matching(text: str, *columns):
    """The previous compound of matching keys: INTERSECT of name words first, then UNION, no arm limits."""
    query = search.parse_query(text)
    columns = columns or (RoSearchTerm.ro, RoSearchTerm.activity)

    def starting_with(kind, prefix):
        return RoSearchTerm.select(*columns).where(
            (RoSearchTerm.kind == kind)
            & (RoSearchTerm.term >= prefix)
            & (RoSearchTerm.term < prefix[:-1] + chr(ord(prefix[-1]) + 1))
        )

    parts = []
    if query.words and not query.digits:
        names = starting_with(search.NAME, query.words[0])
        for word in query.words[1:]:
            names = names & starting_with(search.NAME, word)
        parts.append(names)
    if query.phone_suffix:
        parts.append(starting_with(search.PHONE, query.phone_suffix))
    if query.number:
        parts += [starting_with(search.RO_NUMBER, query.number), starting_with(search.TAG, query.number)]
    compound = parts[0]
    for part in parts[1:]:
        compound = compound | part
    return compound


def _before(text: str | None = None, status: str | None = None, member: str | None = None) -> int:
    """The previous find(): newest keys sorted whole; filters as `id IN (…)` and `owner OR participant`."""
    if text is not None and not (status or member):
        keys = _before_matching(text).order_by(SQL('"activity" DESC'), SQL('"ro_id" DESC')).limit(21)
        ids = [ro_id for ro_id, _ in keys.tuples()]
        return len(list(RepairOrder.select().where(RepairOrder.id.in_(ids))))
    select = RepairOrder.select()
    if text is not None:
        select = select.where(RepairOrder.id.in_(_before_matching(text, RoSearchTerm.ro)))
    if status:
        select = select.where(RepairOrder.status == status)
    if member:
        taking_part = Participant.select(Participant.ro).where((Participant.user_id == member) & (Participant.active == True))
        select = select.where((RepairOrder.owner_user_id == member) | RepairOrder.id.in_(taking_part))
    return len(list(select.order_by(RepairOrder.last_activity_at.desc(), RepairOrder.id.desc()).limit(21)))


def queries(count: int, rows: int, seed: int = 7) -> dict[str, list[tuple[Callable[[], int], Callable[[], int] | None]]]:
    """Per shape: (the app's search, the baseline it replaces), drawn from loaded ROs."""
    rng = random.Random(seed)
    picks = [RepairOrder.get_by_id(rng.randint(1, rows)) for _ in range(count)]
    few = [
        user
        for (user,) in Participant.select(Participant.user_id).where(Participant.user_id.startswith("UFEW")).distinct().tuples()
    ]
    many = ADVISORS[:5] + TECHS[:5]
    shapes: dict[str, list] = {}

    def add(shape, ours, baseline=None):
        shapes.setdefault(shape, []).append((ours, baseline))

    for n, ro in enumerate(picks):
        last_folded = fold_text(ro.customer_last_name)
        digits = ro.phone_digits
        for shape, text, column, value in (
            ("name", ro.customer_last_name.upper(), "name_folded", last_folded),
            ("partial name", last_folded[:4], "name_folded", last_folded[:4]),
            ("phone last 4", digits[-4:], "phone_digits", digits[-4:]),
            ("full phone", f"({digits[1:4]}) {digits[4:7]}-{digits[7:]}", "phone_digits", digits[1:]),
            ("RO number", ro.ro_number, "ro_number", ro.ro_number),
            ("tag", ro.tag_number, "tag_number", ro.tag_number),
        ):
            add(shape, lambda t=text: len(search.find(t, limit=20).items), lambda c=column, v=value: _naive(c, v))
        prefix = "10"  # RO numbers 100001…: "10" matches 100001–109999 and 1000000–1099999, about 11 %
        add("RO prefix `10` (11 % of ROs)", lambda p=prefix: len(search.find(p, limit=20).items), lambda p=prefix: _before(p))
        user = many[n % len(many)]
        add("mine, many ROs", lambda u=user: len(search.find(None, member=u, limit=20).items), lambda u=user: _before(member=u))
        user = few[n % len(few)]
        add("mine, few ROs", lambda u=user: len(search.find(None, member=u, limit=20).items), lambda u=user: _before(member=u))
        add(
            "mine + text",
            lambda u=ro.owner_user_id, t=last_folded: len(search.find(t, member=u, limit=20).items),
            lambda u=ro.owner_user_id, t=last_folded: _before(t, member=u),
        )
        add(
            "status filter",
            lambda s=ro.status: len(search.find(None, status=s, limit=20).items),
            lambda s=ro.status: _before(status=s),
        )
        add(
            "status + text",
            lambda s=ro.status, t=last_folded: len(search.find(t, status=s, limit=20).items),
            lambda s=ro.status, t=last_folded: _before(t, status=s),
        )
    return shapes


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(count: int, naive_count: int, rows: int) -> list[tuple[str, float, float, float, float, float]]:
    shapes = queries(count, rows)
    for ours, _ in shapes["name"][:5]:  # warm the caches like a running server
        ours()
    results = []
    for shape, items in shapes.items():
        found = []
        times = []
        for ours, _ in items:
            started = time.perf_counter()
            found.append(ours())
            times.append((time.perf_counter() - started) * 1000)
        baseline = [_timed(before) for _, before in items[:naive_count]]
        results.append(
            (
                shape,
                _percentile(times, 50),
                _percentile(times, 95),
                _percentile(baseline, 50),
                _percentile(baseline, 95),
                statistics.mean(found),
            )
        )
    return results


def run(url: str, rows: int, count: int, naive_count: int, label: str) -> None:
    def log(message: str) -> None:
        print(message, flush=True)

    open_database(url)
    with database.connection_context():
        migrate()
        bulk.fast_sqlite()
        log(f"{label}: loading {rows:,} ROs")
        seconds = load(rows, log)
        terms = RoSearchTerm.select().count()
        log(
            f"{label}: {rows:,} ROs, {terms:,} search keys, load + index {seconds:.0f} s; "
            f"{count} queries per shape (naive: {naive_count})"
        )
        log(f"{'shape':<28} {'p50 ms':>8} {'p95 ms':>8} {'before p50':>11} {'before p95':>11} {'avg hits':>9}")
        for shape, p50, p95, n50, n95, hits in measure(count, naive_count, rows):
            log(f"{shape:<28} {p50:>8.2f} {p95:>8.2f} {n50:>11.1f} {n95:>11.1f} {hits:>9.1f}")
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100, help="queries per shape for the app's search")
    parser.add_argument("--naive-queries", type=int, default=5, help="queries per shape for the baseline (slow)")
    parser.add_argument("--sqlite", help="SQLite file to create (default: a temporary one, deleted after)")
    parser.add_argument("--postgres", help="PostgreSQL URL: also run there, in a temporary schema")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--keep-schema", help="PostgreSQL: load into this schema and keep it (to EXPLAIN queries after)")
    args = parser.parse_args(argv)

    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.sqlite or os.path.join(tmp, "bench.db")
            if os.path.exists(path):
                os.remove(path)
            run(f"sqlite:///{path}", args.rows, args.queries, args.naive_queries, "SQLite")
    if args.postgres:
        with bulk.postgres_schema(args.postgres, args.keep_schema) as url:
            run(url, args.rows, args.queries, args.naive_queries, "PostgreSQL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
