"""Intake: files shared in RO channels are recorded once and copied into MEDIA_DIR, safely."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media import intake_flow, intake_rules
from media.file_download import download, token_allowed
from storage.models import Activity, RoFile
from tests.support.factories import make_ro
from tests.support.files import (
    FileHost,
    copied_row,
    file_message_event,
    file_shared_event,
    files_env,
    heic_bytes,
    jpeg_bytes,
    share,
    slack_file,
)
from tests.support.harness import SlackTestClient, start_app, wait_until

LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"


def _blob(app, sha: str) -> Path:
    return Path(app.settings.media_dir) / sha[:2] / sha[2:4] / sha


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
    assert (row.copy_status, row.kind, row.uploader_user_id, row.size, row.name) == (
        "stored",
        "picture",
        "UTECH",
        len(content),
        "IMG_0001.jpg",
    )
    assert row.ro_id == ro.id and row.permalink
    sha = hashlib.sha256(content).hexdigest()
    assert row.sha256 == sha and _blob(app_any_db, sha).read_bytes() == content
    assert [d["authorized"] for d in fake_slack.downloads] == [True]
    activity = Activity.get(Activity.ro == ro)
    assert (activity.kind, activity.user_id) == ("file", "UTECH")
    assert not list((Path(app_any_db.settings.media_dir) / "tmp").glob("*")), "no temp file left behind"


def test_mobile_message_and_file_shared_events_record_the_file_once(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0002.jpg", jpeg_bytes(), "image/jpeg")
    client.event(file_message_event([file_id], ro.channel_id))
    client.event(file_shared_event(file_id, ro.channel_id))
    client.event(file_shared_event(file_id, ro.channel_id), event_id="EvSAME", retry_num=None)
    client.event(file_shared_event(file_id, ro.channel_id), event_id="EvSAME", retry_num=1)
    assert copied_row(file_id).copy_status == "stored"
    app.settle()  # every listener and task these events started has finished
    assert RoFile.select().where(RoFile.slack_file_id == file_id).count() == 1
    assert len(fake_slack.downloads) == 1


def test_the_message_after_file_shared_still_gives_the_thread_for_notes(client, fake_slack):
    """Slack mobile sends both events in either order; files.info may not list the share yet."""
    ro = make_ro(fake_slack, members=("UTECH",))
    file_id = fake_slack.add_file("F0SHARE", "IMG_0003.jpg", jpeg_bytes(), "image/jpeg", "jpg", "UTECH")["id"]
    client.event(file_shared_event(file_id, ro.channel_id))
    assert copied_row(file_id).share_ts is None
    message = file_message_event([file_id], ro.channel_id)
    client.event(message)
    wait_until(lambda: RoFile.get(RoFile.slack_file_id == file_id).share_ts == message["ts"], message="the share's ts")
    assert RoFile.select().where(RoFile.slack_file_id == file_id).count() == 1


def test_files_in_a_message_without_subtype_are_recorded(client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    first = slack_file(fake_slack, ro.channel_id, "a.jpg", jpeg_bytes(color=(1, 2, 3)), "image/jpeg")
    second = slack_file(fake_slack, ro.channel_id, "b.jpg", jpeg_bytes(color=(4, 5, 6)), "image/jpeg")
    client.event(file_message_event([first, second], ro.channel_id, subtype=None))
    assert copied_row(first).copy_status == "stored" and copied_row(second).copy_status == "stored"


def test_files_outside_ro_channels_are_ignored(app, client, fake_slack):
    channel = fake_slack.add_channel("general", members=(fake_slack.bot_user_id, "UTECH"))
    file_id = slack_file(fake_slack, channel["id"], "lunch.jpg", jpeg_bytes(), "image/jpeg")
    client.event(file_shared_event(file_id, channel["id"]))
    client.event(file_message_event([file_id], channel["id"]))
    app.settle()  # every listener and task these events started has finished
    assert RoFile.select().count() == 0
    assert not fake_slack.calls_to("files.info") and not fake_slack.downloads


@pytest.mark.parametrize(
    "name,mimetype,kind",
    [
        ("IMG_0003.HEIC", "image/heic", "picture"),
        ("IMG_0004.MOV", "video/quicktime", "video"),
        ("estimate.pdf", "application/pdf", "document"),
        ("notes.txt", "text/plain", "document"),
    ],
)
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
        row = copied_row(file_id)
        assert (row.copy_status, row.copy_attempts, row.sha256) == ("failed", 1, None)
        assert "HTML" in row.last_error
        # Same host as SLACK_API_URL but another port: another origin, so the token stays home.
        assert login.authorizations == [None]
        stored = [p for p in Path(app.settings.media_dir).rglob("*") if p.is_file()]
        assert stored == [], "the sign-in page must never be stored"

        fake_slack.files[file_id]["url_private_download"] = real_url  # the token problem is fixed
        report = intake_flow.retry_pending(app.services)
        assert (report.retried, report.stored) == (1, 1)
        row = RoFile.get(RoFile.slack_file_id == file_id)
        assert row.copy_status == "stored" and _blob(app, row.sha256).read_bytes() == content
    finally:
        login.stop()


def test_a_sign_in_page_from_slack_itself_with_the_token_is_a_failed_download(app, client, fake_slack):
    """Slack's own file host, given the token, still answers its sign-in page (token without files:read)."""
    ro, content = make_ro(fake_slack, members=("UTECH",)), jpeg_bytes()
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0010.jpg", content, "image/jpeg")
    fake_slack._file_bytes[file_id] = LOGIN_PAGE  # served as image/jpeg, like a misconfigured proxy would
    client.event(file_shared_event(file_id, ro.channel_id))
    row = copied_row(file_id)
    assert (row.copy_status, row.sha256) == ("failed", None) and "HTML" in row.last_error
    assert [d["authorized"] for d in fake_slack.downloads] == [True]
    assert not [p for p in Path(app.settings.media_dir).rglob("*") if p.is_file()]
    fake_slack._file_bytes[file_id] = content
    assert intake_flow.retry_pending(app.services).stored == 1
    assert _blob(app, RoFile.get(RoFile.slack_file_id == file_id).sha256).read_bytes() == content


