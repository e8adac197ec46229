"""Composition root and command line.

    python bot.py [serve]     web server, task workers and scheduler in one process (the one-machine default)
    python bot.py web         web server only (run `worker` and `scheduler` elsewhere)
    python bot.py worker      task-queue workers only
    python bot.py scheduler   DMS sync and timed jobs only
    python bot.py sync [--dry-run]
    python bot.py archive [--dry-run]   one pass of the archive job now
    python bot.py reindex     rebuild the search keys of every RO
    python bot.py migrate     bring the database to today's schema (a SQLite file is copied beside itself first)
    python bot.py check       configuration, database, object storage, Redis, Slack, DMS, the queue, line by line
    python bot.py media migrate   copy the local media folder (MEDIA_DIR) into MEDIA_URL's bucket
    python bot.py report [--from D] [--to D] [--out F.xlsx] [--lang fr] [--csv]   the metrics workbook (no Slack)

gunicorn can serve `bot:create_app()` directly (run `worker` processes beside it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask

from core.config import ConfigError, Settings, load_settings
from core.logsafe import configure_logging, redact, register_secret

log = logging.getLogger("bot")


def _settings(require_slack: bool) -> Settings:
    settings = load_settings(require_slack=require_slack)
    for secret in (
        settings.slack_signing_secret,
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.twilio_auth_token,
        settings.tekmetric_client_secret,
        settings.secret_key,
        urlsplit(settings.smtp_url or "").password,
        urlsplit(settings.redis_url or "").password,
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
        os.environ.get("AWS_SESSION_TOKEN"),
    ):
        register_secret(secret)
    return settings


def require_reachable(settings: Settings) -> None:
    """The object store and Redis answer (when configured), or one line says which does not."""
    from server.preflight import require_reachable as check

    check(settings)


def open_storage(settings: Settings) -> None:
    from storage.db import open_database
    from storage.migrations import migrate

    open_database(settings.database_url)
    migrate()


# Modules whose tasks any process must be able to run (they register them when imported).
TASK_MODULES = (
    "customers.conversation_flow",
    "customers.send_flow",
    "media.intake_flow",
    "media.merge_flow",
    "people.participants_flow",
    "reports.metrics_flow",
    "spaces.status_flow",
)


def load_tasks() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def build_services(settings: Settings):
    from slackapi.services import build_services as build

    load_tasks()
    return build(settings)


def build(settings: Settings):
    """Everything the web process needs, wired: (services, bolt app, flask app)."""
    from customers import customer_page, twilio_webhooks
    from handlers import build_bolt_app
    from server.web import create_flask_app

    services = build_services(settings)
    bolt_app = build_bolt_app(services)
    flask_app = create_flask_app(settings, bolt_app)
    flask_app.register_blueprint(customer_page.create_blueprint(settings))
    flask_app.register_blueprint(twilio_webhooks.create_blueprint(services))
    return services, bolt_app, flask_app


def create_app(settings: Settings | None = None) -> Flask:
    """Flask app factory (also what gunicorn loads: each worker that loads it opens its own Socket
    Mode connection when SLACK_APP_TOKEN is set; do not combine that with gunicorn's --preload,
    which would open it in the master, whose threads the workers do not inherit)."""
    from server.socket_mode import start_socket_mode

    if settings is None:
        configure_logging()
        settings = _settings(require_slack=True)
    open_storage(settings)
    _, bolt_app, flask_app = build(settings)
    start_socket_mode(settings, bolt_app)
    return flask_app


def feature_jobs(services) -> list:
    """Timed jobs beyond the DMS sync and the midnight rollover (run by the scheduler that leads)."""
    from apscheduler.triggers.interval import IntervalTrigger

    from core.cron import crontab_trigger
    from customers.conversation_flow import repost_waiting
    from people.home_flow import flush_notifications
    from reports.metrics_flow import weekly_report
    from server.scheduler import Job
    from spaces.archive_flow import archive_pass
    from storage.housekeeping import prune_old_rows
    from storage.models import utcnow

    tz = services.settings.shop_timezone

    def retry_file_copies() -> None:
        # Downloads that met Slack's HTML login page or a network error get another chance (a task: it downloads).
        slot = utcnow().strftime("%Y%m%d%H%M")
        services.tasks.enqueue("files.retry_copies", key=f"retry-copies:{slot}")

    jobs = [
        Job("file-copy-retry", retry_file_copies, IntervalTrigger(minutes=10, timezone=tz)),
        # Notification DMs are batched per RO; the minute tick sends those that are due.
        Job("notifications", lambda: flush_notifications(services), IntervalTrigger(minutes=1, timezone=tz)),
        Job("prune-old-rows", prune_old_rows, IntervalTrigger(hours=1, timezone=tz)),
        # Customer texts whose post to Slack gave up (they keep their RO) are posted when Slack answers again.
        Job("customer-texts-repost", lambda: repost_waiting(services), IntervalTrigger(minutes=5, timezone=tz)),
        # Work whose worker died (or whose message was lost) is queued again.
        Job("task-sweep", services.tasks.sweep, IntervalTrigger(seconds=30, timezone=tz)),
        # Completed ROs' channels archived (reopened ones unarchived), a small batch a minute:
        # Slack's tier 2, and a backlog of years drains over hours.
        Job("channel-archive", lambda: archive_pass(services), IntervalTrigger(minutes=1, timezone=tz)),
    ]
    if services.settings.report_channel:
        # Each week is queued under its own key: a second scheduler, or a tick run twice, finds it
        # queued already. On REPORT_CRON, and hourly from the scheduler's start (half a minute in),
        # so weeks missed while no scheduler ran, or a REPORT_CRON time APScheduler dropped as
        # misfired (coalesce, misfire_grace_time), are caught up (reports.metrics_flow.weekly_report).
        from datetime import datetime, timedelta

        trigger = crontab_trigger(services.settings.report_cron, tz)
        jobs.append(Job("weekly-report", lambda: weekly_report(services), trigger))
        soon = datetime.now(tz) + timedelta(seconds=30)
        catch_up = IntervalTrigger(hours=1, start_date=soon, timezone=tz)
        jobs.append(Job("weekly-report-catch-up", lambda: weekly_report(services), catch_up))
    return jobs


def start_scheduler(settings: Settings, services=None):
    """Start the background scheduler (it runs jobs only while it holds the database lease)."""
    from dms.connector import open_connector
    from server.scheduler import Scheduler

    services = services or build_services(settings)
    scheduler = Scheduler(services, open_connector(settings), extra_jobs=feature_jobs(services))
    scheduler.start()
    return scheduler


# -- commands ------------------------------------------------------------------------------------


def cmd_web(args, with_background: bool = False) -> int:
    from server.gunicorn_runner import run_server
    from server.socket_mode import SocketModeRefused, check_token, start_socket_mode

    settings = _settings(require_slack=True)
    require_reachable(settings)
    try:
        # A refused app-level token stops start-up here, in one line, before anything serves.
        first_url = check_token(settings)
    except SocketModeRefused as exc:
        print(f"Socket Mode: {exc}", file=sys.stderr)
        return 2
    open_storage(settings)
    services, bolt_app, app = build(settings)
    handed_over = [first_url]
    running: dict = {}

    def start() -> None:
        # In the gunicorn worker that serves (threads started before its fork would not be in it).
        running["socket"] = start_socket_mode(settings, bolt_app, handed_over.pop() if handed_over else None)
        if with_background:
            services.tasks.start_workers(settings.queue_workers)
            running["scheduler"] = start_scheduler(settings, services)

    def stop() -> None:
        if running.get("socket"):
            running["socket"].stop()
        if running.get("scheduler"):
            running["scheduler"].shutdown()
        if with_background:
            services.tasks.stop_workers()

    # Started inside the server's worker, so the web app, the task workers and the jobs share one
    # process; stopped with it, so the lease is handed over at once and started tasks finish.
    run_server(app, settings.port, threads=args.threads, on_worker_start=start, on_worker_exit=stop)
    return 0


def cmd_worker(args) -> int:
    settings = _settings(require_slack=True)
    require_reachable(settings)
    open_storage(settings)
    services = build_services(settings)
    log.info("task workers running (%s); Ctrl-C to stop", "Redis" if settings.redis_url else "database queue")
    services.tasks.run_workers(args.workers or settings.queue_workers)
    return 0


def cmd_scheduler(args) -> int:
    import signal
    import threading

    settings = _settings(require_slack=True)
    require_reachable(settings)
    open_storage(settings)
    scheduler = start_scheduler(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("scheduler running; Ctrl-C to stop")
    stop.wait()
    scheduler.shutdown()
    return 0


def cmd_sync(args) -> int:
    if args.dry_run:
        return _dry_run()
    from dms.connector import open_connector
    from dms.errors import DmsError
    from spaces.sync_flow import describe_publish, sync_once
    from storage.leases import LeaseBusy

    settings = _settings(require_slack=True)
    open_storage(settings)
    try:
        outcome = sync_once(build_services(settings), open_connector(settings))
    except LeaseBusy:
        print("Another sync is running right now (scheduler or another `sync`); try again in a minute.", file=sys.stderr)
        return 1
    except (DmsError, ValueError) as exc:
        print(f"DMS problem: {exc}", file=sys.stderr)
        return 1
    report = outcome.sync
    print(f"DMS: {report.summary()}")
    for label, numbers in (("created", report.created), ("changed", report.changed)):
        if numbers:
            print(f"  {label}: {', '.join(numbers[:50])}{' …' if len(numbers) > 50 else ''}")
    for reject in report.rejected:
        print(redact(f"  skipped {reject.ref}: {reject.reason}"))
    print(f"Slack: {describe_publish(outcome.publish)}")
    return 1 if report.error or (outcome.publish and outcome.publish.stopped_early) else 0


def _dry_run() -> int:
    """The DMS alone: each RO, its computed status and channel name. No Slack, no database."""
    from datetime import datetime

    from dms.connector import open_connector
    from dms.errors import DmsError
    from dms.status_rules import computed_status
    from spaces.channel_names import channel_name

    settings = _settings(require_slack=False)
    if settings.dms_file_is_sample and not Path(settings.dms_file).exists():
        # A dry run writes nothing: render the sample feed in a temporary folder instead of data/.
        settings = replace(settings, dms_file=str(Path(tempfile.mkdtemp(prefix="ro-dry-run-")) / "sample_feed.csv"))
    try:
        result = open_connector(settings).fetch(None)
    except (DmsError, ValueError) as exc:
        print(f"DMS problem: {exc}", file=sys.stderr)
        return 1
    now = datetime.now(settings.shop_timezone)
    print(f"{'RO':<10} {'status':<12} {'appointment':<17} channel")
    for record in sorted(result.records, key=lambda r: (r.appointment_at is None, r.appointment_at or now)):
        status = computed_status(record.closed, record.appointment_at, now, settings.shop_timezone)
        when = (
            record.appointment_at.astimezone(settings.shop_timezone).strftime("%Y-%m-%d %H:%M") if record.appointment_at else "—"
        )
        print(f"{record.ro_number:<10} {status:<12} {when:<17} #{channel_name(record.ro_number, record.customer_last_name)}")
    for reject in result.rejected:
        print(redact(f"skipped {reject.ref}: {reject.reason}"))
    print(f"{len(result.records)} RO(s), {len(result.rejected)} skipped. Nothing was written (dry run).")
    return 0


def cmd_archive(args) -> int:
    """One pass of the archive job now; prints each RO archived and unarchived (with --dry-run,
    what would be, touching neither Slack nor the database)."""
    from spaces.archive_flow import archive_pass, describe, plan
    from storage.leases import LeaseBusy
    from storage.models import utcnow

    settings = _settings(require_slack=not args.dry_run)
    open_storage(settings)
    if args.dry_run:
        report = plan(utcnow(), settings.archive_after_days)
    else:
        try:
            report = archive_pass(build_services(settings))
        except LeaseBusy:
            print("Another archive pass is running right now; try again in a minute.", file=sys.stderr)
            return 1
    if settings.archive_after_days == 0:
        print("ARCHIVE_AFTER_DAYS=0: channels are never archived (reopened ones are still unarchived).")
    for line in describe(report):
        print(line)
    return 1 if report.stopped_early else 0


def cmd_reindex(args) -> int:
    """Rebuild every RO's search keys (after a bulk import or a restore)."""
    from storage.db import database
    from storage.search_index import reindex_all

    settings = _settings(require_slack=False)
    open_storage(settings)
    with database.connection_context():
        print(f"{reindex_all()} repair order(s) reindexed.")
    return 0


