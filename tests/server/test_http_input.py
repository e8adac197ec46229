"""Bad input at the HTTP edge: every case gets its own clear status and a JSON body, never a 500 page."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

from tests.support.harness import SIGNING_SECRET, form_body, signature_headers


def _post(app, body: bytes, headers: dict) -> requests.Response:
    return requests.post(app.url + "/slack/events", data=body, headers=headers, timeout=10)


def _assert_json_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    data = response.json()
    assert data["ok"] is False and data["error"]
    return data


def test_wrong_signature_is_401(running_app, fake_slack):
    body = form_body({"command": "/ro", "text": "help", "user_id": "UTECH"})
    headers = signature_headers(body, "not-the-secret")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    _assert_json_error(_post(running_app, body, headers), 401)
    assert fake_slack.calls == []


def test_missing_signature_headers_is_401(running_app):
    body = form_body({"command": "/ro", "text": "help"})
    _assert_json_error(_post(running_app, body, {"Content-Type": "application/x-www-form-urlencoded"}), 401)


def test_stale_timestamp_is_401(running_app):
    body = form_body({"command": "/ro", "text": "help"})
    headers = signature_headers(body, SIGNING_SECRET, timestamp=int(time.time()) - 10 * 60)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    _assert_json_error(_post(running_app, body, headers), 401)


def test_non_numeric_timestamp_is_400(running_app):
    body = form_body({"command": "/ro", "text": "help"})
    headers = signature_headers(body, SIGNING_SECRET)
    headers["X-Slack-Request-Timestamp"] = "yesterday"
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    _assert_json_error(_post(running_app, body, headers), 400)


def test_signed_bad_json_is_400(slack, fake_slack):
    response = slack.post_raw(b'{"type": "event_callback", "event": ', "application/json")
    assert "JSON" in _assert_json_error(response, 400)["error"]
    assert fake_slack.calls == []


def test_signed_json_that_is_not_an_object_is_400(slack):
    _assert_json_error(slack.post_raw(b'["a", "b"]', "application/json"), 400)


def test_signed_bad_form_encoding_is_400(slack):
    _assert_json_error(slack.post_raw(b"command=%2Fro&text=%E9%ZZ", "application/x-www-form-urlencoded"), 400)
    # slack_sdk's SignatureVerifier cannot sign bytes that are not UTF-8 (it decodes them): signed by hand.
    body, ts = b"command=/ro&text=\xff\xfe", str(int(time.time()))
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}
    _assert_json_error(slack.post_raw(body, "application/x-www-form-urlencoded", headers=headers, sign=False), 400)


def test_signed_interaction_with_bad_payload_json_is_400(slack):
    _assert_json_error(slack.post_raw(form_body({"payload": "{not json"}), "application/x-www-form-urlencoded"), 400)
    _assert_json_error(slack.post_raw(form_body({"payload": json.dumps([1, 2])}), "application/x-www-form-urlencoded"), 400)


def test_signed_form_without_command_or_payload_is_400(slack):
    _assert_json_error(slack.post_raw(form_body({"hello": "world"}), "application/x-www-form-urlencoded"), 400)


def test_body_over_the_limit_is_413(slack, running_app):
    limit = running_app.settings.max_body_bytes
    body = form_body({"command": "/ro", "text": "x" * (limit + 10)})
    _assert_json_error(slack.post_raw(body, "application/x-www-form-urlencoded"), 413)


def test_url_verification_challenge_is_answered(slack):
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "legacy"}).encode()
    response = slack.post_raw(body, "application/json")
    assert response.status_code == 200
    assert "abc123" in response.text


def test_healthz_and_unknown_routes(running_app):
    assert requests.get(running_app.url + "/healthz", timeout=5).json() == {"status": "ok"}
    response = requests.get(running_app.url + "/nope", timeout=5)
    _assert_json_error(response, 404)
    _assert_json_error(requests.get(running_app.url + "/slack/events", timeout=5), 405)


def test_event_callback_without_an_event_object_is_400(slack, fake_slack):
    body = json.dumps({"type": "event_callback", "event": "x", "event_id": "Ev1"}).encode()
    _assert_json_error(slack.post_raw(body, "application/json"), 400)
    body = json.dumps({"type": "event_callback", "event": {"type": "message"}, "event_id": "E" * 65}).encode()
    _assert_json_error(slack.post_raw(body, "application/json"), 400)
    assert fake_slack.calls == []


def test_tampered_view_metadata_is_not_a_500(slack):
    payload = {
        "type": "view_submission",
        "user": {"id": "UTECH"},
        "team": {"id": "T0001"},
        "view": {"id": "V1", "callback_id": "nothing_we_know", "private_metadata": "ro:" + "9" * 30, "state": {"values": {}}},
    }
    # Without the view's type Bolt cannot even read it: a clear 400.
    _assert_json_error(slack.action(payload), 400)
    # Well-formed but pointing at an impossible RO id: handled, not a crash.
    payload["view"]["type"] = "modal"
    assert slack.action(payload).status_code in (200, 404)


def test_create_app_is_what_gunicorn_serves(app_env):
    import bot
    from core.config import load_settings

    client = bot.create_app(load_settings(app_env, require_slack=True)).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.post("/slack/events", data=b"{}", headers={"Content-Type": "application/json"}).status_code == 401
