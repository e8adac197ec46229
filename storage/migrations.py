"""Schema versions. A new database gets today's tables and the latest version stamp; an existing
one runs the migrations it has not seen, in order, all in one transaction: an upgrade is kept
whole or not at all.

Upgrades keep data (tests/storage/test_upgrades.py upgrades a database of every earlier version,
rows in every table, on both databases). On SQLite a migration that adds a NOT NULL column or
changes one makes peewee rebuild the table (copy, DROP TABLE, rename); with foreign keys on, that
DROP deletes the rows of every table pointing at it (ON DELETE CASCADE) and nothing notices. So
SQLite migrates with foreign keys off (set on the migrating connection, outside any transaction,
as SQLite's own procedure for schema changes says), runs PRAGMA foreign_key_check after each
migration (a new violation undoes the whole upgrade, MigrationError), and a SQLite file is first
copied beside itself (`<file>.v<N>-backup-<UTC time>`, SQLite's online backup API).

To change the schema: change the model, then append a function to MIGRATIONS that brings an
older database to the same shape (playhouse.migrate).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from peewee import Database
from playhouse.migrate import SchemaMigrator

from storage.db import database, is_postgres
from storage.models import ALL_MODELS, SchemaVersion

log = logging.getLogger(__name__)


def _v2_task_queue_and_membership_order(migrator: SchemaMigrator) -> None:
    """The durable task queue's journal; membership events ordered by Slack's event_ts; every card
    redrawn once, since its buttons now carry the codec's values and the new action ids."""
    from peewee import BigIntegerField
    from playhouse.migrate import migrate as run

    from storage.models import RepairOrder, TaskRecord

    database.obj.create_tables([TaskRecord], safe=True)
    run(migrator.add_column("participant", "membership_us", BigIntegerField(null=True)))
    RepairOrder.update(slack_dirty=True).execute()


def _v3_customer_conversation(migrator: SchemaMigrator) -> None:
    """Texts with customers; files' origin (a customer's MMS media); the customer-message notification."""
    from peewee import BooleanField, CharField
    from playhouse.migrate import migrate as run

    from storage.models import SmsMessage

    database.obj.create_tables([SmsMessage], safe=True)
    run(
        migrator.add_column("ro_file", "origin", CharField(default="staff", max_length=16)),
        migrator.add_column("ro_file", "origin_ref", CharField(null=True, max_length=80)),
        migrator.add_index("ro_file", ("origin_ref",), True),
        migrator.add_column("staff_user", "notify_customer_messages", BooleanField(default=False)),
    )


def _v4_merging_videos(migrator: SchemaMigrator) -> None:
    """Merge jobs, and the sources of a merged video."""
    from peewee import TextField
    from playhouse.migrate import migrate as run

    from storage.models import MergeJob

    database.obj.create_tables([MergeJob], safe=True)
    run(migrator.add_column("ro_file", "derived_from", TextField(null=True)))


def _v5_unsure_sends(migrator: SchemaMigrator) -> None:
    """A send whose last attempt may or may not have reached Twilio."""
    from peewee import DateTimeField
    from playhouse.migrate import migrate as run

    run(migrator.add_column("customer_send", "unsure_since", DateTimeField(null=True)))


def _v6_merge_presses_and_ffmpeg(migrator: SchemaMigrator) -> None:
    """A merge job's press (one job per press of Merge) and the ffmpeg working on it. (A database
    older than v4 got merge_job from today's model, with these columns already: skipped.)"""
    from peewee import BigIntegerField, CharField, IntegerField
    from playhouse.migrate import migrate as run

    have = {c.name for c in database.obj.get_columns("merge_job")}
    columns = {
        "request_key": CharField(null=True, max_length=191),
        "ffmpeg_pid": IntegerField(null=True),
        "ffmpeg_started": BigIntegerField(null=True),
        "ffmpeg_holder": CharField(null=True, max_length=128),
    }
    run(*(migrator.add_column("merge_job", name, field) for name, field in columns.items() if name not in have))
    if "merge_job_request_key" not in {i.name for i in database.obj.get_indexes("merge_job")}:
        run(migrator.add_index("merge_job", ("request_key",), True))


