"""Shared fixtures: the fakes on loopback (Slack, Twilio, Tekmetric, SMTP), a database of each kind
(SQLite always, PostgreSQL when TEST_POSTGRES_URL is set), and the real app served over HTTP.

Fixtures live here and in the plugins below (tests/support/*), never in test modules: a test
module imports helpers, and gets its fixtures by name.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.fakes.fake_slack import FakeSlack
from tests.fakes.fake_tekmetric import FakeTekmetric
from tests.support.harness import BOT_TOKEN, SlackTestClient, make_env, start_app

pytest_plugins = [
    "tests.support.files",
    "tests.support.people",
    "tests.support.s3",
    "tests.support.socket_mode",
    "tests.support.spaces",
    "tests.support.topology",
]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


def started_fake_slack(**options) -> FakeSlack:
    fake = FakeSlack(bot_token=BOT_TOKEN, **options).start()
    fake.add_user("UADVISOR", "marie", email="marie.roy@dealer.example", real_name="Marie Roy", locale="fr-CA")
    fake.add_user("UTECH", "luc", email="luc.martin@dealer.example", real_name="Luc Martin", locale="en-US")
    return fake


def stop_checked(fake: FakeSlack) -> None:
    """Stop the fake and fail the test if the fake itself crashed: a fake bug must never pass for "Slack down"."""
    fake.stop()
    if fake.server_errors:
        raise AssertionError("FakeSlack hit internal errors:\n" + "\n".join(fake.server_errors))


@pytest.fixture
def fake_slack():
    fake = started_fake_slack()
    yield fake
    stop_checked(fake)


@pytest.fixture
def fake_tekmetric():
    fake = FakeTekmetric().start()
    yield fake
    fake.stop()


def _postgres_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind; PostgreSQL gets its own schema per test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def postgres_url():
    """A fresh schema of TEST_POSTGRES_URL, dropped after the test (skipped without it, failed
    instead under REQUIRE_POSTGRES)."""
    if not POSTGRES_URL:
        reason = "PostgreSQL tests need TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/postgres)"
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(reason + "; REQUIRE_POSTGRES is set, so skipping is a failure")
        pytest.skip(reason)
    import psycopg2

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE SCHEMA {schema}")
    try:
        yield _postgres_schema_url(POSTGRES_URL, schema)
    finally:
        from storage.db import database

        if database.obj is not None and hasattr(database.obj, "close_all"):
            database.obj.close_all()
        admin.cursor().execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


REDIS_URL = os.environ.get("TEST_REDIS_URL")


@pytest.fixture
def redis_url() -> str:
    """The Redis server the Redis-queue tests use (TEST_REDIS_URL); each test names its own queue."""
    if not REDIS_URL:
        reason = "Redis tests need TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)"
        if os.environ.get("REQUIRE_REDIS"):
            pytest.fail(reason + "; REQUIRE_REDIS is set, so skipping is a failure")
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture(params=["database", "redis"])
def transport(request) -> dict:
    """How the task queue carries its messages: huey's SQL storage in the database, or Redis
    (REDIS_URL) under a queue name of this test's own, emptied after it."""
    if request.param == "database":
        yield {}
        return
    from huey import RedisHuey

    url = request.getfixturevalue("redis_url")
    name = "test-" + uuid.uuid4().hex[:12]
    yield {"redis_url": url, "name": name}
    RedisHuey(name, url=url, clean_name=False).storage.flush_all()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/test.db"


@pytest.fixture
def db(database_url):
    """A fresh, migrated database of each kind, connected for the test."""
    from storage.db import database, open_database
    from storage.migrations import migrate

    open_database(database_url)
    migrate()
    with database.connection_context():
        yield database


@pytest.fixture
def app_env(fake_slack, sqlite_url, tmp_path):
    return make_env(fake_slack, sqlite_url, tmp_path)


@pytest.fixture
def running_app(app_env):
    app = start_app(app_env)
    yield app
    app.stop()


@pytest.fixture
def slack(running_app, fake_slack) -> SlackTestClient:
    return SlackTestClient(running_app.url, fake_slack)
