"""Upgrades keep data: a database of every earlier schema version, with rows in every table, is
migrated to today on SQLite and PostgreSQL and keeps every row and every foreign key.

Old databases are built from the snapshots in tests/storage/schemas (written once from git history
by make_snapshots.py there); a version without a snapshot of its own is built from the newest
snapshot below it plus MIGRATIONS, so migrations added later are covered without new files.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from playhouse.migrate import migrate as run

from storage.db import database, is_postgres, open_database
from storage.migrations import LATEST, MIGRATIONS, current_version, migrate
from storage.models import SchemaVersion

SCHEMAS = Path(__file__).parent / "schemas"
ROOT = Path(__file__).resolve().parents[2]


def _kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def _snapshots(kind: str) -> dict[int, Path]:
    found = {}
    for path in SCHEMAS.glob(f"v*.{kind}.sql"):
        found[int(re.match(r"v(\d+)\.", path.name).group(1))] = path
    return found


def build_database(url: str, version: int) -> None:
    """A database at `version`: the newest snapshot at or below it, stamped, then MIGRATIONS up to it."""
    snapshots = _snapshots(_kind(url))
    base = max(v for v in snapshots if v <= version)
    open_database(url)
    with database.connection_context():
        with database.atomic():
            text = "\n".join(line for line in snapshots[base].read_text().splitlines() if not line.startswith("--"))
            for statement in filter(None, (s.strip() for s in text.split(";\n"))):
                database.execute_sql(statement)
            SchemaVersion.create(version=base)
    if base < version:
        assert migrate(MIGRATIONS[: version - 1]) == version
    with database.connection_context():
        assert current_version(database.obj) == version


# -- a generic filler: every table, from the schema alone ------------------------------------------


def _tables() -> list[str]:
    return [t for t in database.get_tables() if t != "schema_version"]


def _foreign_keys() -> dict[str, list[tuple[str, str, str]]]:
    """Table → its foreign keys as (column, parent table, parent column), read once (PostgreSQL's
    information_schema answers one table's in ~20 ms: pg_catalog in one query instead)."""
    found: dict[str, list[tuple[str, str, str]]] = {t: [] for t in _tables()}
    if not is_postgres():
        for table in found:
            found[table] = [(fk.column, fk.dest_table, fk.dest_column) for fk in database.get_foreign_keys(table)]
        return found
    cursor = database.execute_sql(
        "SELECT t.relname, a.attname, p.relname, pa.attname FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "JOIN pg_class p ON p.oid = c.confrelid "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1] "
        "WHERE c.contype = 'f' AND n.nspname = current_schema()"
    )
    for table, column, parent, parent_column in cursor.fetchall():
        if table in found:
            found[table].append((column, parent, parent_column))
    return found


def _max_lengths(table: str) -> dict[str, int]:
    if is_postgres():
        cursor = database.execute_sql(
            "SELECT column_name, character_maximum_length FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
        return {name: length for name, length in cursor.fetchall() if length}
    lengths = {}
    for column in database.get_columns(table):
        match = re.search(r"\((\d+)\)", column.data_type)
        if match:
            lengths[column.name] = int(match.group(1))
    return lengths


def _value(data_type: str, column: str, i: int, max_length: int | None):
    kind = data_type.lower()
    if "bool" in kind:
        return i % 2 == 1
    if "int" in kind or "serial" in kind:
        return i + 1
    if "timestamp" in kind or "datetime" in kind:
        return datetime(2024, 5, 1 + i, 12, 30)
    if kind == "date":
        return date(2024, 5, 1 + i)
    if any(word in kind for word in ("real", "double", "float", "numeric", "decimal")):
        return 1.5 + i
    if "blob" in kind or "bytea" in kind:
        return f"{column}{i}".encode()
    value = f"{column}-{i + 1}"
    return value[-max_length:] if max_length else value


def _in_dependency_order(tables: list[str], foreign_keys: dict[str, list[tuple[str, str, str]]]) -> list[str]:
    parents = {t: {parent for _, parent, _ in foreign_keys[t] if parent != t} & set(tables) for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and parents[t] <= set(ordered)]
        assert ready, f"foreign-key cycle among {set(tables) - set(ordered)}"
        ordered += sorted(ready)
    return ordered


def fill_every_table(rows: int = 2, only: set[str] | None = None) -> None:
    """`rows` rows in every table (or in `only`): every column set, NOT NULL or not, and every
    foreign key (nullable ones too) pointing at a real row of its parent."""
    inserted: dict[str, dict[str, list]] = {}
    foreign_keys = _foreign_keys()
    tables = [t for t in foreign_keys if only is None or t in only]
    with database.atomic():
        for table in _in_dependency_order(tables, foreign_keys):
            fks = {column: (parent, parent_column) for column, parent, parent_column in foreign_keys[table]}
            lengths = _max_lengths(table)
            columns = database.get_columns(table)
            values: dict[str, list] = {c.name: [] for c in columns}
            for i in range(rows):
                row = []
                for column in columns:
                    fk = fks.get(column.name)
                    if fk is not None and fk[0] in inserted:
                        value = inserted[fk[0]][fk[1]][i % rows]
                    elif fk is not None:  # a parent left out by `only`, or the table itself
                        value = None if column.null else _value(column.data_type, column.name, i, lengths.get(column.name))
                    else:
                        value = _value(column.data_type, column.name, i, lengths.get(column.name))
                    values[column.name].append(value)
                    row.append(value)
                names = ", ".join(f'"{c.name}"' for c in columns)
                marks = ", ".join([database.param] * len(columns))
                database.execute_sql(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', row)
            inserted[table] = values


def contents() -> dict[str, tuple[int, list]]:
    """Per table: its row count and, sorted, each row's key and foreign-key columns."""
    seen = {}
    for table, fks in _foreign_keys().items():
        keys = database.get_primary_keys(table) + sorted(column for column, _, _ in fks)
        select = ", ".join(f'"{c}"' for c in keys) or "1"
        rows = database.execute_sql(f'SELECT {select} FROM "{table}"').fetchall()
        seen[table] = (len(rows), sorted(tuple(str(v) for v in row) for row in rows))
    return seen


def dangling_foreign_keys() -> list[str]:
    """Every foreign-key value, on either database, that points at no row."""
    found = []
    for table, fks in _foreign_keys().items():
        for column, parent, parent_column in fks:
            count = database.execute_sql(
                f'SELECT COUNT(*) FROM "{table}" AS c WHERE c."{column}" IS NOT NULL AND NOT EXISTS '
                f'(SELECT 1 FROM "{parent}" AS p WHERE p."{parent_column}" = c."{column}")'
            ).fetchone()[0]
            if count:
                found.append(f"{table}.{column} → {parent}: {count}")
    if not is_postgres():
        found += [repr(tuple(row)) for row in database.execute_sql("PRAGMA foreign_key_check").fetchall()]
    return found


def assert_nothing_lost(before: dict[str, tuple[int, list]]) -> None:
    after = contents()
    counts = {t: (before[t][0], after.get(t, (None,))[0]) for t in before if before[t][0] != after.get(t, (None,))[0]}
    assert counts == {}, f"row counts (before, after) that changed: {counts}"
    for table, (_, keys) in before.items():
        assert after[table][1] == keys, f"{table}: keys or foreign keys changed"
    assert dangling_foreign_keys() == []


# -- every version, both databases -----------------------------------------------------------------


@pytest.mark.parametrize("version", range(1, LATEST))
def test_a_database_of_every_earlier_version_keeps_every_row(database_url, version):
    build_database(database_url, version)
    with database.connection_context():
        fill_every_table()
        before = contents()
        assert all(count == 2 for count, _ in before.values()), before
        assert dangling_foreign_keys() == []
    assert migrate() == LATEST
    with database.connection_context():
        assert current_version(database.obj) == LATEST
        assert_nothing_lost(before)


def test_a_version_2_send_keeps_its_file_after_upgrading(sqlite_url):
    """Migration 3 rebuilds ro_file on SQLite: with foreign keys on, its DROP TABLE emptied customer_send_file."""
    build_database(sqlite_url, 2)
    with database.connection_context():
        fill_every_table(rows=1, only={"repair_order", "ro_file", "customer_send", "customer_send_file"})
        link = database.execute_sql("SELECT send_id, file_id FROM customer_send_file").fetchall()
        assert len(link) == 1
    assert migrate() == LATEST
    with database.connection_context():
        assert database.execute_sql("SELECT send_id, file_id FROM customer_send_file").fetchall() == link
        assert database.execute_sql("PRAGMA foreign_key_check").fetchall() == []
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def _add_not_null_to_repair_order(migrator) -> None:
    from peewee import CharField

    run(migrator.add_column("repair_order", "test_extra", CharField(default="x", max_length=8)))


def test_a_rebuild_of_repair_order_keeps_its_participants_files_activity_and_history(database_url):
    """A future NOT NULL column on repair_order rebuilds it on SQLite; every child row stays."""
    build_database(database_url, LATEST)
    with database.connection_context():
        fill_every_table()
        before = contents()
    assert migrate([*MIGRATIONS, _add_not_null_to_repair_order]) == LATEST + 1
    with database.connection_context():
        assert "test_extra" in {c.name for c in database.get_columns("repair_order")}
        assert_nothing_lost(before)


def test_a_migration_that_leaves_a_dangling_foreign_key_is_undone_whole(sqlite_url):
    """The check after the migrations finds what foreign keys switched off let through: the upgrade
    stops with the table named, and the database is as it was (the earlier migration undone too)."""
    from storage.migrations import MigrationError

    build_database(sqlite_url, LATEST)
    with database.connection_context():
        fill_every_table()
        before = contents()

    def orphan_the_participants(migrator) -> None:
        database.execute_sql("DELETE FROM repair_order")

    with pytest.raises(MigrationError, match=r"participant.*repair_order"):
        migrate([*MIGRATIONS, _add_not_null_to_repair_order, orphan_the_participants])
    with database.connection_context():
        assert current_version(database.obj) == LATEST
        assert "test_extra" not in {c.name for c in database.get_columns("repair_order")}
        assert_nothing_lost(before)
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


# -- the copy kept before upgrading a SQLite file --------------------------------------------------


def test_upgrading_a_sqlite_file_keeps_a_copy_of_it_beside_it_first(tmp_path, caplog):
    from storage.migrations import upgrade

    url = f"sqlite:///{tmp_path}/repair_orders.db"
    build_database(url, 2)
    with database.connection_context():
        fill_every_table()
        before = contents()
    caplog.set_level("INFO", logger="storage.migrations")
    result = upgrade()
    assert (result.from_version, result.version) == (2, LATEST)
    backup = Path(result.backup)
    assert backup.parent == tmp_path and re.fullmatch(r"repair_orders\.db\.v2-backup-\d{8}T\d{6}Z", backup.name)
    assert str(backup) in caplog.text
    copy = sqlite3.connect(backup)
    try:
        assert copy.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 2
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for table, (count, _) in before.items():
            assert copy.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] == count, table
    finally:
        copy.close()
    assert upgrade().backup is None  # nothing to migrate, nothing copied
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == [backup.name]


def test_a_new_database_is_not_copied(tmp_path):
    from storage.migrations import upgrade

    open_database(f"sqlite:///{tmp_path}/new.db")
    assert upgrade().backup is None
    assert [p.name for p in tmp_path.iterdir() if "backup" in p.name] == []


def test_bot_migrate_upgrades_and_says_where_the_copy_is(tmp_path):
    url = f"sqlite:///{tmp_path}/repair_orders.db"
    build_database(url, 3)
    database.obj.close()
    env = {**os.environ, "DATABASE_URL": url, "DOTENV_PATH": str(tmp_path / "none.env")}
    done = subprocess.run([sys.executable, "bot.py", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    backups = [p for p in tmp_path.iterdir() if "backup" in p.name]
    assert len(backups) == 1 and backups[0].name.startswith("repair_orders.db.v3-backup-")
    assert f"schema version {LATEST}" in done.stdout
    assert str(backups[0]) in done.stdout