def cmd_migrate(args) -> int:
    """Run the schema migrations now; print the version and where the SQLite file was copied first."""
    from storage.db import is_postgres, open_database
    from storage.migrations import MigrationError, upgrade

    settings = _settings(require_slack=False)
    open_database(settings.database_url)
    try:
        result = upgrade()
    except MigrationError as exc:
        print(f"Migration failed: {exc}", file=sys.stderr)
        return 1
    if result.from_version == 0:
        print(f"Database created at schema version {result.version}.")
    elif result.from_version == result.version:
        print(f"Database already at schema version {result.version}; nothing to migrate.")
    else:
        print(f"Database migrated from schema version {result.from_version} to schema version {result.version}.")
        if result.backup:
            print(f"Backup of the version {result.from_version} database: {result.backup}")
        elif is_postgres():
            print("No backup made by the bot on PostgreSQL (use pg_dump before upgrading).")
    return 0


def cmd_report(args) -> int:
    """The metrics workbook of a period, written to a file; no Slack needed (IT, a cron, a spreadsheet)."""
    from datetime import datetime

    from core.i18n import t
    from reports.metrics_flow import write_period, write_period_csv
    from reports.metrics_rules import REPORT_MAX_DAYS, MetricsRefused, parse_period
    from storage.db import database

    settings = _settings(require_slack=False)
    words = [w for w in (args.date_from, args.date_to) if w]
    if args.date_to and not args.date_from:
        print("--to needs --from (e.g. --from 2026-11-01 --to 2026-11-30).", file=sys.stderr)
        return 2
    try:
        # The command line is not held to METRICS_MAX_DAYS (which spares the Slack app's workers).
        period = parse_period(words, datetime.now(settings.shop_timezone).date(), REPORT_MAX_DAYS)
    except MetricsRefused as exc:
        if exc.reason == "bad_date":  # the catalog's example is the Slack command's; say it the command line's way
            print(
                f"{exc.detail['value']!r} is not a date: use YYYY-MM-DD, e.g. --from 2026-11-01 --to 2026-11-30.", file=sys.stderr
            )
        else:
            print(t(exc.key, args.lang, **exc.detail), file=sys.stderr)
        return 2
    out = Path(args.out or f"metrics-{period.start.isoformat()}-{period.end.isoformat()}.xlsx")
    if args.csv:
        # --out names the files' common start: novembre(.csv|.xlsx) → novembre-users.csv, …
        out = out.with_suffix("") if out.suffix.lower() in (".csv", ".xlsx") else out
    elif out.suffix.lower() != ".xlsx":
        print(f"--out {out}: the file name must end in .xlsx (Excel opens it by that).", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"--out {out}: the folder {out.parent} does not exist.", file=sys.stderr)
        return 2
    open_storage(settings)
    tty = sys.stderr.isatty()

    def progress(fraction: float) -> None:
        # One line rewritten in place on a terminal; in a log (no terminal) only the tens.
        percent = int(fraction * 100)
        if tty:
            print(f"\rCounting and writing… {percent:3d}%", end="", file=sys.stderr, flush=True)
        elif percent % 10 == 0:
            print(f"Counting and writing… {percent}%", file=sys.stderr, flush=True)

    with database.connection_context():
        if args.csv:
            metrics, written = write_period_csv(settings, period, out, args.lang, progress)
        else:
            partial = out.with_name(out.name + ".part")
            metrics = write_period(settings, period, partial, args.lang, progress)
            partial.replace(out)  # a run that is stopped half-way leaves no half workbook under the real name
            written = []
    if tty:
        print(file=sys.stderr)
    for path in written:  # the CSV files, one a line, for a script to pick up
        print(path)
    print(
        f"{out}: {period.start} to {period.end}, {len(metrics.users)} people, "
        f"{metrics.total.pictures} pictures, {metrics.total.videos} videos, {metrics.total.messages} messages."
    )
    return 0


