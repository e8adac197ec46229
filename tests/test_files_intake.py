"""Intake: files shared in RO channels are recorded once and copied into MEDIA_DIR, safely."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from media import intake
from storage.models import Activity, RoFile
from tests.conftest import SlackTestClient, start_app, wait_until
from tests.factories import make_ro
from tests.test_files_support import (FileHost, app, client, file_message_event, file_shared_event, files_env, heic_bytes,  # noqa: F401
                                      jpeg_bytes, share, slack_file, smtp, twilio)

LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"


def _blob(app, sha: str) -> Path:
    return Path(app.settings.media_dir) / sha[:2] / sha[2:4] / sha


def _row(file_id: str, status_not: str = "pending", timeout: float = 10) -> RoFile:
    return wait_until(lambda: RoFile.get_or_none((RoFile.slack_file_id == file_id) & (RoFile.copy_status != status_not)),
                      timeout=timeout, message=f"file {file_id} processed")


@pytest.fixture
def app_any_db(fake_slack, database_url, tmp_path):
    running = start_app(files_env(fake_slack, database_url, tmp_path, None, None))
    yield running
    running.stop()


def test_shared_file_is_recorded_and_copied_content_addressed(app_any_db, fake_slack):
    client = SlackTestClient(app_any_db.url, fake_slack)
    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes()
    row = share(client, fake_slack, ro, "IMG_0001.jpg", content, "image/jpeg", user="UTECH")
    assert (row.copy_status, row.kind, row.uploader_user_id, row.size, row.name) == ("stored", "picture", "UTECH", len(content), "IMG_0001.jpg")
    assert row.ro_id == ro.id and row.permalink
    sha = hashlib.sha256(content).hexdigest()
    assert row.sha256 == sha and _blob(app_any_db, sha).read_bytes() == content
    assert [d["authorized"] for d in fake_slack.downloads] == [True]
    activity = Activity.get(Activity.ro == ro)
    assert (activity.kind, activity.user_id) == ("file", "UTECH")
    assert not list((Path(app_any_db.settings.media_dir) / "tmp").glob("*")), "no temp file left behind"


def test_mobile_message_and_file_shared_events_record_the_file_once(client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0002.jpg", jpeg_bytes(), "image/jpeg")
    client.event(file_message_event([file_id], ro.channel_id))
    client.event(file_shared_event(file_id, ro.channel_id))
    client.event(file_shared_event(file_id, ro.channel_id), event_id="EvSAME", retry_num=None)
    client.event(file_shared_event(file_id, ro.channel_id), event_id="EvSAME", retry_num=1)
    assert _row(file_id).copy_status == "stored"
    time.sleep(0.3)
    assert RoFile.select().where(RoFile.slack_file_id == file_id).count() == 1
    assert len(fake_slack.downloads) == 1


def test_files_in_a_message_without_subtype_are_recorded(client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    first = slack_file(fake_slack, ro.channel_id, "a.jpg", jpeg_bytes(color=(1, 2, 3)), "image/jpeg")
    second = slack_file(fake_slack, ro.channel_id, "b.jpg", jpeg_bytes(color=(4, 5, 6)), "image/jpeg")
    client.event(file_message_event([first, second], ro.channel_id, subtype=None))
    assert _row(first).copy_status == "stored" and _row(second).copy_status == "stored"


def test_files_outside_ro_channels_are_ignored(client, fake_slack):
    channel = fake_slack.add_channel("general", members=(fake_slack.bot_user_id, "UTECH"))
    file_id = slack_file(fake_slack, channel["id"], "lunch.jpg", jpeg_bytes(), "image/jpeg")
    client.event(file_shared_event(file_id, channel["id"]))
    client.event(file_message_event([file_id], channel["id"]))
    time.sleep(0.5)
    assert RoFile.select().count() == 0
    assert not fake_slack.calls_to("files.info") and not fake_slack.downloads


@pytest.mark.parametrize("name,mimetype,kind", [
    ("IMG_0003.HEIC", "image/heic", "picture"),
    ("IMG_0004.MOV", "video/quicktime", "video"),
    ("estimate.pdf", "application/pdf", "document"),
    ("notes.txt", "text/plain", "document"),
])
def test_kind_comes_from_the_mimetype(client, fake_slack, name, mimetype, kind):
    ro = make_ro(fake_slack, members=("UTECH",))
    content = heic_bytes() if name.endswith("HEIC") else f"content of {name}".encode()
    row = share(client, fake_slack, ro, name, content, mimetype)
    assert (row.kind, row.copy_status) == (kind, "stored")


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "image/jpeg"])
def test_an_html_page_with_status_200_is_a_failed_download_then_retried(app, client, fake_slack, content_type):
    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes()
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0005.jpg", content, "image/jpeg")
    real_url = fake_slack.files[file_id]["url_private_download"]
    login = FileHost(LOGIN_PAGE, content_type)
    try:
        fake_slack.files[file_id]["url_private_download"] = login.url("127.0.0.1")
        client.event(file_shared_event(file_id, ro.channel_id))
        row = _row(file_id)
        assert (row.copy_status, row.copy_attempts, row.sha256) == ("failed", 1, None)
        assert "HTML" in row.last_error
        assert login.authorizations == [f"Bearer {app.settings.slack_bot_token}"]  # same host as SLACK_API_URL
        stored = [p for p in Path(app.settings.media_dir).rglob("*") if p.is_file()]
        assert stored == [], "the sign-in page must never be stored"

        fake_slack.files[file_id]["url_private_download"] = real_url  # the token problem is fixed
        report = intake.retry_pending(app.services)
        assert (report.retried, report.stored) == (1, 1)
        row = RoFile.get(RoFile.slack_file_id == file_id)
        assert row.copy_status == "stored" and _blob(app, row.sha256).read_bytes() == content
    finally:
        login.stop()


def test_the_bot_token_goes_only_to_slack_hosts(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes()
    foreign = FileHost(content, "image/jpeg")
    try:
        file_id = slack_file(fake_slack, ro.channel_id, "IMG_0006.jpg", content, "image/jpeg")
        # "localhost" is another host name than SLACK_API_URL's 127.0.0.1.
        fake_slack.files[file_id]["url_private_download"] = foreign.url("localhost")
        client.event(file_shared_event(file_id, ro.channel_id))
        _row(file_id)
        assert foreign.authorizations == [None]
    finally:
        foreign.stop()


def test_a_redirect_off_slack_is_followed_without_the_token(app, tmp_path):
    content = jpeg_bytes()
    elsewhere = FileHost(content, "image/jpeg")
    slack_host = FileHost(b"", "text/plain", redirect_to=elsewhere.url("localhost", "/cdn/photo.jpg"))
    try:
        from media.store import BlobStore

        sha, size = intake.download(slack_host.url("127.0.0.1"), "xoxb-secret", f"http://127.0.0.1:{slack_host.port}/api/",
                                    BlobStore(tmp_path / "media"), max_bytes=10_000_000, expected_size=len(content), expected_type="image/jpeg")
        assert slack_host.authorizations == ["Bearer xoxb-secret"]
        assert elsewhere.authorizations == [None]
        assert size == len(content) and sha == hashlib.sha256(content).hexdigest()
        assert not intake.token_allowed("http://files.slack.com/x", "https://slack.com/api/"), "https only for Slack's host"
        assert intake.token_allowed("https://files.slack.com/files-pri/T1-F1/x.jpg", "https://slack.com/api/")
        assert not intake.token_allowed("https://files.slack.com.evil.example/x", "https://slack.com/api/")
    finally:
        elsewhere.stop()
        slack_host.stop()


def test_a_file_over_the_size_limit_is_recorded_not_copied_with_a_note(fake_slack, sqlite_url, tmp_path):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, None, None, MAX_FILE_MB="1"))
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = make_ro(fake_slack, members=("UTECH",))
        big = b"\0" * (1024 * 1024 + 10)
        file_id = slack_file(fake_slack, ro.channel_id, "walkaround.mov", big, "video/quicktime")
        client.event(file_shared_event(file_id, ro.channel_id))
        row = _row(file_id)
        assert (row.copy_status, row.kind, row.size, row.sha256) == ("too_large", "video", len(big), None)
        assert fake_slack.downloads == []
        note = fake_slack.wait_for("chat.postMessage")[-1]
        assert note.args["channel"] == ro.channel_id and "walkaround.mov" in note.args["text"]
        assert "1.0 MB" in note.args["text"] or "1 MB" in note.args["text"]
        assert intake.retry_pending(running.services).retried == 0
    finally:
        running.stop()


def test_copies_give_up_after_the_last_attempt_with_a_note(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    login = FileHost(LOGIN_PAGE, "text/html")
    try:
        file_id = slack_file(fake_slack, ro.channel_id, "IMG_0007.jpg", jpeg_bytes(), "image/jpeg")
        fake_slack.files[file_id]["url_private_download"] = login.url("127.0.0.1")
        client.event(file_shared_event(file_id, ro.channel_id))
        _row(file_id)
        for _ in range(intake.MAX_COPY_ATTEMPTS - 1):
            intake.retry_pending(app.services)
        row = RoFile.get(RoFile.slack_file_id == file_id)
        assert (row.copy_status, row.copy_attempts) == ("failed", intake.MAX_COPY_ATTEMPTS)
        assert intake.retry_pending(app.services).retried == 0
        notes = [c for c in fake_slack.calls_to("chat.postMessage") if "IMG_0007.jpg" in c.args.get("text", "")]
        assert len(notes) == 1 and "5" in notes[0].args["text"]
    finally:
        login.stop()


def test_files_info_down_records_the_file_and_the_retry_fills_it_in(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes()
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0008.jpg", content, "image/jpeg")
    fake_slack.fail_with("files.info", "internal_error")
    client.event(file_shared_event(file_id, ro.channel_id))
    row = _row(file_id)
    assert row.copy_status == "failed" and row.uploader_user_id == "UTECH"
    intake.retry_pending(app.services)
    row = RoFile.get(RoFile.slack_file_id == file_id)
    assert (row.copy_status, row.name, row.kind, row.size) == ("stored", "IMG_0008.jpg", "picture", len(content))


def test_a_stuck_pending_copy_is_picked_up_again(app, fake_slack):
    from datetime import timedelta

    from storage.models import utcnow

    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes()
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0009.jpg", content, "image/jpeg")
    # As if the process died right after recording the file.
    RoFile.create(ro=ro, slack_file_id=file_id, uploader_user_id="UTECH", kind="picture", name="IMG_0009.jpg",
                  size=len(content), shared_at=utcnow() - timedelta(hours=1))
    assert intake.retry_pending(app.services).stored == 1


def test_a_hostile_file_name_never_becomes_a_path(app, client, fake_slack, tmp_path):
    from urllib.parse import quote

    ro = make_ro(fake_slack, members=("UTECH",))
    name = "../../../../escape.jpg"
    file_id = slack_file(fake_slack, ro.channel_id, name, jpeg_bytes(), "image/jpeg")
    url = fake_slack.files[file_id]["url_private_download"]
    fake_slack.files[file_id]["url_private_download"] = url.split("/download/")[0] + "/download/" + quote(name, safe="")
    client.event(file_shared_event(file_id, ro.channel_id))
    row = _row(file_id)
    assert (row.copy_status, row.name) == ("stored", name)
    assert not list(tmp_path.rglob("escape.jpg")) and not list(Path("/tmp").glob("escape.jpg"))
    assert _blob(app, row.sha256).is_file()