@pytest.mark.parametrize(
    "url,api,allowed",
    [
        ("http://127.0.0.1:8080/files/x.jpg", "http://127.0.0.1:8080/api/", True),
        ("http://127.0.0.1:9090/files/x.jpg", "http://127.0.0.1:8080/api/", False),  # same host, another port
        ("https://slack.example:443/x", "https://slack.example/api/", True),  # 443 written or not: one origin
        ("https://slack.example:8443/x", "https://slack.example/api/", False),
        ("http://slack.example/x", "https://slack.example/api/", False),  # same host, another scheme
        ("https://files.slack.com:8443/files-pri/T1-F1/x.jpg", "https://slack.com/api/", False),
        ("https://files.slack.com:443/files-pri/T1-F1/x.jpg", "https://slack.com/api/", True),
        ("http://127.0.0.1:notaport/x", "http://127.0.0.1:8080/api/", False),
    ],
)
def test_the_token_goes_to_an_origin_not_just_a_host(url, api, allowed):
    assert token_allowed(url, api) is allowed


def test_the_same_file_shared_into_a_second_ro_is_recorded_there_and_downloaded_once(app_any_db, fake_slack):
    client = SlackTestClient(app_any_db.url, fake_slack)
    first, second = make_ro(fake_slack, members=("UTECH",)), make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes(color=(10, 20, 30))
    row_a = share(client, fake_slack, first, "IMG_0100.jpg", content, "image/jpeg")
    file_id = row_a.slack_file_id

    # Shared again into the second RO's channel: Slack sends the message and file_shared (twice: a retry).
    shared = file_message_event([file_id], second.channel_id)
    client.event(shared)
    client.event(file_shared_event(file_id, second.channel_id), event_id="EvSECOND")
    client.event(file_shared_event(file_id, second.channel_id), event_id="EvSECOND", retry_num=1)
    row_b = copied_row(file_id, ro=second)
    app_any_db.settle()
    assert row_b.id != row_a.id and (row_b.copy_status, row_b.sha256, row_b.size) == ("stored", row_a.sha256, len(content))
    assert row_b.share_ts == shared["ts"], "notes about it go in the second channel's thread"
    assert RoFile.select().where(RoFile.slack_file_id == file_id).count() == 2
    assert RoFile.select().where(RoFile.ro == first).count() == 1 and RoFile.select().where(RoFile.ro == second).count() == 1
    assert len(fake_slack.downloads) == 1, "one copy for both ROs"
    assert _blob(app_any_db, row_b.sha256).read_bytes() == content
    activity = Activity.get((Activity.ro == second) & (Activity.kind == "file"))
    assert (activity.user_id, activity.ts) == ("UTECH", shared["ts"])


