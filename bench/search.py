"""Search benchmark: p50/p95 latency of each query shape on a large table, against a naive scan.

    .venv/bin/python bench/search.py                      # 1,000,000 ROs in SQLite
    .venv/bin/python bench/search.py --rows 200000        # smaller
    .venv/bin/python bench/search.py --postgres postgresql://postgres@127.0.0.1:5432/postgres

Loads synthetic ROs (Quebec-like names with accents and a realistic skew: the commonest surname
is about 1 % of ROs; mobile phones; RO and tag numbers) with bulk inserts (executemany on SQLite,
COPY on PostgreSQL, indexes built after the load), builds the search keys with the same
`storage.search.terms_for` the app uses, then times `storage.search.find` (the app's code path,
rows fetched as models) and, in the same run, the naive `LIKE '%…%'` scan it replaces.
PostgreSQL runs in a throw-away schema that is dropped at the end. Not part of the test run.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dms.normalize import fold_text  # noqa: E402
from storage import search  # noqa: E402
from storage.db import database, is_postgres, open_database  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.models import RepairOrder, RoSearchTerm  # noqa: E402

FIRST = ["Jean", "Marie", "Hélène", "François", "Louis", "Chloé", "Émilie", "Luc", "Benoît", "Zoé", "Mathieu",
         "Geneviève", "André", "Noémie", "Gaétan", "Josée", "Sébastien", "Amélie", "Réjean", "Maxime", "Olivier",
         "Catherine", "Stéphane", "Isabelle", "Éric", "Nathalie", "Patrick", "Julie", "Michel", "Sophie"]
COMMON_LAST = ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Gagné",
               "Ouellet", "Pelletier", "Bélanger", "Lévesque", "Bergeron", "Leblanc", "Paquette", "Girard", "Simard",
               "Boucher", "Caron", "Beaulieu", "Cloutier", "Dubé", "Poirier", "Fournier", "Lapointe", "Leclerc",
               "Lefebvre", "Poulin", "Thibault", "St-Pierre", "Nadeau", "Martin", "Landry", "Martel", "Bédard",
               "Grenier", "Lessard", "O'Brien"]
SYLLABLES = ["ba", "bé", "ca", "ché", "da", "do", "fa", "ga", "gé", "la", "lé", "ma", "mo", "na", "pa", "pé", "ra",
             "ré", "sa", "si", "ta", "té", "va", "vi", "zo", "ar", "el", "on", "ur", "ien"]
AREAS = ["514", "438", "450", "579", "819", "873", "418", "581"]
SHAPES = ["name", "partial name", "phone last 4", "full phone", "RO number", "tag"]


# -- data ----------------------------------------------------------------------------------------

def _surnames(rng: random.Random) -> tuple[list[str], list[float]]:
    synthetic = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize() for _ in range(30000)})
    names = COMMON_LAST + synthetic
    # Common names follow 1/rank from ~1 % down; the long tail shares the rest evenly.
    common = [0.011 / rank ** 0.7 for rank in range(1, len(COMMON_LAST) + 1)]
    tail = (1.0 - sum(common)) / len(synthetic)
    return names, common + [tail] * len(synthetic)


def generate(rows: int, seed: int = 42) -> Iterator[dict]:
    rng = random.Random(seed)
    surnames, weights = _surnames(rng)
    now = datetime(2026, 11, 1)
    folded: dict[tuple[str, str], str] = {}
    batch = 10000
    ids = 0
    while ids < rows:
        lasts = rng.choices(surnames, weights, k=min(batch, rows - ids))
        for last in lasts:
            ids += 1
            first = rng.choice(FIRST)
            phone = f"+1{rng.choice(AREAS)}{rng.randint(2000000, 9999999)}"
            number = str(100000 + ids)
            activity = now - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
            yield {
                "id": ids, "source": "file", "external_id": number, "ro_number": number,
                "tag_number": f"T{rng.randint(1, 99999)}", "customer_first_name": first, "customer_last_name": last,
                "mobile_phone": phone, "name_folded": folded.get((first, last)) or folded.setdefault((first, last), fold_text(f"{first} {last}")), "phone_digits": phone[1:],
                "status": rng.choice(("completed", "completed", "completed", "in_progress", "upcoming")),
                "dms_closed": False, "channel_id": f"C{ids:010d}", "last_activity_at": activity,
                "created_at": activity, "updated_at": activity, "appointment_at": activity,
            }


def _columns() -> list:
    return [f for f in RepairOrder._meta.sorted_fields]


def _defaults(fields: list) -> dict:
    return {f.name: f.default() if callable(f.default) else f.default for f in fields}


# -- loading -------------------------------------------------------------------------------------

def _indexes(tables: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the secondary indexes of `tables`."""
    if is_postgres():
        cursor = database.execute_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ANY(%s)"
            " AND indexname NOT LIKE '%%_pkey'", (tables,))
    else:
        marks = ",".join("?" * len(tables))
        cursor = database.execute_sql(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})", tables)
    return list(cursor.fetchall())


