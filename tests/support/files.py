"""Fixtures and helpers for the files-and-customer tests: real media made with Pillow and
ffmpeg, a real SMTP server (aiosmtpd) on loopback, the fake Twilio, the app wired to them, and
the Slack gestures (share a file, open Files, tick, send, press a note button)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from blocks import ids
from blocks.codec import PageRef, RoRef, SendRef
from media.video_probe import ffmpeg_exe, probe
from tests.fakes.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from tests.support.clips import clip
from tests.support.harness import SlackTestClient, make_env, start_app, wait_until

PUBLIC_URL = "https://shop.example.test"
SHOP_PHONE = "514 555-0100"


# -- media -----------------------------------------------------------------------------------------


def jpeg_bytes(width: int = 64, height: int = 48, color: tuple = (200, 40, 40), quality: int = 90) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", quality=quality)
    return out.getvalue()


def noisy_jpeg_bytes(width: int, height: int) -> bytes:
    """A JPEG that does not compress (random pixels): for size-limit cases."""
    import os

    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "JPEG", quality=95)
    return out.getvalue()


def heic_bytes(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(out, "HEIF", quality=80)
    return out.getvalue()


def has_encoder(name: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if len(line.split()) > 1)


def video_bytes(
    tmp_path: Path,
    codec: str = "libx264",
    container: str = "mp4",
    seconds: float = 1.0,
    size: str = "160x120",
    audio: bool = False,
) -> bytes:
    """A real little clip (ffmpeg's test pattern), as bytes."""
    return clip(tmp_path, codec=codec, container=container, seconds=seconds, size=size, audio=audio, fps=15).read_bytes()


def video_codec(data: bytes, tmp_path: Path) -> str | None:
    path = tmp_path / f"probe-{uuid.uuid4().hex[:6]}"
    path.write_bytes(data)
    return probe(path).video_codec


# -- SMTP ------------------------------------------------------------------------------------------


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self, user: str | None = None, password: str | None = None):
        self.messages: list[dict] = []
        self.logins: list[tuple[str, bool]] = []
        self.user, self.password = user, password
        self.port = _free_port()
        self._controller = None

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": envelope.content})
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == sink.user and auth_data.password.decode() == sink.password
            sink.logins.append((auth_data.login.decode(), ok))
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235/535 itself

        kwargs: dict[str, Any] = {}
        if self.user:
            # AUTH offered without TLS (loopback); not "required", which makes aiosmtpd warn on every connection.
            kwargs = {"authenticator": authenticator, "auth_require_tls": False}
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def url(self) -> str:
        credentials = f"{self.user}:{self.password}@" if self.user else ""
        return f"smtp://{credentials}127.0.0.1:{self.port}"

    def parsed(self, index: int = -1):
        from email import policy
        from email.parser import BytesParser

        return BytesParser(policy=policy.default).parsebytes(self.messages[index]["data"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url(scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{_free_port()}"


# -- a file host that is not Slack ------------------------------------------------------------------


class FileHost:
    """A tiny HTTP server that answers every GET with `body` and records the Authorization headers."""

    def __init__(self, body: bytes, content_type: str, status: int = 200, redirect_to: str | None = None):
        self.body, self.content_type, self.status, self.redirect_to = body, content_type, status, redirect_to
        self.authorizations: list[str | None] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                host.authorizations.append(self.headers.get("Authorization"))
                if host.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", host.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(host.status)
                self.send_header("Content-Type", host.content_type)
                self.send_header("Content-Length", str(len(host.body)))
                self.end_headers()
                self.wfile.write(host.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, host: str = "127.0.0.1", path: str = "/files-pri/T0001-F1/download/photo.jpg") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- the app wired to its fakes ---------------------------------------------------------------------


@pytest.fixture
def twilio():
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


def files_env(fake_slack, db_url: str, tmp_path: Path, twilio: FakeTwilio | None, smtp: SmtpSink | None, **extra: str) -> dict:
    env = make_env(
        fake_slack,
        db_url,
        tmp_path,
        PUBLIC_URL=PUBLIC_URL,
        SHOP_NAME="Garage Tremblay",
        SHOP_PHONE=SHOP_PHONE,
        SECRET_KEY="customer-links-secret-for-tests",
    )
    if twilio is not None:
        env.update(
            TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_FROM=FROM_NUMBER, TWILIO_API_URL=twilio.api_url
        )
    if smtp is not None:
        env.update(SMTP_URL=smtp.url(), MAIL_FROM="service@garage.example")
    env.update(extra)
    return env


@pytest.fixture
def app(fake_slack, sqlite_url, tmp_path, twilio, smtp):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, smtp))
    yield running
    running.stop()


@pytest.fixture
def client(app, fake_slack) -> SlackTestClient:
    return SlackTestClient(app.url, fake_slack)


# -- files in the RO ---------------------------------------------------------------------------------

_file_ids = iter(range(100000, 10**9))


def slack_file(
    fake_slack, channel_id: str, name: str, content: bytes, mimetype: str, user: str = "UTECH", created: int | None = None
) -> str:
    """A file uploaded to the fake Slack and shared in `channel_id`; its id."""
    file_id = f"F{next(_file_ids):09d}"
    filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
    fake_slack.add_file(file_id, name, content, mimetype, filetype, user, channels=[channel_id], created=created)
    return file_id


def file_shared_event(file_id: str, channel_id: str, user: str = "UTECH") -> dict:
    return {
        "type": "file_shared",
        "file_id": file_id,
        "user_id": user,
        "file": {"id": file_id},
        "channel_id": channel_id,
        "event_ts": f"{time.time():.6f}",
    }


def file_message_event(file_ids: list[str], channel_id: str, user: str = "UTECH", subtype: str | None = "file_share") -> dict:
    event = {
        "type": "message",
        "channel": channel_id,
        "user": user,
        "text": "",
        "ts": f"{time.time():.6f}",
        "files": [{"id": f} for f in file_ids],
        "upload": True,
        "channel_type": "channel",
    }
    if subtype:
        event["subtype"] = subtype
    return event


def copied_row(file_id: str, ro=None, timeout: float = 10):
    """The file's row (in `ro`, if given) once its copy attempt is over: neither waiting for one
    nor under way."""
    from storage.models import RoFile

    where = (RoFile.slack_file_id == file_id) & RoFile.copy_status.not_in(("pending", "copying"))
    if ro is not None:
        where &= RoFile.ro == ro
    return wait_until(lambda: RoFile.get_or_none(where), timeout=timeout, message=f"file {file_id} processed")


def share(
    client: SlackTestClient,
    fake_slack,
    ro,
    name: str,
    content: bytes,
    mimetype: str,
    user: str = "UTECH",
    created: int | None = None,
):
    """Share a file in the RO channel as Slack does (file_shared), and wait until it is stored."""
    file_id = slack_file(fake_slack, ro.channel_id, name, content, mimetype, user, created)
    client.event(file_shared_event(file_id, ro.channel_id, user))
    return copied_row(file_id)


# -- Slack gestures ------------------------------------------------------------------------------------


def open_files(client: SlackTestClient, fake_slack, ro, user: str = "UADVISOR") -> dict:
    before = len(fake_slack.calls_to("views.open"))
    client.action(
        {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T0001"},
            "api_app_id": "A0001",
            "channel": {"id": ro.channel_id},
            "container": {"type": "message", "channel_id": ro.channel_id},
            "actions": [
                {"type": "button", "action_id": ids.FILES_OPEN, "block_id": "ro_card_actions", "value": RoRef(ro.id).encode()}
            ],
        }
    )
    calls = fake_slack.wait_for("views.open", count=before + 1)
    assert calls[-1].ok, calls[-1].error
    return latest_view(fake_slack)


def latest_view(fake_slack) -> dict:
    return json.loads(json.dumps(max(fake_slack.views.values(), key=lambda v: v["hash"])))


def with_ticks(view: dict, file_ids: list[int]) -> dict:
    """The view as Slack sends it back after the user ticked `file_ids` on the shown page."""
    view = json.loads(json.dumps(view))
    values: dict = {}
    for block in view["blocks"]:
        if block.get("type") == "input" and block["element"]["type"] == "checkboxes":
            options = [o for o in block["element"]["options"] if int(o["value"]) in file_ids]
            values[block["block_id"]] = {block["element"]["action_id"]: {"type": "checkboxes", "selected_options": options}}
    view["state"] = {"values": values}
    return view


def crafted(view: dict, files: list) -> dict:
    """The modal as a hand-made request would send it: a checkbox group the app never drew
    (no Send button, no checkboxes), with `files` ticked."""
    view = json.loads(json.dumps(view))
    view["blocks"].append(
        {
            "type": "input",
            "block_id": "files_p0",
            "label": {"type": "plain_text", "text": "x"},
            "element": {
                "type": "checkboxes",
                "action_id": ids.FILES_PICK,
                "options": [{"text": {"type": "plain_text", "text": f.name[:75]}, "value": str(f.id)} for f in files],
            },
        }
    )
    return with_ticks(view, [f.id for f in files])


def submit(client: SlackTestClient, view: dict, user: str = "UADVISOR"):
    response = client.action(
        {"type": "view_submission", "user": {"id": user}, "team": {"id": "T0001"}, "api_app_id": "A0001", "view": view}
    )
    assert response.status_code == 200, response.text
    return response.json() if response.text.strip() else {}


def press_page(client: SlackTestClient, fake_slack, view: dict, action_id: str, value: str, user: str = "UADVISOR") -> dict:
    before = len(fake_slack.calls_to("views.update"))
    client.action(
        {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T0001"},
            "api_app_id": "A0001",
            "view": view,
            "container": {"type": "view", "view_id": view["id"]},
            "actions": [{"type": "button", "action_id": action_id, "block_id": "nav", "value": PageRef(int(value)).encode()}],
        }
    )
    calls = fake_slack.wait_for("views.update", count=before + 1)
    assert calls[-1].ok, calls[-1].error
    return latest_view(fake_slack)


def press_note_button(client: SlackTestClient, ro, action_id: str, send_id: int, user: str = "UADVISOR"):
    return client.action(
        {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T0001"},
            "api_app_id": "A0001",
            "channel": {"id": ro.channel_id},
            "container": {"type": "message", "channel_id": ro.channel_id},
            "actions": [
                {"type": "button", "action_id": action_id, "block_id": "send_actions", "value": SendRef(send_id).encode()}
            ],
        }
    )


def send_files(client: SlackTestClient, fake_slack, ro, files: list, user: str = "UADVISOR") -> dict:
    """Open Files, tick `files` (all on the first page), press Send; the ack body."""
    view = open_files(client, fake_slack, ro, user)
    return submit(client, with_ticks(view, [f.id for f in files]), user)


def wait_send(status: str | tuple, timeout: float = 20):
    from storage.models import CustomerSend

    wanted = (status,) if isinstance(status, str) else status
    return wait_until(
        lambda: CustomerSend.select().where(CustomerSend.status.in_(wanted)).order_by(CustomerSend.id.desc()).first(),
        timeout=timeout,
        message=f"a send {wanted}",
    )


def note_buttons(message: dict) -> dict[str, dict]:
    """The buttons of a channel note, by action id."""
    return {e["action_id"]: e for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]}


