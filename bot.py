"""Composition root and command line.

    python bot.py [serve]     web server and scheduler in one process (the one-machine default)
    python bot.py web         web server only (run `scheduler` elsewhere)
    python bot.py scheduler   DMS sync and timed jobs only
    python bot.py sync [--dry-run]
    python bot.py check       configuration, database, Slack and DMS, line by line

gunicorn can serve `bot:create_app()` directly.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from flask import Flask

from core.config import ConfigError, Settings, load_settings
from core.logsafe import configure_logging, register_secret

log = logging.getLogger("bot")


def _settings(require_slack: bool) -> Settings:
    settings = load_settings(require_slack=require_slack)
    for secret in (settings.slack_signing_secret, settings.slack_bot_token, settings.twilio_auth_token,
                   settings.tekmetric_client_secret, settings.secret_key):
        register_secret(secret)
    return settings


def open_storage(settings: Settings) -> None:
    from storage.db import open_database
    from storage.migrations import migrate

    open_database(settings.database_url)
    migrate()


def build(settings: Settings):
    """Everything the web process needs, wired: (services, bolt app, flask app)."""
    from core.services import build_services
    from core.web import create_flask_app
    from handlers import build_bolt_app

    services = build_services(settings)
    bolt_app = build_bolt_app(services)
    flask_app = create_flask_app(settings, bolt_app)
    for blueprint in _blueprints(services):
        flask_app.register_blueprint(blueprint)
    return services, bolt_app, flask_app


def _blueprints(services) -> list:
    """Flask blueprints of features that serve HTTP beside Slack (customer page, SMS webhook)."""
    return []


def create_app(settings: Settings | None = None) -> Flask:
    """Flask app factory (also what gunicorn loads)."""
    if settings is None:
        configure_logging()
        settings = _settings(require_slack=True)
    open_storage(settings)
    return build(settings)[2]


# -- commands ------------------------------------------------------------------------------------

def cmd_web(args, with_scheduler: bool = False) -> int:
    settings = _settings(require_slack=True)
    open_storage(settings)
    app = build(settings)[2]
    on_start: Callable[[], None] | None = None
    if with_scheduler:
        on_start = lambda: start_scheduler_thread(settings)  # noqa: E731
    from core.server import run_server

    run_server(app, settings.port, threads=args.threads, on_worker_start=on_start)
    return 0


def start_scheduler_thread(settings: Settings) -> None:
    """Hook for the scheduler (added by the RO-spaces feature); nothing to run yet."""


def cmd_check(args) -> int:
    from core.checks import run_checks

    return run_checks(read_env=True)


COMMANDS = {
    "serve": lambda a: cmd_web(a, with_scheduler=True),
    "web": cmd_web,
    "check": cmd_check,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bot.py", description="Repair-order spaces for Slack")
    parser.add_argument("command", nargs="?", default="serve", choices=sorted(COMMANDS))
    parser.add_argument("--threads", type=int, default=8, help="web worker threads (serve/web)")
    parser.add_argument("--dry-run", action="store_true", help="sync: read the DMS only, touch nothing")
    parser.add_argument("--from", dest="date_from", help="report: first day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="date_to", help="report: last day (YYYY-MM-DD)")
    parser.add_argument("--out", help="report: output .xlsx path")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print("Configuration problem:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Fix these in your environment or in .env (see README, Configuration).", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
