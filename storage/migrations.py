"""Schema versions. A new database gets today's tables and the latest version stamp; an existing
one runs the migrations it has not seen, in order, each in its own transaction.

To change the schema: change the model, then append a function to MIGRATIONS that brings an
older database to the same shape (playhouse.migrate).
"""
from __future__ import annotations

import logging
from typing import Callable

from peewee import Database
from playhouse.migrate import SchemaMigrator

from storage.db import database, is_postgres
from storage.models import ALL_MODELS, SchemaVersion

log = logging.getLogger(__name__)

# MIGRATIONS[i] brings a database from version i+1 to i+2. Version 1 is the initial schema.
MIGRATIONS: list[Callable[[SchemaMigrator], None]] = []
LATEST = 1 + len(MIGRATIONS)


def current_version(db: Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate() -> int:
    """Bring the schema to LATEST; safe to run from several processes at once. Returns the version."""
    db = database.obj
    with database.connection_context():
        # Two processes starting together must not both create tables: take a write lock first
        # (SQLite transactions begin IMMEDIATE, see storage.db; PostgreSQL needs the advisory lock).
        with db.atomic():
            if is_postgres():
                db.execute_sql("SELECT pg_advisory_xact_lock(781234)")
            version = current_version(db)
            if version == 0:
                db.create_tables(ALL_MODELS, safe=True)
                SchemaVersion.create(version=LATEST)
                log.info("database created at schema version %s", LATEST)
                return LATEST
        migrator = SchemaMigrator.from_database(db)
        while version < LATEST:
            with db.atomic():
                MIGRATIONS[version - 1](migrator)
                version += 1
                SchemaVersion.create(version=version)
            log.info("database migrated to schema version %s", version)
        return version
