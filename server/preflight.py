"""What a process needs reachable before it starts: the object store and Redis, when configured.

`bot.py check` shows each as a line; `serve`, `web`, `worker` and `scheduler` refuse to start
with one clear line (StartupProblem) instead of a traceback minutes later, at the first upload
or the first queued task.
"""

from __future__ import annotations

from collections.abc import Callable

from core.config import Settings


class StartupProblem(Exception):
    """One line saying what is not reachable and what to do; no secret in it."""


def media_store(settings: Settings) -> str:
    """The object store takes a write (MEDIA_URL), or the local folder is what is used."""
    if not settings.media_url:
        return f"local folder {settings.media_dir} (MEDIA_URL unset)"
    from media.s3_store import S3BlobStore

    return S3BlobStore.for_settings(settings).probe()


def redis(settings: Settings) -> str:
    """Redis answers (REDIS_URL), or the queue is in the database."""
    if not settings.redis_url:
        return "in the database (REDIS_URL unset)"
    import redis as redis_client
    from redis.exceptions import RedisError

    try:
        connection = redis_client.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
        connection.ping()
        connection.close()
    except RedisError as exc:
        raise RuntimeError(f"Redis at {_where(settings.redis_url)} not reachable: {type(exc).__name__}") from None
    return f"Redis at {_where(settings.redis_url)} reachable"


def _where(url: str) -> str:
    """host:port of a Redis URL, without the password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}" if parts.scheme != "unix" else parts.path


def services(settings: Settings) -> list[tuple[str, Callable[[Settings], str]]]:
    return [("object storage", media_store), ("task queue", redis)]


def require_reachable(settings: Settings) -> None:
    """Raise StartupProblem for the first configured service that does not answer."""
    from core.logsafe import redact

    for what, check in services(settings):
        try:
            check(settings)
        except Exception as exc:  # every failure becomes the one line
            raise StartupProblem(f"{what}: {redact(str(exc) or type(exc).__name__)}") from None


def not_ready(settings: Settings) -> list[str]:
    """What keeps this process from doing its work now, for a load balancer's readiness probe:
    the database, Redis, the bucket (read-only checks, cheap enough to poll every few seconds)."""
    from storage.db import database

    problems = []
    try:
        database.execute_sql("SELECT 1")
    except Exception as exc:  # a probe answers, it does not raise
        problems.append(f"database: {type(exc).__name__}")
    if settings.redis_url:
        try:
            redis(settings)
        except Exception as exc:
            problems.append(f"task queue: {exc}")
    if settings.media_url:
        from media.s3_store import S3BlobStore

        try:
            S3BlobStore.for_settings(settings).reachable()
        except Exception as exc:
            problems.append(f"object storage: {exc}")
    return problems
