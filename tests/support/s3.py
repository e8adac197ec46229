"""A real S3-compatible server for the tests: moto in server mode, in a process of its own.

`s3_server` is one server per test process (session), `bucket` a fresh bucket on it per test.
`S3Server.stop()` / `start()` take it down and bring it back on the same port, for the tests of
a store that is down (moto keeps nothing: buckets are created again after a start).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.harness import wait_until

# Any credentials: moto checks the signature's shape, not the keys. Never real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, log: Path):
        for name, value in CREDENTIALS.items():  # what boto3 reads in this process (the app under test runs here)
            os.environ.setdefault(name, value)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> S3Server:
        moto = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, **CREDENTIALS},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, timeout=30, message="moto server up")
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"moto server exited: {self.log.read_text()[-2000:]}")
        try:
            return requests.get(f"{self.url}/moto-api/", timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self):
        from media.s3_store import make_client

        return make_client(self.url)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"media-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        client = self.client()
        listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}

    def env(self, bucket: str, prefix: str = "shop1/media") -> dict[str, str]:
        return {**CREDENTIALS, "MEDIA_URL": f"s3://{bucket}/{prefix}", "S3_ENDPOINT_URL": self.url}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server) -> str:
    return s3_server.create_bucket()
