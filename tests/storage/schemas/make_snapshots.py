"""Write the schema snapshots of every earlier version: run by hand, once per released version.

    .venv/bin/python tests/storage/schemas/make_snapshots.py [--check]

For each schema version in git history (version N = 1 + len(MIGRATIONS) at a commit; the newest
commit of each version stands for it), it reads that commit's `storage/models.py` with `git show`
(nothing is checked out), and writes the CREATE TABLE / CREATE INDEX statements a fresh database
of that version got (`create_tables(ALL_MODELS)`) to `v<N>.sqlite.sql` and `v<N>.postgres.sql`
beside this script. The statements are executed on an in-memory SQLite database (and on
PostgreSQL when TEST_POSTGRES_URL is set, in a throwaway schema) before they are written, so a
snapshot that does not load is never committed. Existing snapshots are left alone (a released
version's schema does not change); `--check` only reports what would be written.

tests/storage/test_upgrades.py builds an old database from these files. A version that has no
commit of its own (several migrations landed in one commit, or the newest ones, not committed
yet) is built there from the newest snapshot below it plus MIGRATIONS.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from peewee import PostgresqlDatabase, SqliteDatabase, sort_models  # noqa: E402

from storage.db import database  # noqa: E402


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def migration_count(source: str) -> int:
    for node in ast.walk(ast.parse(source)):
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "MIGRATIONS" and isinstance(node.value, ast.List):
            return len(node.value.elts)
    raise ValueError("no MIGRATIONS list")


def versions_in_history() -> dict[int, str]:
    """Schema version → the newest commit at that version."""
    found: dict[int, str] = {}
    for commit in git("log", "--format=%H", "--", "storage/models.py", "storage/migrations.py").split():
        version = 1 + migration_count(git("show", f"{commit}:storage/migrations.py"))
        found.setdefault(version, commit)
    return dict(sorted(found.items()))


def statements(commit: str, db) -> list[str]:
    """CREATE statements of `create_tables(ALL_MODELS)` with that commit's models, for `db`'s dialect."""
    database.initialize(db)
    module = types.ModuleType(f"_models_{commit[:10]}")
    sys.modules[module.__name__] = module
    exec(compile(git("show", f"{commit}:storage/models.py"), f"{commit[:10]}:storage/models.py", "exec"), module.__dict__)
    out: list[str] = []
    for model in sort_models(module.ALL_MODELS):
        schema = model._schema
        for node in [schema._create_table(safe=False), *schema._create_indexes(safe=False)]:
            sql, params = db.get_sql_context().sql(node).query()
            assert not params, (sql, params)
            out.append(sql)
    return out


def load_check(sql: list[str], kind: str) -> None:
    if kind == "sqlite":
        db = SqliteDatabase(":memory:", pragmas={"foreign_keys": 1})
        for statement in sql:
            db.execute_sql(statement)
        db.close()
        return
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        print("  (TEST_POSTGRES_URL not set: PostgreSQL snapshot not test-loaded)")
        return
    import psycopg2

    schema = "snap_" + uuid.uuid4().hex[:10]
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}")
            for statement in sql:
                cursor.execute(statement)
        conn.rollback()
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    check_only = "--check" in argv
    for version, commit in versions_in_history().items():
        for kind, db in (("sqlite", SqliteDatabase(":memory:")), ("postgres", PostgresqlDatabase("snapshot"))):
            path = HERE / f"v{version}.{kind}.sql"
            if path.exists():
                print(f"{path.name}: kept (commit {commit[:10]})")
                continue
            sql = statements(commit, db)
            load_check(sql, kind)
            if check_only:
                print(f"{path.name}: would write {len(sql)} statements from commit {commit[:10]}")
                continue
            header = (
                f"-- Schema version {version} as a fresh {kind} database had it: storage/models.py at commit {commit}.\n"
                "-- Written by tests/storage/schemas/make_snapshots.py; do not edit.\n"
            )
            path.write_text(header + "".join(f"{s};\n" for s in sql))
            print(f"{path.name}: {len(sql)} statements from commit {commit[:10]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