def _v7_unsure_replies(migrator: SchemaMigrator) -> None:
    """A staff reply whose last attempt may or may not have reached Twilio, and its earlier sids.
    (A database older than v3 got sms_message from today's model, with these columns already.)"""
    from peewee import DateTimeField, TextField
    from playhouse.migrate import migrate as run

    have = {c.name for c in database.obj.get_columns("sms_message")}
    columns = {"unsure_since": DateTimeField(null=True), "earlier_sids": TextField(default="")}
    run(*(migrator.add_column("sms_message", name, field) for name, field in columns.items() if name not in have))


def _v8_guests(migrator: SchemaMigrator) -> None:
    """Slack guests (single- or multi-channel): they see only the ROs whose channels they are in."""
    from peewee import BooleanField
    from playhouse.migrate import migrate as run

    if "is_guest" not in {c.name for c in database.obj.get_columns("staff_user")}:
        run(migrator.add_column("staff_user", "is_guest", BooleanField(default=False)))


def _v9_card_pin_and_deleted_channels(migrator: SchemaMigrator) -> None:
    """Whether the RO card is pinned (a pin Slack refused is tried again) and when the RO's
    channel was deleted. Cards posted before were pinned with them: marked pinned."""
    from peewee import BooleanField, DateTimeField
    from playhouse.migrate import migrate as run

    from storage.models import RepairOrder

    have = {c.name for c in database.obj.get_columns("repair_order")}
    if "channel_gone_at" not in have:
        run(migrator.add_column("repair_order", "channel_gone_at", DateTimeField(null=True)))
    if "card_pinned" not in have:
        run(migrator.add_column("repair_order", "card_pinned", BooleanField(default=False)))
        RepairOrder.update(card_pinned=True).where(RepairOrder.card_ts.is_null(False)).execute()


def _v10_metrics(migrator: SchemaMigrator) -> None:
    """Who may see metrics; the metrics' record of what happened, filled from what earlier
    versions kept (staff files, messages, sends, replies, customer texts; page views were not kept);
    the last week posted to REPORT_CHANNEL (weekly_report), none yet."""
    from peewee import BooleanField
    from playhouse.migrate import migrate as run

    from storage.metric_events import backfill
    from storage.models import MetricEvent, WeeklyReport

    if "can_see_metrics" not in {c.name for c in database.obj.get_columns("staff_user")}:
        run(migrator.add_column("staff_user", "can_see_metrics", BooleanField(default=False)))
    database.obj.create_tables([MetricEvent, WeeklyReport], safe=True)
    backfill()


def _v11_archived_channels(migrator: SchemaMigrator) -> None:
    """The archive job: when it archived an RO's channel, whether the app did (a channel archived
    by hand stays archived when the RO reopens), and the last note it posted before archiving."""
    from peewee import BooleanField, CharField, DateTimeField
    from playhouse.migrate import migrate as run

    have = {c.name for c in database.obj.get_columns("repair_order")}
    if "channel_archived_at" not in have:
        run(migrator.add_column("repair_order", "channel_archived_at", DateTimeField(null=True)))
    if "archived_by_app" not in have:
        run(migrator.add_column("repair_order", "archived_by_app", BooleanField(default=False)))
    if "archive_note_ts" not in have:
        run(migrator.add_column("repair_order", "archive_note_ts", CharField(null=True, max_length=32)))


def _v12_replaced_channels(migrator: SchemaMigrator) -> None:
    """A reopened RO whose archived channel Slack would not let the bot unarchive gets a new one:
    the old channel, remembered until the new one links it and its people are invited."""
    from peewee import CharField
    from playhouse.migrate import migrate as run

    if "replaced_channel_id" not in {c.name for c in database.obj.get_columns("repair_order")}:
        run(migrator.add_column("repair_order", "replaced_channel_id", CharField(null=True, max_length=32)))


# MIGRATIONS[i] brings a database from version i+1 to i+2. Version 1 is the initial schema.
MIGRATIONS: list[Callable[[SchemaMigrator], None]] = [
    _v2_task_queue_and_membership_order,
    _v3_customer_conversation,
    _v4_merging_videos,
    _v5_unsure_sends,
    _v6_merge_presses_and_ffmpeg,
    _v7_unsure_replies,
    _v8_guests,
    _v9_card_pin_and_deleted_channels,
    _v10_metrics,
    _v11_archived_channels,
    _v12_replaced_channels,
]
LATEST = 1 + len(MIGRATIONS)


