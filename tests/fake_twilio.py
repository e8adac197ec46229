"""A fake Twilio REST API served over real HTTP, for tests.

Answers `POST /2010-04-01/Accounts/{sid}/Messages.json` like Twilio: HTTP Basic sid:token,
201 with a message resource, or Twilio's error shape (`{"code": 21610, "message": ..., "status": 400}`).
Faults: `fail_with(code, status)` for the next sends, `go_down()` / `come_back()` for an outage
(connection refused on the same port). `status_callback()` plays Twilio calling our webhook,
signed the way Twilio signs (computed here independently of the product's code).
"""
from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "twilio-auth-token-for-tests"
FROM_NUMBER = "+15145550100"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeTwilio"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8")
        status, payload = self.server.fake._handle(self.path, self.headers.get("Authorization", ""), parse_qsl(body, keep_blank_values=True))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeTwilio:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict] = []
        self.rejected: list[dict] = []
        self._faults: collections.deque = collections.deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._port = 0
        self.api_url = ""

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "FakeTwilio":
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.fake = self
        self._port = self._server.server_address[1]
        self.api_url = f"http://127.0.0.1:{self._port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()  # the port is refused from now on, until start() binds it again

    def go_down(self) -> None:
        """Connections are refused until come_back()."""
        self.stop()

    def come_back(self) -> None:
        self.start()

    # -- faults ---------------------------------------------------------------------------------
    def fail_with(self, code: int, status: int = 400, times: int = 1, message: str = "error") -> None:
        with self._lock:
            self._faults.extend([(status, {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                                           "status": status})] * times)

    # -- the API --------------------------------------------------------------------------------
    def _handle(self, path: str, authorization: str, form: list[tuple[str, str]]) -> tuple[int, dict]:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        if authorization != expected:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        fields = dict(form)
        record = {"To": fields.get("To"), "From": fields.get("From"), "MessagingServiceSid": fields.get("MessagingServiceSid"),
                  "Body": fields.get("Body", ""), "MediaUrl": [v for k, v in form if k == "MediaUrl"],
                  "StatusCallback": fields.get("StatusCallback")}
        with self._lock:
            if self._faults:
                status, payload = self._faults.popleft()
                self.rejected.append(record)
                return status, payload
            if not record["To"] or not record["Body"] or not (record["From"] or record["MessagingServiceSid"]):
                return 400, {"code": 21604, "message": "A 'To' phone number is required.", "status": 400}
            if len(record["MediaUrl"]) > 10:
                return 400, {"code": 21623, "message": "Number of media files exceeds allowed limit", "status": 400}
            sid = f"SM{next(self._ids):032d}"
            record["sid"] = sid
            self.messages.append(record)
        return 201, {"sid": sid, "account_sid": self.account_sid, "to": record["To"], "from": record["From"],
                     "body": record["Body"], "status": "queued", "num_media": str(len(record["MediaUrl"])),
                     "error_code": None, "error_message": None}

    # -- webhooks -------------------------------------------------------------------------------
    def sign(self, url: str, params: dict[str, str]) -> str:
        data = url + "".join(k + params[k] for k in sorted(params))
        return base64.b64encode(hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()

    def status_callback(self, app_url: str, public_url: str, sid: str, status: str, error_code: str | None = None,
                        signature: str | None = None) -> requests.Response:
        """POST a delivery report to `app_url`/sms/status, signed over `public_url`/sms/status."""
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid, "MessageStatus": status,
                  "SmsStatus": status, "To": "+15145550142", "From": FROM_NUMBER, "ApiVersion": "2010-04-01"}
        if error_code:
            params["ErrorCode"] = error_code
        header = signature if signature is not None else self.sign(public_url.rstrip("/") + "/sms/status", params)
        return requests.post(app_url + "/sms/status", data=urlencode(params),
                             headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": header}, timeout=10)
