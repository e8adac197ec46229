"""Sign requests exactly as Slack does (v0 HMAC-SHA256 of "v0:<timestamp>:<body>")."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode


def signature_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def form_body(fields: dict) -> bytes:
    return urlencode(fields).encode()


def event_body(event: dict, event_id: str, team_id: str = "T0001", api_app_id: str = "A0001") -> bytes:
    return json.dumps({
        "token": "legacy", "team_id": team_id, "api_app_id": api_app_id, "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": team_id, "user_id": "UBOT", "is_bot": True}],
    }).encode()
