"""What the benchmarks share: fast bulk loads (executemany on SQLite, COPY on PostgreSQL, indexes
dropped during the load and built after) and a throw-away PostgreSQL schema. Not part of the app.

peewee's `insert_many` builds one SQL text per batch and is several times slower than COPY for the
millions of rows a benchmark loads; loading is not what is measured, but it must not take an hour.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from peewee import Model

from storage.db import database, is_postgres


def indexes(tables: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the secondary indexes of `tables`."""
    if is_postgres():
        cursor = database.execute_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ANY(%s)"
            " AND indexname NOT LIKE '%%_pkey'",
            (tables,),
        )
    else:
        marks = ",".join("?" * len(tables))
        cursor = database.execute_sql(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})", tables
        )
    return list(cursor.fetchall())


@contextmanager
def indexes_dropped(tables: list[str]) -> Iterator[None]:
    """Drop the secondary indexes of `tables` for a load, then build them again (and, on PostgreSQL,
    VACUUM ANALYZE as autovacuum would on a live server: statistics and the visibility map)."""
    kept = indexes(tables)
    for name, _ in kept:
        database.execute_sql(f'DROP INDEX "{name}"')
    yield
    for _, create in kept:
        database.execute_sql(create)
    if is_postgres():
        for table in tables:
            database.execute_sql(f'VACUUM ANALYZE "{table}"')
    # SQLite: no ANALYZE. The app never runs it, so plans must be right without statistics.


def insert_rows(table: str, columns: list[str], rows: list[tuple]) -> None:
    """Append `rows` (tuples in `columns`' order) to `table`, inside the caller's transaction."""
    names = ", ".join(f'"{c}"' for c in columns)
    if is_postgres():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow(["\\N" if v is None else (("t" if v else "f") if isinstance(v, bool) else v) for v in row])
        buffer.seek(0)
        database.cursor().copy_expert(f"COPY \"{table}\" ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)
    else:
        database.cursor().executemany(f'INSERT INTO "{table}" ({names}) VALUES ({",".join("?" * len(columns))})', rows)


def model_rows(model: type[Model], rows: Iterable[dict]) -> tuple[list[str], list[tuple]]:
    """Column names and full tuples for `model`, each dict completed with the fields' defaults."""
    fields = list(model._meta.sorted_fields)
    defaults = {f.name: f.default() if callable(f.default) else f.default for f in fields}
    names = [f.name for f in fields]
    return [f.column_name for f in fields], [tuple({**defaults, **row}[n] for n in names) for row in rows]


def reset_sequence(table: str) -> None:
    """After COPY with explicit ids, PostgreSQL's id sequence must move past them."""
    if is_postgres():
        database.execute_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM \"{table}\"))")


def fast_sqlite() -> None:
    """A benchmark's SQLite: no fsync per commit, a server-sized page cache (256 MB)."""
    if not is_postgres():
        database.execute_sql("PRAGMA synchronous = OFF")
        database.execute_sql("PRAGMA cache_size = -262144")


@contextmanager
def postgres_schema(url: str, keep: str | None = None) -> Iterator[str]:
    """A URL into a fresh schema of `url`'s database, dropped at the end unless `keep` names it."""
    import psycopg2

    schema = keep or "bench_" + uuid.uuid4().hex[:8]
    admin = psycopg2.connect(url)
    admin.autocommit = True
    admin.cursor().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        if not keep:
            admin.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