def cmd_media(args) -> int:
    """`media migrate`: the local folder's blobs copied into MEDIA_URL's bucket (again: only what is missing)."""
    from media.blob_store import BlobStore, StoreUnavailable
    from media.media_migrate import migrate
    from media.s3_store import S3BlobStore

    if args.action != "migrate":
        print("Usage: python bot.py media migrate", file=sys.stderr)
        return 2
    settings = _settings(require_slack=False)
    if not settings.media_url:
        print("MEDIA_URL is not set: set it to s3://bucket/prefix (and S3_ENDPOINT_URL for MinIO, R2…) first.", file=sys.stderr)
        return 2
    folder, bucket = BlobStore(settings.media_dir), S3BlobStore.for_settings(settings)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\r{done}/{total} files", end="", file=sys.stderr, flush=True)

    try:
        report = migrate(folder, bucket, progress)
    except StoreUnavailable as exc:
        print(f"Stopped: {exc}. Nothing is lost; run it again once the store answers.", file=sys.stderr)
        return 1
    if tty:
        print(file=sys.stderr)
    print(f"{folder.describe()} → {bucket.describe()}: {report.summary()}.")
    for sha in report.damaged:
        print(f"  damaged on disk (content does not match its name), not copied: {sha}")
    return 1 if report.damaged else 0


