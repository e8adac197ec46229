"""Storage on SQLite and PostgreSQL: schema creation, versions, concurrent start, connection hygiene."""

from __future__ import annotations

import threading

import pytest
from peewee import IntegrityError

from storage.db import database, is_postgres, open_database, with_connection
from storage.migrations import LATEST, current_version, migrate
from storage.models import ALL_MODELS, Participant, ProcessedEvent, RepairOrder, SchemaVersion


def run_together(*targets, timeout: float = 60) -> list[BaseException]:
    """Run each target in its own thread, all at once; what they raised."""
    errors: list[BaseException] = []

    def guarded(target):
        try:
            target()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors


def test_new_database_gets_every_table_and_the_latest_version(db):
    for model in ALL_MODELS:
        assert db.table_exists(model._meta.table_name), model.__name__
    assert current_version(db.obj) == LATEST


def test_migrate_twice_changes_nothing(db):
    assert migrate() == LATEST
    assert SchemaVersion.select().count() == 1


def test_concurrent_start_creates_the_schema_once(database_url):
    open_database(database_url)
    assert run_together(*[migrate] * 4) == []
    with database.connection_context():
        assert SchemaVersion.select().count() == 1


def test_ro_is_unique_per_source_and_external_id(db):
    RepairOrder.create(source="file", external_id="48213", ro_number="48213")
    RepairOrder.create(source="tekmetric", external_id="48213", ro_number="48213")
    with pytest.raises(IntegrityError):
        with db.atomic():
            RepairOrder.create(source="file", external_id="48213", ro_number="48213")


def test_foreign_keys_are_enforced_and_cascade(db):
    ro = RepairOrder.create(source="file", external_id="1", ro_number="1")
    Participant.create(ro=ro, user_id="U1")
    with pytest.raises(IntegrityError):
        with db.atomic():
            Participant.create(ro=999999, user_id="U2")
    ro.delete_instance()
    assert Participant.select().count() == 0


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_url):
    open_database(sqlite_url)
    migrate()
    with database.connection_context():
        assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_worker_threads_get_their_own_connection_and_close_it(db):
    seen: list[bool] = []

    @with_connection
    def job():
        ProcessedEvent.create(event_id="Ev-thread")
        seen.append(database.is_closed())

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert seen == [False]
    assert ProcessedEvent.get_by_id("Ev-thread")
    # The pool (PostgreSQL) got its connection back: nothing is left checked out by the thread.
    if is_postgres():
        assert len(database.obj._in_use) <= 1


def test_a_transaction_that_reads_then_writes_waits_for_a_concurrent_writer(db):
    """The scheduler's sync reads an RO, then writes it, while the lease renewer and the web process
    write: on SQLite a deferred transaction failed at once with 'database is locked'."""
    read_done, other_started = threading.Event(), threading.Event()

    @with_connection
    def sync_like():
        with database.atomic():
            ProcessedEvent.select().count()  # the transaction now holds a read snapshot
            read_done.set()
            other_started.wait(5)
            # Give the other writer time to commit if nothing holds it back.
            threading.Event().wait(0.3)
            ProcessedEvent.create(event_id="Ev-sync")

    @with_connection
    def other_writer():
        read_done.wait(5)
        other_started.set()
        ProcessedEvent.create(event_id="Ev-other")

    assert run_together(sync_like, other_writer) == []
    assert {e.event_id for e in ProcessedEvent.select()} >= {"Ev-sync", "Ev-other"}


def test_every_thread_of_a_busy_process_gets_a_connection_at_once(db):
    """Web threads, Bolt listeners, background jobs and scheduler jobs each hold a connection while
    they work; with a pool smaller than that, a burst waited 10 s and Slack got a 500."""
    from handlers import LISTENER_THREADS

    holders = 8 + LISTENER_THREADS + 3 + 10  # --threads default, Bolt, task workers (QUEUE_WORKERS), APScheduler
    together = threading.Barrier(holders, timeout=30)

    @with_connection
    def hold():
        ProcessedEvent.select().count()
        together.wait()  # every thread holds its connection here at the same moment

    assert run_together(*[hold] * holders) == []


def test_processes_starting_together_run_each_migration_once(database_url):
    """Every process migrates at start; a migration must run once, whoever waited for the lock."""
    from peewee import IntegerField
    from playhouse.migrate import migrate as apply

    from storage.migrations import MIGRATIONS

    open_database(database_url)
    migrate()  # an existing database at today's version
    runs: list[int] = []

    def add_column(migrator):
        runs.append(1)
        apply(migrator.add_column("staff_user", "test_extra", IntegerField(null=True)))

    def start():
        assert migrate([*MIGRATIONS, add_column]) == LATEST + 1

    assert run_together(*[start] * 4) == [] and runs == [1]
    with database.connection_context():
        assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == [LATEST, LATEST + 1]


def test_a_version_1_database_is_brought_to_today(database_url):
    """An install from before the task queue: its tables are kept, the new ones added, every card redrawn."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run

    from storage.models import MergeJob, MetricEvent, SmsMessage, TaskRecord

    open_database(database_url)
    migrate()
    with database.connection_context():
        db = database.obj
        db.drop_tables([MetricEvent, MergeJob, TaskRecord, SmsMessage])
        migrator = SchemaMigrator.from_database(db)
        run(
            migrator.drop_index("ro_file", "ro_file_origin_ref"),
            migrator.drop_column("ro_file", "origin_ref"),
            migrator.drop_column("ro_file", "origin"),
            migrator.drop_column("ro_file", "derived_from"),
            migrator.drop_column("participant", "membership_us"),
            migrator.drop_column("staff_user", "notify_customer_messages"),
            migrator.drop_column("customer_send", "unsure_since"),
            migrator.drop_column("staff_user", "can_see_metrics"),
        )
        SchemaVersion.delete().execute()
        SchemaVersion.create(version=1)
        RepairOrder.create(source="file", external_id="1", ro_number="1", slack_dirty=False)
    assert migrate() == LATEST
    with database.connection_context():
        assert database.table_exists("task_record") and database.table_exists("sms_message")
        assert "membership_us" in {c.name for c in database.get_columns("participant")}
        assert {"origin", "origin_ref", "derived_from"} <= {c.name for c in database.get_columns("ro_file")}
        assert "unsure_since" in {c.name for c in database.get_columns("customer_send")}
        assert database.table_exists("merge_job")
        assert RepairOrder.select().where(RepairOrder.slack_dirty == False).count() == 0
        assert [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)] == list(range(1, LATEST + 1))