def load(rows: int, log: Callable[[str], None]) -> float:
    tables = [RepairOrder._meta.table_name, RoSearchTerm._meta.table_name]
    indexes = _indexes(tables)
    for name, _ in indexes:
        database.execute_sql(f'DROP INDEX "{name}"')
    started = time.perf_counter()
    fields = _columns()
    names = [f.name for f in fields]
    defaults = _defaults(fields)
    row_of = itemgetter(*names)
    ro_columns = ", ".join(f'"{f.column_name}"' for f in fields)
    term_columns = '"ro_id", "kind", "term", "activity"'
    chunk: list[dict] = []

    def flush() -> None:
        ro_rows = [row_of({**defaults, **r}) for r in chunk]
        term_rows = list(search.iter_terms((r["id"], r["customer_first_name"], r["customer_last_name"],
                                            r["mobile_phone"], r["ro_number"], r["tag_number"], r["last_activity_at"])
                                           for r in chunk))
        if is_postgres():
            _copy(f'"{tables[0]}" ({ro_columns})', ro_rows)
            _copy(f'"{tables[1]}" ({term_columns})', term_rows)
        else:
            cursor = database.cursor()
            cursor.executemany(f'INSERT INTO "{tables[0]}" ({ro_columns}) VALUES ({",".join("?" * len(fields))})', ro_rows)
            cursor.executemany(f'INSERT INTO "{tables[1]}" ({term_columns}) VALUES (?, ?, ?, ?)', term_rows)
        chunk.clear()

    with database.atomic():
        for n, row in enumerate(generate(rows), 1):
            chunk.append(row)
            if len(chunk) == 50000:
                flush()
                log(f"  {n:,} rows")
        if chunk:
            flush()
    log(f"  loaded in {time.perf_counter() - started:.0f} s; building indexes")
    for _, create in indexes:
        database.execute_sql(create)
    if is_postgres():
        database.execute_sql(f"SELECT setval(pg_get_serial_sequence('{tables[0]}', 'id'), {rows})")
        # What autovacuum does on a live server: statistics and the visibility map (index-only scans).
        for table in tables:
            database.execute_sql(f'VACUUM ANALYZE "{table}"')
    else:
        database.execute_sql("ANALYZE")
    return time.perf_counter() - started