def cmd_check(args) -> int:
    from server.checks import run_checks

    return run_checks(read_env=True)


COMMANDS = {
    "serve": lambda a: cmd_web(a, with_background=True),
    "web": cmd_web,
    "worker": cmd_worker,
    "scheduler": cmd_scheduler,
    "sync": cmd_sync,
    "archive": cmd_archive,
    "reindex": cmd_reindex,
    "migrate": cmd_migrate,
    "check": cmd_check,
    "report": cmd_report,
    "media": cmd_media,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bot.py", description="Repair-order spaces for Slack")
    parser.add_argument("command", nargs="?", default="serve", choices=sorted(COMMANDS))
    parser.add_argument("action", nargs="?", help="media: migrate")
    parser.add_argument("--threads", type=int, default=8, help="web worker threads (serve/web)")
    parser.add_argument("--workers", type=int, default=0, help="worker: task threads (default QUEUE_WORKERS)")
    parser.add_argument(
        "--dry-run", action="store_true", help="sync: read the DMS only; archive: say what would be done; both touch nothing"
    )
    parser.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="report: first day (default: the 1st)")
    parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="report: last day, included (default: today)")
    parser.add_argument("--out", metavar="FILE.xlsx", help="report: where to write the workbook")
    parser.add_argument("--csv", action="store_true", help="report: <out>-users.csv, -repair-orders.csv, -by-day.csv instead")
    parser.add_argument("--lang", default="en", choices=("en", "fr"), help="report: the headers' language")
    args = parser.parse_args(argv)
    configure_logging()
    from server.preflight import StartupProblem

    try:
        return COMMANDS[args.command](args)
    except StartupProblem as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print("Configuration problem:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Fix these in your environment or in .env (see README, Configuration).", file=sys.stderr)
        if args.command == "sync":
            print("To check a DMS feed without Slack: python bot.py sync --dry-run", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
