"""Run the Flask app under gunicorn from inside `bot.py` (one worker, several threads).

One worker keeps `serve` a single process, so the scheduler started in it runs once; for more
web capacity run `bot.py web` with more threads (or gunicorn directly) and `bot.py scheduler`.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from core.logsafe import mask_customer_links


class RedactingAccessLogger(Logger):
    """Gunicorn's access log, without customer-link tokens."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = mask_customer_links(atoms.get("U") or "")
        return atoms


class _Gunicorn(BaseApplication):
    def __init__(self, app: Flask, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def run_server(
    app: Flask,
    port: int,
    threads: int = 8,
    on_worker_start: Callable[[], None] | None = None,
    on_worker_exit: Callable[[], None] | None = None,
) -> None:
    options = {
        "bind": f"0.0.0.0:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": threads,
        # Slack needs an answer in 3 s; a request stuck longer than this is a bug, not a slow client.
        "timeout": 120,
        "accesslog": "-",
        # Paths without query strings, customer tokens masked by the logger class.
        "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
        "logger_class": RedactingAccessLogger,
    }
    if on_worker_start is not None:
        options["post_worker_init"] = lambda worker: on_worker_start()
    if on_worker_exit is not None:
        options["worker_exit"] = lambda server, worker: on_worker_exit()
    _Gunicorn(app, options).run()