def _copy(target: str, rows: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(["\\N" if v is None else (("t" if v else "f") if isinstance(v, bool) else v) for v in row])
    buffer.seek(0)
    database.cursor().copy_expert(f"COPY {target} FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)


# -- queries -------------------------------------------------------------------------------------

def queries(count: int, rows: int, seed: int = 7) -> dict[str, list[tuple[str, str, str]]]:
    """Per shape: (text typed in Slack, naive column, naive LIKE value), drawn from loaded ROs."""
    rng = random.Random(seed)
    picks = [RepairOrder.get_by_id(rng.randint(1, rows)) for _ in range(count)]
    shapes: dict[str, list[tuple[str, str, str]]] = {shape: [] for shape in SHAPES}
    for ro in picks:
        last_folded = fold_text(ro.customer_last_name)
        digits = ro.phone_digits
        shapes["name"].append((ro.customer_last_name.upper(), "name_folded", last_folded))
        shapes["partial name"].append((last_folded[:4], "name_folded", last_folded[:4]))
        shapes["phone last 4"].append((digits[-4:], "phone_digits", digits[-4:]))
        shapes["full phone"].append((f"({digits[1:4]}) {digits[4:7]}-{digits[7:]}", "phone_digits", digits[1:]))
        shapes["RO number"].append((ro.ro_number, "ro_number", ro.ro_number))
        shapes["tag"].append((ro.tag_number, "tag_number", ro.tag_number))
    return shapes


def _naive(column: str, value: str) -> int:
    table = RepairOrder._meta.table_name
    mark = "%s" if is_postgres() else "?"
    sql = (f'SELECT * FROM "{table}" WHERE "{column}" LIKE {mark} '
           f'ORDER BY "last_activity_at" DESC, "id" DESC LIMIT 21')
    return len(database.execute_sql(sql, (f"%{value}%",)).fetchall())


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure(count: int, naive_count: int, rows: int) -> list[tuple[str, float, float, float, float, float]]:
    shapes = queries(count, rows)
    for text, _, _ in shapes["name"][:5]:  # warm the caches like a running server
        search.find(text)
    results = []
    for shape, items in shapes.items():
        found = []
        ours = []
        for text, _, _ in items:
            started = time.perf_counter()
            page = search.find(text, limit=20)
            ours.append((time.perf_counter() - started) * 1000)
            found.append(len(page.items))
        naive = [_timed(lambda c=column, v=value: _naive(c, v)) for _, column, value in items[:naive_count]]
        results.append((shape, _percentile(ours, 50), _percentile(ours, 95), _percentile(naive, 50),
                        _percentile(naive, 95), statistics.mean(found)))
    return results


def run(url: str, rows: int, count: int, naive_count: int, label: str) -> None:
    def log(message: str) -> None:
        print(message, flush=True)

    open_database(url)
    with database.connection_context():
        migrate()
        if not is_postgres():
            database.execute_sql("PRAGMA synchronous = OFF")
            database.execute_sql("PRAGMA cache_size = -262144")  # 256 MB, a server's page cache
        log(f"{label}: loading {rows:,} ROs")
        seconds = load(rows, log)
        terms = RoSearchTerm.select().count()
        log(f"{label}: {rows:,} ROs, {terms:,} search keys, load + index {seconds:.0f} s; "
            f"{count} queries per shape (naive: {naive_count})")
        log(f"{'shape':<14} {'p50 ms':>8} {'p95 ms':>8} {'naive p50':>10} {'naive p95':>10} {'avg hits':>9}")
        for shape, p50, p95, n50, n95, hits in measure(count, naive_count, rows):
            log(f"{shape:<14} {p50:>8.2f} {p95:>8.2f} {n50:>10.1f} {n95:>10.1f} {hits:>9.1f}")
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100, help="queries per shape for the app's search")
    parser.add_argument("--naive-queries", type=int, default=5, help="queries per shape for the naive scan (slow)")
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
        import psycopg2

        schema = args.keep_schema or "bench_" + uuid.uuid4().hex[:8]
        admin = psycopg2.connect(args.postgres)
        admin.autocommit = True
        admin.cursor().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.cursor().execute(f"CREATE SCHEMA {schema}")
        try:
            sep = "&" if "?" in args.postgres else "?"
            run(f"{args.postgres}{sep}options=-csearch_path%3D{schema}", args.rows, args.queries,
                args.naive_queries, "PostgreSQL")
        finally:
            if not args.keep_schema:
                admin.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
