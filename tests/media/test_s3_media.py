"""Media in S3-compatible object storage (MEDIA_URL=s3://bucket/prefix), against a real S3 server
(moto in server mode, its own process): intake, the customer page's Range reads, a merge,
deletion, a store that is down, `bot.py media migrate`, and what `check` and start-up say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from media.blob_store import BlobStore, open_store
from media.intake_flow import retry_pending
from media.s3_store import S3BlobStore
from media.video_probe import probe
from storage.models import MergeJob, RoFile
from tests.media.test_merge_flow import finished, no_temporary_files, press_merge, stored_clip
from tests.support.factories import make_ro
from tests.support.files import (
    delivered_send,
    files_env,
    heic_bytes,
    jpeg_bytes,
    open_files,
    page_path,
    share,
    stored_file,
    video_bytes,
    with_ticks,
)
from tests.support.harness import SlackTestClient, start_app
from tests.support.s3 import CREDENTIALS, S3Server

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "shop1/media"


def _key(sha: str) -> str:
    return f"{PREFIX}/{sha[:2]}/{sha[2:4]}/{sha}"


def _blobs_on_disk(app) -> list[Path]:
    """Files under MEDIA_DIR other than temporary ones: with MEDIA_URL there must be none."""
    root = Path(app.settings.media_dir)
    return [p for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts] if root.exists() else []


@pytest.fixture
def s3_app(fake_slack, sqlite_url, tmp_path, twilio, smtp, s3_server, bucket):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, smtp, **s3_server.env(bucket, PREFIX)))
    yield running
    running.stop()


@pytest.fixture
def s3_client(s3_app, fake_slack) -> SlackTestClient:
    return SlackTestClient(s3_app.url, fake_slack)


def test_the_store_puts_reads_seeks_copies_and_deletes_blobs(s3_server, bucket, tmp_path):
    store = S3BlobStore(s3_server.client(), bucket, PREFIX, tmp_path / "scratch")
    data = bytes(range(256)) * 4000  # ~1 MB, so a read after a seek must come from the right place
    sha, size = store.put_bytes(data)
    assert (size, store.has(sha), store.size(sha)) == (len(data), True, len(data))
    assert s3_server.objects(bucket) == {_key(sha): data}
    assert store.put_file(_written(tmp_path / "again.bin", data)) == (sha, len(data))  # same content: same object
    assert list(s3_server.objects(bucket)) == [_key(sha)]

    with store.open_blob(sha) as blob:
        blob.seek(700_001)
        assert blob.read(10) == data[700_001:700_011]
        blob.seek(5)
        assert blob.read(3) == data[5:8]
    with store.local_copy(sha) as path:
        assert path.read_bytes() == data
    assert not path.exists(), "the local copy is removed after use"
    assert store.read_bytes(sha) == data

    store.delete(sha)
    assert not store.has(sha) and s3_server.objects(bucket) == {}
    with pytest.raises(FileNotFoundError), store.local_copy(sha):
        pass
    assert not list((tmp_path / "scratch" / "tmp").iterdir()), "no temporary file left behind"


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_file_shared_in_the_ro_is_copied_to_the_bucket_not_to_the_disk(s3_app, s3_client, fake_slack, s3_server, bucket):
    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes(80, 60)
    row = share(s3_client, fake_slack, ro, "brakes.jpg", content, "image/jpeg")
    assert row.copy_status == "stored", row.last_error
    assert s3_server.objects(bucket, PREFIX) == {_key(row.sha256): content}
    assert _blobs_on_disk(s3_app) == []
    assert isinstance(open_store(s3_app.settings), S3BlobStore)


def test_the_customer_page_streams_files_from_the_bucket_with_ranges(s3_app, fake_slack, s3_server, bucket, tmp_path):
    ro = make_ro(fake_slack, members=("UADVISOR",), language="fr")
    photo = stored_file(s3_app, ro, heic_bytes(100, 75), "IMG_0002.HEIC", "image/heic", minutes_ago=2)
    movie = video_bytes(tmp_path, seconds=2)
    clip = stored_file(s3_app, ro, movie, "walkaround.mp4", "video/mp4", minutes_ago=1)
    send = delivered_send(s3_app, ro, [photo, clip])
    assert send.status == "sent"
    page = requests.get(s3_app.url + page_path(s3_app, send), timeout=10)
    assert page.status_code == 200
    paths = sorted(set(part.split('"')[0] for part in page.text.split('src="')[1:] if part.startswith("/c/")))
    video = next(p for p in paths if requests.head(s3_app.url + p, timeout=10).headers["Content-Type"] == "video/mp4")
    picture = next(p for p in paths if p != video)

    whole = requests.get(s3_app.url + video, timeout=10)
    assert whole.status_code == 200 and whole.content == movie and whole.headers["Accept-Ranges"] == "bytes"
    part = requests.get(s3_app.url + video, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == movie[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(movie)}"
    tail = requests.get(s3_app.url + video, headers={"Range": "bytes=-50"}, timeout=10)
    assert tail.status_code == 206 and tail.content == movie[-50:]
    assert requests.get(s3_app.url + video, headers={"Range": f"bytes={len(movie) + 10}-"}, timeout=10).status_code == 416
    etag = whole.headers["ETag"]
    assert requests.get(s3_app.url + video, headers={"If-None-Match": etag}, timeout=10).status_code == 304

    # The iPhone photo is shown as a JPEG made from the bucket's copy, and kept in the bucket too.
    jpeg = requests.get(s3_app.url + picture, timeout=10)
    assert jpeg.status_code == 200 and jpeg.headers["Content-Type"] == "image/jpeg" and jpeg.content[:3] == b"\xff\xd8\xff"
    assert jpeg.content in s3_server.objects(bucket, PREFIX).values()
    assert _blobs_on_disk(s3_app) == []


def test_a_file_gone_from_the_bucket_gets_the_polite_page_and_a_store_that_is_down_a_503(s3_app, fake_slack, s3_server, bucket):
    ro = make_ro(fake_slack, members=("UADVISOR",))
    photo = stored_file(s3_app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
    send = delivered_send(s3_app, ro, [photo])
    page = requests.get(s3_app.url + page_path(s3_app, send), timeout=10).text
    file_url = s3_app.url + next(part.split('"')[0] for part in page.split('src="')[1:] if part.startswith("/c/"))
    assert requests.get(file_url, timeout=10).status_code == 200

    s3_server.client().delete_object(Bucket=bucket, Key=_key(photo.sha256))
    assert requests.get(file_url, headers={"User-Agent": "Mozilla/5.0"}, timeout=10).status_code == 404

    s3_server.client().delete_bucket(Bucket=bucket)  # the bucket itself gone: the store answers NoSuchBucket
    answer = requests.get(file_url, timeout=10)
    assert answer.status_code in (404, 503) and b"Traceback" not in answer.content


def test_videos_are_merged_from_the_bucket_into_the_bucket(s3_app, s3_client, fake_slack, s3_server, bucket, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    one = stored_clip(s3_app, ro, tmp_path, "one.mp4", minutes_ago=3, seconds=1.0)
    two = stored_clip(s3_app, ro, tmp_path, "two.mp4", minutes_ago=2, seconds=1.5)
    view = open_files(s3_client, fake_slack, ro)
    press_merge(s3_client, fake_slack, with_ticks(view, [one.id, two.id]))
    [job] = MergeJob.select()
    job = finished(job.id)
    assert job.status == "done", job.error

    result = RoFile.get_by_id(job.result_id)
    [upload] = fake_slack.uploads
    assert s3_server.objects(bucket, PREFIX)[_key(result.sha256)] == upload["content"]
    merged = tmp_path / "merged.mp4"
    merged.write_bytes(upload["content"])
    assert abs(probe(merged).duration - 2.5) < 0.2
    assert _blobs_on_disk(s3_app) == [] and no_temporary_files(s3_app)
    assert not list((Path(s3_app.settings.media_dir) / "tmp").glob("tmp*")), "downloaded sources removed"


def test_a_store_that_is_down_marks_copies_not_copied_with_the_reason_and_they_are_retried(
    fake_slack, sqlite_url, tmp_path, twilio, smtp
):
    server = S3Server(tmp_path / "moto-down.log").start()
    try:
        bucket = server.create_bucket("shop-media")
        app = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, smtp, **server.env(bucket, PREFIX)))
        try:
            client = SlackTestClient(app.url, fake_slack)
            ro = make_ro(fake_slack, members=("UTECH",))
            server.stop()  # the object store goes down
            content = jpeg_bytes(70, 50)
            row = share(client, fake_slack, ro, "wheel.jpg", content, "image/jpeg", user="UTECH")
            assert row.copy_status == "failed" and row.sha256 is None
            assert "object storage" in row.last_error and "unreachable" in row.last_error
            assert "testing-secret" not in row.last_error
            assert _blobs_on_disk(app) == []

            server.start()  # back (moto keeps nothing: the bucket is made again)
            server.create_bucket("shop-media")
            report = retry_pending(app.services)
            assert (report.retried, report.stored) == (1, 1)
            row = RoFile.get_by_id(row.id)
            assert row.copy_status == "stored" and row.last_error is None
            assert server.objects(bucket, PREFIX) == {_key(row.sha256): content}
        finally:
            app.stop()
    finally:
        server.stop()


def _bot(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        cwd=cwd,
        env={**os.environ, **env, "DOTENV_PATH": os.devnull},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_media_migrate_copies_the_local_folder_to_the_bucket_once(s3_server, bucket, tmp_path, sqlite_url):
    folder = tmp_path / "media"
    local = BlobStore(folder)
    blobs = {local.put_bytes(data)[0]: data for data in (b"first photo", b"second photo", jpeg_bytes())}
    spoiled = local.put_bytes(b"will be damaged")[0]
    local.path_for(spoiled).write_bytes(b"damaged on disk")  # its name no longer matches its content
    (folder / "tmp").mkdir(exist_ok=True)
    (folder / "tmp" / "in-half-written").write_bytes(b"partial")
    env = {"DATABASE_URL": sqlite_url, "MEDIA_DIR": str(folder), **s3_server.env(bucket, PREFIX)}

    first = _bot(["media", "migrate"], env, tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr  # one file could not be copied: said, not hidden
    assert "3 copied" in first.stdout and "1 damaged" in first.stdout and spoiled in first.stdout
    assert s3_server.objects(bucket, PREFIX) == {_key(sha): data for sha, data in blobs.items()}
    assert "Traceback" not in first.stderr

    local.path_for(spoiled).unlink()
    again = _bot(["media", "migrate"], env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 copied" in again.stdout and "3 already there" in again.stdout

    unset = _bot(["media", "migrate"], {"DATABASE_URL": sqlite_url, "MEDIA_DIR": str(folder), "MEDIA_URL": ""}, tmp_path)
    assert unset.returncode == 2 and "MEDIA_URL" in unset.stderr and "Traceback" not in unset.stderr


@pytest.mark.parametrize("problem", ["no_bucket", "read_only", "down"])
def test_a_store_that_cannot_take_files_is_one_clear_line_from_check_and_from_start_up(
    problem, s3_server, tmp_path, sqlite_url, fake_slack
):
    bucket = "missing-bucket" if problem == "no_bucket" else s3_server.create_bucket()
    endpoint = s3_server.url
    if problem == "read_only":
        deny = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}],
        }
        s3_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    if problem == "down":
        from tests.support.files import closed_port_url

        endpoint = closed_port_url()
    env = {
        **files_env(fake_slack, sqlite_url, tmp_path, None, None),
        **CREDENTIALS,
        "MEDIA_URL": f"s3://{bucket}/{PREFIX}",
        "S3_ENDPOINT_URL": endpoint,
    }
    expected = {
        "no_bucket": f"bucket {bucket} does not exist",
        "read_only": f"bucket {bucket} refuses writes",
        "down": f"bucket {bucket} not reachable",
    }[problem]

    check = _bot(["check"], env, tmp_path)
    lines = [line for line in check.stdout.splitlines() if "object storage" in line]
    assert check.returncode == 1 and len(lines) == 1 and lines[0].startswith("[FAIL]") and expected in lines[0], check.stdout

    start = _bot(["worker"], env, tmp_path)
    assert start.returncode == 2, start.stdout + start.stderr
    said = [line for line in start.stderr.splitlines() if line.strip()]
    assert len(said) == 1 and expected in said[0], start.stderr
    assert "Traceback" not in start.stderr + start.stdout and "testing-secret" not in start.stderr + start.stdout


def test_check_says_the_object_store_is_ready(s3_server, bucket, tmp_path, sqlite_url, fake_slack):
    env = {**files_env(fake_slack, sqlite_url, tmp_path, None, None), **s3_server.env(bucket, PREFIX)}
    check = _bot(["check"], env, tmp_path)
    [line] = [line for line in check.stdout.splitlines() if "object storage" in line]
    assert line == f"[ok  ] object storage: s3://{bucket}/{PREFIX} reachable and writable", check.stdout
    assert s3_server.objects(bucket) == {}, "the check leaves nothing behind"