def test_the_times_recorded_come_from_slack(client, fake_slack):
    from storage.models import utcnow

    ro = make_ro(fake_slack, members=("UTECH",))
    taken = int(time.time()) - 3 * 3600  # uploaded three hours ago, shared in the RO now
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0200.jpg", jpeg_bytes(), "image/jpeg", created=taken)
    received = utcnow()
    client.event(file_message_event([file_id], ro.channel_id))
    row = copied_row(file_id)
    assert row.shared_at == datetime.fromtimestamp(taken, UTC).replace(tzinfo=None), "Slack's file time"
    activity = Activity.get((Activity.ro == ro) & (Activity.kind == "file"))
    assert received <= activity.at <= utcnow(), "new in the RO when it was shared there, not when it was taken"


def test_the_bot_token_goes_only_to_slack_hosts(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes()
    foreign = FileHost(content, "image/jpeg")
    try:
        file_id = slack_file(fake_slack, ro.channel_id, "IMG_0006.jpg", content, "image/jpeg")
        # "localhost" is another host name than SLACK_API_URL's 127.0.0.1.
        fake_slack.files[file_id]["url_private_download"] = foreign.url("localhost")
        client.event(file_shared_event(file_id, ro.channel_id))
        copied_row(file_id)
        assert foreign.authorizations == [None]
    finally:
        foreign.stop()


def test_a_redirect_off_slack_is_followed_without_the_token(app, tmp_path):
    content = jpeg_bytes()
    elsewhere = FileHost(content, "image/jpeg")
    slack_host = FileHost(b"", "text/plain", redirect_to=elsewhere.url("localhost", "/cdn/photo.jpg"))
    try:
        from media.blob_store import BlobStore

        sha, size = download(
            slack_host.url("127.0.0.1"),
            "xoxb-secret",
            f"http://127.0.0.1:{slack_host.port}/api/",
            BlobStore(tmp_path / "media"),
            max_bytes=10_000_000,
            expected_size=len(content),
            expected_type="image/jpeg",
        )
        assert slack_host.authorizations == ["Bearer xoxb-secret"]
        assert elsewhere.authorizations == [None]
        assert size == len(content) and sha == hashlib.sha256(content).hexdigest()
        assert not token_allowed("http://files.slack.com/x", "https://slack.com/api/"), "https only for Slack's host"
        assert token_allowed("https://files.slack.com/files-pri/T1-F1/x.jpg", "https://slack.com/api/")
        assert not token_allowed("https://files.slack.com.evil.example/x", "https://slack.com/api/")
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
        row = copied_row(file_id)
        assert (row.copy_status, row.kind, row.size, row.sha256) == ("too_large", "video", len(big), None)
        assert fake_slack.downloads == []
        note = fake_slack.wait_for("chat.postMessage")[-1]
        assert note.args["channel"] == ro.channel_id and "walkaround.mov" in note.args["text"]
        assert "1.0 MB" in note.args["text"] or "1 MB" in note.args["text"]
        assert intake_flow.retry_pending(running.services).retried == 0
    finally:
        running.stop()


def test_copies_give_up_after_the_last_attempt_with_a_note(app, client, fake_slack):
    ro = make_ro(fake_slack, members=("UTECH",))
    login = FileHost(LOGIN_PAGE, "text/html")
    try:
        file_id = slack_file(fake_slack, ro.channel_id, "IMG_0007.jpg", jpeg_bytes(), "image/jpeg")
        fake_slack.files[file_id]["url_private_download"] = login.url("127.0.0.1")
        client.event(file_shared_event(file_id, ro.channel_id))
        copied_row(file_id)
        for _ in range(intake_rules.MAX_COPY_ATTEMPTS - 1):
            intake_flow.retry_pending(app.services)
        row = RoFile.get(RoFile.slack_file_id == file_id)
        assert (row.copy_status, row.copy_attempts) == ("failed", intake_rules.MAX_COPY_ATTEMPTS)
        assert intake_flow.retry_pending(app.services).retried == 0
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
    row = copied_row(file_id)
    assert row.copy_status == "failed" and row.uploader_user_id == "UTECH"
    intake_flow.retry_pending(app.services)
    row = RoFile.get(RoFile.slack_file_id == file_id)
    assert (row.copy_status, row.name, row.kind, row.size) == ("stored", "IMG_0008.jpg", "picture", len(content))


def test_a_stuck_pending_copy_is_picked_up_again(app, fake_slack):
    from datetime import timedelta

    from storage.models import utcnow

    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes()
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0009.jpg", content, "image/jpeg")
    # As if the process died right after recording the file (an hour ago).
    RoFile.create(
        ro=ro,
        slack_file_id=file_id,
        uploader_user_id="UTECH",
        kind="picture",
        name="IMG_0009.jpg",
        size=len(content),
        shared_at=utcnow() - timedelta(hours=1),
        recorded_at=utcnow() - timedelta(hours=1),
    )
    assert intake_flow.retry_pending(app.services).stored == 1


def _share_held(client, fake_slack, ro, name: str, content: bytes, created: int | None = None) -> str:
    """Share a file whose download stops half-way (until fake_slack.release_downloads); its id."""
    file_id = slack_file(fake_slack, ro.channel_id, name, content, "image/jpeg", created=created)
    fake_slack.hold_downloads(times=1)
    client.event(file_shared_event(file_id, ro.channel_id))
    wait_until(lambda: len(fake_slack.downloads) == 1, timeout=10, message="the download under way")
    return file_id


def test_a_retry_pass_leaves_a_copy_under_way_alone_even_for_an_old_file(app_any_db, fake_slack):
    """A photo taken an hour ago and shared now: Slack's file time is old, but its copy is not stuck."""
    client = SlackTestClient(app_any_db.url, fake_slack)
    ro, content = make_ro(fake_slack, members=("UTECH",)), jpeg_bytes(color=(70, 80, 90))
    try:
        file_id = _share_held(client, fake_slack, ro, "IMG_0300.jpg", content, created=int(time.time()) - 3600)
        report = intake_flow.retry_pending(app_any_db.services)
        assert len(fake_slack.downloads) == 1, "the retry pass started a second download of a file being copied"
        assert report.retried == 0
    finally:
        fake_slack.release_downloads()
    row = copied_row(file_id)
    assert (row.copy_status, row.copy_attempts, row.sha256) == ("stored", 1, hashlib.sha256(content).hexdigest())
    assert len(fake_slack.downloads) == 1


def test_an_attempt_that_lost_its_claim_does_not_overwrite_the_copy(app_any_db, fake_slack):
    """A download hung past STUCK_AFTER is taken over; when it finally fails, the copy made meanwhile stands."""
    from datetime import timedelta

    from storage.models import utcnow

    client = SlackTestClient(app_any_db.url, fake_slack)
    ro, content = make_ro(fake_slack, members=("UTECH",)), jpeg_bytes(color=(90, 80, 70))
    try:
        file_id = _share_held(client, fake_slack, ro, "IMG_0301.jpg", content)
        later = utcnow() + intake_rules.STUCK_AFTER + timedelta(minutes=1)
        report = intake_flow.retry_pending(app_any_db.services, now=later)
        assert (report.retried, report.stored) == (1, 1)
    finally:
        fake_slack.release_downloads(cut=True)  # the first download breaks off: a failed attempt
    app_any_db.settle()  # the first attempt's task has finished
    row = RoFile.get(RoFile.slack_file_id == file_id)
    assert (row.copy_status, row.copy_attempts, row.last_error) == ("stored", 2, None)
    assert _blob(app_any_db, row.sha256).read_bytes() == content
    assert len(fake_slack.downloads) == 2


def test_a_stale_claim_is_retried_or_given_up_on_its_last_attempt(app, fake_slack):
    from datetime import timedelta

    from storage.models import utcnow

    ro, content = make_ro(fake_slack, members=("UTECH",)), jpeg_bytes()
    hour_ago = utcnow() - timedelta(hours=1)
    rows = {}
    for name, attempts in (("IMG_0302.jpg", 1), ("IMG_0303.jpg", intake_rules.MAX_COPY_ATTEMPTS)):
        file_id = slack_file(fake_slack, ro.channel_id, name, content, "image/jpeg")
        # As if the process died during the download, an hour ago.
        rows[name] = RoFile.create(
            ro=ro,
            slack_file_id=file_id,
            uploader_user_id="UTECH",
            kind="picture",
            name=name,
            mimetype="image/jpeg",
            size=len(content),
            recorded_at=hour_ago,
            copy_status="copying",
            copy_claimed_at=hour_ago,
            copy_attempts=attempts,
        )
    fresh_id = slack_file(fake_slack, ro.channel_id, "IMG_0304.jpg", content, "image/jpeg")
    RoFile.create(
        ro=ro,
        slack_file_id=fresh_id,
        uploader_user_id="UTECH",
        kind="picture",
        name="IMG_0304.jpg",
        mimetype="image/jpeg",
        size=len(content),
        recorded_at=hour_ago,
        copy_status="copying",
        copy_claimed_at=utcnow(),
        copy_attempts=1,
    )
    report = intake_flow.retry_pending(app.services)
    assert (report.retried, report.stored, report.gave_up) == (1, 1, [rows["IMG_0303.jpg"].slack_file_id])
    retried, given_up = (RoFile.get_by_id(rows[n].id) for n in ("IMG_0302.jpg", "IMG_0303.jpg"))
    assert (retried.copy_status, retried.copy_attempts) == ("stored", 2)
    assert (given_up.copy_status, given_up.copy_attempts) == ("failed", intake_rules.MAX_COPY_ATTEMPTS)
    assert RoFile.get(RoFile.slack_file_id == fresh_id).copy_status == "copying", "a fresh claim is left to its holder"
    notes = [c for c in fake_slack.calls_to("chat.postMessage") if "IMG_0303.jpg" in c.args.get("text", "")]
    assert len(notes) == 1
    assert len(fake_slack.downloads) == 1


def test_a_hostile_file_name_never_becomes_a_path(app, client, fake_slack, tmp_path):
    from urllib.parse import quote

    ro = make_ro(fake_slack, members=("UTECH",))
    name = "../../../../escape.jpg"
    file_id = slack_file(fake_slack, ro.channel_id, name, jpeg_bytes(), "image/jpeg")
    url = fake_slack.files[file_id]["url_private_download"]
    fake_slack.files[file_id]["url_private_download"] = url.split("/download/")[0] + "/download/" + quote(name, safe="")
    client.event(file_shared_event(file_id, ro.channel_id))
    row = copied_row(file_id)
    assert (row.copy_status, row.name) == ("stored", name)
    assert not list(tmp_path.rglob("escape.jpg")) and not list(Path("/tmp").glob("escape.jpg"))
    assert _blob(app, row.sha256).is_file()


def test_a_file_whose_intake_gave_up_is_recorded_all_the_same_for_the_copy_retry(app, fake_slack):
    """Every attempt of files.ingest failed (say the database was down for its whole run): the
    give-up records what the event said, so Files lists it and the retry job copies it later."""
    ro = make_ro(fake_slack, members=("UTECH",))
    intake_flow._ingest_gave_up(app.services, ro.id, "F0GAVEUP1", "UTECH", "1796000000.000100", error="OperationalError")
    intake_flow._ingest_gave_up(app.services, ro.id, "F0GAVEUP1", "UTECH", "1796000000.000100", error="again")  # idempotent
    [row] = RoFile.select().where(RoFile.slack_file_id == "F0GAVEUP1")
    assert (row.ro_id, row.uploader_user_id, row.share_ts, row.copy_status) == (ro.id, "UTECH", "1796000000.000100", "failed")
    assert row.copy_attempts < intake_rules.MAX_COPY_ATTEMPTS, "the retry job will try it"
