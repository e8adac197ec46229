"""Schema versions. A new database gets today's tables and the latest version stamp; an existing
one runs the migrations it has not seen, in order, each in its own transaction.

To change the schema: change the model, then append a function to MIGRATIONS that brings an
older database to the same shape (playhouse.migrate).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


# MIGRATIONS[i] brings a database from version i+1 to i+2. Version 1 is the initial schema.
MIGRATIONS: list[Callable[[SchemaMigrator], None]] = [
    _v2_task_queue_and_membership_order,
    _v3_customer_conversation,
    _v4_merging_videos,
    _v5_unsure_sends,
    _v6_merge_presses_and_ffmpeg,
    _v7_unsure_replies,
]
LATEST = 1 + len(MIGRATIONS)


def current_version(db: Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(migrations: list[Callable[[SchemaMigrator], None]] | None = None) -> int:
    """Bring the schema to the latest version; safe to run from several processes at once.
    Returns the version. (`migrations` defaults to MIGRATIONS.)"""
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
                return latest
        migrator = SchemaMigrator.from_database(db)
        while True:
            with _schema_lock(db):
                # Read again under the lock: another process may have applied it while we waited.
                version = current_version(db)
                if version >= latest:
                    return version
                migrations[version - 1](migrator)
                SchemaVersion.create(version=version + 1)
            log.info("database migrated to schema version %s", version + 1)


@contextmanager
def _schema_lock(db: Database) -> Iterator[None]:
    """A transaction that holds the database's write lock, so two processes starting together do
    not both create tables or run a migration (SQLite transactions begin IMMEDIATE, see storage.db;
    PostgreSQL needs an advisory lock)."""
    with db.atomic():
        if is_postgres():
            db.execute_sql("SELECT pg_advisory_xact_lock(781234)")
        yield
