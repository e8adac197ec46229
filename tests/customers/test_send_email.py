"""Sending by email (customer without a mobile, or SMS not set up), through a real SMTP server."""

from __future__ import annotations

import re
import socket

import pytest
import requests

from blocks.codec import SendRef
from storage.models import CustomerSend
from tests.support.factories import make_ro
from tests.support.files import (
    PUBLIC_URL,
    SmtpSink,
    closed_port_url,
    crafted,
    files_env,
    jpeg_bytes,
    note_buttons,
    note_of,
    open_files,
    press_note_button,
    send_files,
    stored_file,
    submit,
    told_and_retry_offered,
    wait_send,
    with_ticks,
)
from tests.support.harness import SlackTestClient, start_app, wait_until


def _ro(fake_slack, **fields):
    return make_ro(fake_slack, members=("UTECH", "UADVISOR"), **fields)


def test_without_a_mobile_the_customer_gets_an_email_in_their_language(app, client, fake_slack, smtp, twilio):
    ro = _ro(fake_slack, mobile_phone=None, email="jean@example.com", language="fr")
    send_files(client, fake_slack, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    send = wait_send("sent")
    assert (send.method, send.destination) == ("email", "jean@example.com") and twilio.messages == []
    wait_until(lambda: smtp.messages, message="the email")
    assert smtp.messages[0]["to"] == ["jean@example.com"] and smtp.messages[0]["from"] == "service@garage.example"
    mail = smtp.parsed()
    assert mail["Subject"].startswith("Garage Tremblay – BT ") and "Garage Tremblay" in mail["From"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.startswith("Bonjour Jean,") and "514 555-0100" in text
    link = re.search(re.escape(PUBLIC_URL) + r"/c/[A-Za-z0-9_-]{43}", text).group(0)
    assert link in html and 'lang="fr"' in html
    assert requests.get(link.replace(PUBLIC_URL, app.url), timeout=10).status_code == 200
    assert "courriel" in note_of(app, fake_slack, ro.channel_id, send)["text"]


def test_with_sms_not_set_up_a_customer_with_both_gets_an_email(fake_slack, sqlite_url, tmp_path, smtp):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, None, smtp))
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack, language="en")
        send_files(client, fake_slack, ro, [stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
        assert wait_send("sent").method == "email"
        wait_until(lambda: smtp.messages, message="the email")
        assert smtp.parsed()["Subject"].startswith("Garage Tremblay – RO ")
    finally:
        running.stop()


def test_with_neither_gateway_set_up_the_send_is_refused(fake_slack, sqlite_url, tmp_path):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, None, None))
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack, email=None)
        photo = stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
        view = open_files(client, fake_slack, ro, user="UTECH")
        assert "submit" not in view and "TWILIO" in str(view["blocks"])
        # A Send crafted anyway is refused by the server and records nothing.
        answer = submit(client, crafted(view, [photo]), user="UTECH")
        assert answer["response_action"] == "errors" and "TWILIO" in next(iter(answer["errors"].values()))
        running.settle()  # the submission's listener and anything it could have queued are done
        assert CustomerSend.select().count() == 0
    finally:
        running.stop()


def test_smtp_down_fails_the_send_tells_the_sender_and_retry_works(fake_slack, sqlite_url, tmp_path):
    sink = SmtpSink()
    running = start_app(
        files_env(
            fake_slack,
            sqlite_url,
            tmp_path,
            None,
            None,
            SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
            MAIL_FROM="service@garage.example",
        )
    )
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack, mobile_phone=None)
        send_files(client, fake_slack, ro, [stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
        send = wait_send("failed")
        assert send.error == "email_unreachable"
        told, note = told_and_retry_offered(running, fake_slack, ro, send)
        assert "courriel" in told and "courriel" in note["text"]
        assert note_buttons(note)["send.retry"]["value"] == SendRef(send.id).encode()

        sink.start()
        press_note_button(client, ro, "send.retry", send.id)
        wait_until(lambda: CustomerSend.get_by_id(send.id).status == "sent", timeout=10, message="retried")
        wait_until(lambda: sink.messages, message="the email")
    finally:
        sink.stop()
        running.stop()


def test_smtp_login_is_used_and_a_refused_login_is_a_clear_failure(fake_slack, sqlite_url, tmp_path):
    sink = SmtpSink(user="garage", password="p@ss:word").start()
    good = f"smtp://garage:p%40ss%3Aword@127.0.0.1:{sink.port}"
    running = start_app(
        files_env(fake_slack, sqlite_url, tmp_path, None, None, SMTP_URL=good, MAIL_FROM="service@garage.example")
    )
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack, mobile_phone=None)
        photo = stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
        send_files(client, fake_slack, ro, [photo])
        wait_send("sent")
        assert len(sink.messages) == 1 and sink.logins == [("garage", True)]
    finally:
        running.stop()
    bad = start_app(
        files_env(fake_slack, sqlite_url, tmp_path, None, None, SMTP_URL=f"smtp://garage:wrong@127.0.0.1:{sink.port}")
    )
    try:
        client = SlackTestClient(bad.url, fake_slack)
        send_files(client, fake_slack, ro, [photo])
        assert wait_send("failed").error == "email_auth"
        assert len(sink.messages) == 1
    finally:
        bad.stop()
        sink.stop()


@pytest.fixture(params=["refused", "silent"])
def dead_mail_host(request):
    """A mail server address that refuses connections, or one that accepts them (the kernel does)
    and never says a word."""
    if request.param == "refused":
        yield closed_port_url("smtp")
        return
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    yield f"smtp://127.0.0.1:{silent.getsockname()[1]}"
    silent.close()


def test_unreachable_mail_host_never_hangs_the_modal(fake_slack, sqlite_url, tmp_path, dead_mail_host):
    running = start_app(
        files_env(fake_slack, sqlite_url, tmp_path, None, None, SMTP_URL=dead_mail_host, SMTP_TIMEOUT_SECONDS="1")
    )
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = _ro(fake_slack, mobile_phone=None)
        photo = stored_file(running, ro, jpeg_bytes(), "a.jpg", "image/jpeg")
        view = open_files(client, fake_slack, ro)
        # The delivery is a task: the modal's answer does not wait for the mail server at all.
        answer = submit(client, with_ticks(view, [photo.id]))
        assert answer["response_action"] == "update", "the modal answers at once; delivery runs as a task"
        # A silent server never answers: only SMTP_TIMEOUT_SECONDS (1 s) can end the attempt before this wait does.
        assert wait_send("failed", timeout=30).error == "email_unreachable"
    finally:
        running.stop()