def note_of(app, fake_slack, channel_id: str, send) -> dict:
    """The send's note in the channel, as drawn once every queued redraw has run."""
    from storage.models import CustomerSend

    app.settle()
    ts = wait_until(lambda: CustomerSend.get_by_id(send.id).note_ts, message="the send note")
    return next(m for m in fake_slack.messages[channel_id] if m["ts"] == ts)


def told_and_retry_offered(app, fake_slack, ro, send, sender: str = "UADVISOR") -> tuple[str, dict]:
    """After a failed send: what the sender was told privately, and the channel note once it offers Retry."""
    told = wait_until(lambda: [e for e in fake_slack.ephemerals if e["user"] == sender], message="the sender told")
    note = wait_until(
        lambda: (lambda n: n if "send.retry" in note_buttons(n) else None)(note_of(app, fake_slack, ro.channel_id, send)),
        message="a Retry button on the note",
    )
    return told[0]["text"], note


def stored_file(
    app, ro, content: bytes, name: str, mimetype: str, uploader: str = "UTECH", minutes_ago: int = 0, copy_status: str = "stored"
):
    """A file as intake leaves it (recorded and copied), without going through Slack: for bulk set-ups."""
    from datetime import timedelta

    from media.blob_store import open_store
    from media.file_kinds import kind_of
    from storage.models import RoFile, utcnow

    sha = open_store(app.settings).put_bytes(content)[0] if copy_status == "stored" else None
    return RoFile.create(
        ro=ro,
        slack_file_id=f"F{next(_file_ids):09d}",
        uploader_user_id=uploader,
        kind=kind_of(mimetype, name),
        name=name,
        mimetype=mimetype,
        size=len(content),
        shared_at=utcnow() - timedelta(minutes=minutes_ago),
        permalink=f"https://dealer.slack.com/files/{uploader}/{name}",
        sha256=sha,
        copy_status=copy_status,
    )


def delivered_send(app, ro, files: list, user: str = "UADVISOR"):
    """A send made and delivered through the service (no Slack round trip): for page tests."""
    from customers import send_rules as sends

    send = sends.create_send(ro, user, [f.id for f in files], app.settings)
    return sends.deliver(send.id, app.settings)


def page_path(app, send) -> str:
    from customers import send_rules as sends

    return f"/c/{sends.token_for(send, app.settings)}"