def current_version(db: Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


class MigrationError(RuntimeError):
    """An upgrade that would have broken data; nothing of it was kept."""


@dataclass(frozen=True)
class Upgrade:
    version: int  # the schema version now
    from_version: int  # before (0: a new database, created at `version`)
    backup: str | None = None  # the copy of the SQLite file made before migrating it


def migrate(migrations: list[Callable[[SchemaMigrator], None]] | None = None) -> int:
    """Bring the schema to the latest version; safe to run from several processes at once.
    Returns the version. (`migrations` defaults to MIGRATIONS.) See upgrade()."""
    return upgrade(migrations).version


def upgrade(migrations: list[Callable[[SchemaMigrator], None]] | None = None) -> Upgrade:
    """migrate(), saying from which version and where the SQLite file was copied first. Raises
    MigrationError, the database untouched, when a migration leaves a foreign key pointing nowhere."""
    migrations = MIGRATIONS if migrations is None else migrations
    latest = 1 + len(migrations)
    db = database.obj
    with database.connection_context():
        with _schema_lock(db):
            version = current_version(db)
            if version == 0:
                db.create_tables(ALL_MODELS, safe=True)
                SchemaVersion.create(version=latest)
                log.info("database created at schema version %s", latest)
                return Upgrade(latest, 0)
        if version >= latest:
            return Upgrade(version, version)
        with _foreign_keys_off(db), _schema_lock(db):
            # Read again under the lock: another process may have migrated while we waited.
            start = current_version(db)
            if start >= latest:
                return Upgrade(start, start)
            backup = _backup_sqlite_file(db, start)
            broken_before = _foreign_key_violations(db)
            if broken_before:
                log.warning("the database has %s foreign-key violation(s) from before this upgrade", len(broken_before))
            migrator = SchemaMigrator.from_database(db)
            for version in range(start, latest):
                migrations[version - 1](migrator)
                _check_foreign_keys(db, version + 1, start, broken_before)
                SchemaVersion.create(version=version + 1)
        log.info("database migrated from schema version %s to %s", start, latest)
        return Upgrade(latest, start, backup)


@contextmanager
def _foreign_keys_off(db: Database) -> Iterator[None]:
    """SQLite: foreign keys off on this connection while it migrates, so a table rebuild's DROP
    TABLE deletes nothing else. The pragma is a silent no-op inside a transaction: read it back."""
    if is_postgres():
        yield
        return
    db.execute_sql("PRAGMA foreign_keys = OFF")
    if db.execute_sql("PRAGMA foreign_keys").fetchone()[0]:
        raise MigrationError(
            "cannot switch SQLite foreign keys off to migrate: migrate() was called inside a transaction; nothing was changed"
        )
    try:
        yield
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")


def _foreign_key_violations(db: Database) -> set[tuple]:
    if is_postgres():
        return set()  # PostgreSQL enforces every foreign key in every statement
    return {tuple(row) for row in db.execute_sql("PRAGMA foreign_key_check").fetchall()}


def _check_foreign_keys(db: Database, version: int, start: int, before: set[tuple]) -> None:
    new = _foreign_key_violations(db) - before
    if not new:
        return
    counts = Counter((table, parent) for table, _rowid, parent, _fk in new)
    detail = ", ".join(f"{n} row(s) of {table} point at no {parent}" for (table, parent), n in sorted(counts.items()))
    raise MigrationError(
        f"the migration to schema version {version} broke foreign keys ({detail}); "
        f"the whole upgrade was undone: the database is still at schema version {start}"
    )


def _backup_sqlite_file(db: Database, version: int) -> str | None:
    """Copy the SQLite file beside itself before migrating it; the copy's path (None: not a file)."""
    path = db.database if not is_postgres() else None
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    path = os.path.abspath(path)
    target = f"{path}.v{version}-backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.v{version}-backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{n}"
    # SQLite's online backup API, not a file copy (WAL: the newest pages may be in the -wal file).
    # From a connection of its own: the migrating one holds the write lock and a backup from it
    # waits forever; this one reads the last committed state, the one about to be migrated.
    source = sqlite3.connect(path, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    log.warning("copied the schema version %s database to %s before migrating it", version, target)
    return target


@contextmanager
def _schema_lock(db: Database) -> Iterator[None]:
    """A transaction that holds the database's write lock, so two processes starting together do
    not both create tables or run a migration (SQLite transactions begin IMMEDIATE, see storage.db;
    PostgreSQL needs an advisory lock)."""
    with db.atomic():
        if is_postgres():
            db.execute_sql("SELECT pg_advisory_xact_lock(781234)")
        yield
