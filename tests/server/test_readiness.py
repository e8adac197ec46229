"""`GET /readyz` for a load balancer: ready while the database, Redis and the bucket answer, 503
with the reasons when one does not (and ready again when it is back); `/healthz` stays liveness."""

from __future__ import annotations

import uuid

import requests

from tests.support.files import _free_port
from tests.support.harness import make_env, start_app
from tests.support.s3 import S3Server


def test_readiness_follows_the_object_store_and_redis(fake_slack, sqlite_url, tmp_path, redis_url):
    server = S3Server(tmp_path / "moto.log").start()
    try:
        bucket = server.create_bucket("ready-bucket")
        queue = "test-" + uuid.uuid4().hex[:12]
        env = make_env(fake_slack, sqlite_url, tmp_path, **server.env(bucket), REDIS_URL=redis_url, QUEUE_NAME=queue)
        app = start_app(env, workers=0)
        try:
            ready = requests.get(app.url + "/readyz", timeout=10)
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

            server.stop()
            down = requests.get(app.url + "/readyz", timeout=30)
            assert down.status_code == 503
            assert down.json()["problems"] == ["object storage: bucket ready-bucket not reachable (unreachable)"]
            assert requests.get(app.url + "/healthz", timeout=10).status_code == 200, "alive, only not ready"

            server.start()
            server.create_bucket("ready-bucket")
            assert requests.get(app.url + "/readyz", timeout=10).status_code == 200
        finally:
            app.stop()
    finally:
        server.stop()


def test_a_process_whose_redis_went_away_is_not_ready(fake_slack, sqlite_url, tmp_path):
    app = start_app(make_env(fake_slack, sqlite_url, tmp_path), workers=0)
    try:
        assert requests.get(app.url + "/readyz", timeout=10).status_code == 200  # no Redis, no bucket configured
        port = _free_port()
        from dataclasses import replace

        from server.preflight import not_ready

        # The same probe the route runs, with a Redis that is not there.
        assert not_ready(replace(app.settings, redis_url=f"redis://127.0.0.1:{port}/0")) == [
            f"task queue: Redis at 127.0.0.1:{port} not reachable: ConnectionError"
        ]
    finally:
        app.stop()
