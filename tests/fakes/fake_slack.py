"""A fake Slack Web API served over real HTTP, for tests.

Point ``slack_sdk.WebClient(token=fake.bot_token, base_url=fake.api_url)`` at a
started :class:`FakeSlack`. The fake keeps workspace state (users, channels,
messages, files, views...), answers with Slack's own error codes, and records
every call so tests can assert on what the product actually sent.

Why a real server rather than mocks: slack_sdk's retry handlers, the
``files_upload_v2`` three-step dance and Bearer-token file downloads only behave
realistically when there is a genuine HTTP round trip with status codes and
headers. Standard library only, so the fake cannot drift with Flask upgrades.

Error codes follow Slack's method reference (docs.slack.dev / api.slack.com,
mirrored in github.com/slack-ruby/slack-api-ref). Rules Slack enforces and the
fake does too:

- scopes: a method whose scope the bot lacks answers ``missing_scope`` (with
  ``needed`` and ``provided``); the bot has the scopes ``manifest.yml`` asks for
  unless ``FakeSlack(scopes=...)`` says otherwise (table: tests/fakes/slack_scopes.py);
- rate limits, only with ``FakeSlack(enforce_rate_limits=True)``: each method's
  tier (1/20/50/100 calls per ``rate_window_seconds``, 60 by default) per token
  and method, answered with HTTP 429, ``Retry-After`` and ``ratelimited``;
- trigger ids (``strict_triggers``, on by default): only ids from
  ``new_trigger_id()``, once each, within ``trigger_ttl_seconds`` (3 s);
- system messages: joins, leaves, topic and purpose changes and pins write
  ``channel_join`` / ``channel_leave`` / ``channel_topic`` / ``channel_purpose``
  / ``pinned_item`` messages into ``messages`` and history, as Slack does
  (``messages_without_system()`` leaves them out); seeding with
  ``add_channel()`` writes none unless asked;
- archived channels refuse posts, pins, topics, invites and joins
  (``is_archived``) and edits (``is_inactive``, Slack's code for chat.update);
- Block Kit limits, including initial options that must be among the options;
- ``apps.connections.open`` takes only the app-level token (``app_token``, ``xapp-…``; a bot token
  is ``not_allowed_token_type``, any other ``invalid_auth``) and returns a one-connection URL of
  the attached ``socket_mode`` endpoint (tests/fakes/fake_socket_mode.py).

Deliberate simplifications: file sharing is synchronous; ``unknown_method`` is
answered with HTTP 200; chat.postMessage's limit is per channel only (at most
``post_message_burst`` posts in any ``post_message_burst`` seconds, i.e. one a
second with bursts), without Slack's workspace-wide cap; Slack's "special"
methods (auth.test, chat.getPermalink) are never limited; archiving,
unarchiving, renaming and deleting messages write no system message; scopes are
checked for bot tokens only (``chat:write.public`` in the scopes, or the
``chat_write_public`` attribute, lets the bot post in public channels it is not
in).
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import math
import mimetypes
import re
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from tests.fakes import slack_scopes

__all__ = ["RATE_TIERS", "SYSTEM_SUBTYPES", "TIER_LIMITS", "Call", "FakeSlack", "Hold", "SlackError", "validate_blocks"]


# --------------------------------------------------------------------------- #
# Small value helpers
# --------------------------------------------------------------------------- #

# Form-encoded requests carry these as JSON strings; decode them so handlers and
# test assertions see structures, exactly as Slack parses them server-side.
_JSON_ARGS = {"blocks", "attachments", "view", "files", "metadata", "user_auth_blocks", "unfurls", "outputs"}

# Slack's public ID shapes; completeUploadExternal rejects anything else.
_CONVERSATION_ID = re.compile(r"^[CGDZ][A-Z0-9]{8,}$")

# Web API rate tiers (docs.slack.dev/apis/web-api/rate-limits): calls allowed per window, per
# token and method. Tier of each method from its reference page; chat.postMessage is "special"
# (about one a second per channel, see FakeSlack.post_message_burst), as are auth.test and
# chat.getPermalink, which are left unlimited.
TIER_LIMITS = {1: 1, 2: 20, 3: 50, 4: 100}
RATE_TIERS = {
    "bots.info": 3,
    "team.info": 3,
    "users.info": 4,
    "users.list": 2,
    "users.lookupByEmail": 3,
    "usergroups.list": 2,
    "usergroups.users.list": 2,
    "conversations.create": 2,
    "conversations.info": 3,
    "conversations.list": 2,
    "users.conversations": 3,
    "conversations.rename": 2,
    "conversations.members": 4,
    "conversations.invite": 3,
    "conversations.kick": 3,
    "conversations.join": 3,
    "conversations.leave": 3,
    "conversations.setTopic": 2,
    "conversations.setPurpose": 2,
    "conversations.archive": 2,
    "conversations.unarchive": 2,
    "conversations.open": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "chat.update": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "pins.add": 2,
    "pins.remove": 2,
    "pins.list": 2,
    "views.open": 4,
    "views.push": 4,
    "views.update": 4,
    "views.publish": 4,
    "files.info": 4,
    "files.list": 3,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}

# Messages Slack itself writes into a channel's history.
SYSTEM_SUBTYPES = frozenset({"channel_join", "channel_leave", "channel_topic", "channel_purpose", "pinned_item"})

_LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Slack</title></head><body>"
    b"<h1>Sign in to your workspace</h1><form action='/signin' method='post'>"
    b"<input name='email'><input name='password' type='password'></form></body></html>"
)


class SlackError(Exception):
    """Raised by API handlers; becomes ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _invalid_arguments(message: str) -> SlackError:
    return SlackError("invalid_arguments", response_metadata={"messages": [message]})


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return str(value or "").strip().lower() in ("1", "true", "yes")


def _int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SlackError("invalid_arguments") from None


def _csv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _paginate(items: list, args: dict, default_limit: int, max_limit: int = 1000) -> tuple[list, dict]:
    """Offset-based stand-in for Slack's opaque cursors (same wire contract)."""
    limit = min(_int(args.get("limit"), 0) or default_limit, max_limit)
    start = 0
    if args.get("cursor"):
        try:
            start = int(base64.b64decode(str(args["cursor"])).decode().split(":", 1)[1])
        except (ValueError, IndexError):
            raise SlackError("invalid_cursor") from None
    end = start + limit
    next_cursor = _encode_cursor(end) if end < len(items) else ""
    return items[start:end], {"next_cursor": next_cursor}


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields[name] = payload if part.get_filename() else payload.decode("utf-8")
    return fields


def _filetype_for(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"txt": "text", "jpeg": "jpg", "md": "markdown", "htm": "html", "yml": "yaml"}.get(ext, ext or "binary")


# --------------------------------------------------------------------------- #
# Block Kit validation
# --------------------------------------------------------------------------- #

_BLOCK_TYPES = {
    "section",
    "divider",
    "image",
    "actions",
    "context",
    "input",
    "header",
    "file",
    "rich_text",
    "video",
    "markdown",
    "call",
    "table",
}


def _err(pointer: str, message: str) -> str:
    # Mirrors the shape of Slack's response_metadata.messages entries.
    return f"[ERROR] {message} [json-pointer:{pointer}]"


def _check_text(obj: Any, pointer: str, max_len: int, plain_only: bool = False) -> str | None:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        return _err(pointer, f"must be a text object of type {' or '.join(allowed)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return _err(pointer + "/text", "must be more than 0 characters")
    if len(text) > max_len:
        return _err(pointer + "/text", f"must be less than {max_len + 1} characters")
    return None


def _check_options(options: Any, pointer: str, low: int, high: int) -> str | None:
    if not isinstance(options, list) or len(options) < low:
        return _err(pointer, f"must provide at least {low} items")
    if len(options) > high:
        return _err(pointer, f"must provide at most {high} items")
    for i, option in enumerate(options):
        p = f"{pointer}/{i}"
        if not isinstance(option, dict):
            return _err(p, "must be an option object")
        error = _check_text(option.get("text"), p + "/text", 75)
        if error:
            return error
        value = option.get("value")
        if value is not None and len(str(value)) > 150:
            return _err(p + "/value", "must be less than 151 characters")
    return None


def _option_key(option: Any) -> Any:
    # Slack matches an initial option to an option by its text and value.
    if not isinstance(option, dict):
        return None
    text = option.get("text")
    text = (text.get("type"), text.get("text")) if isinstance(text, dict) else text
    return text, option.get("value")


def _check_initial(element: dict, pointer: str) -> str | None:
    """initial_option(s) must each be one of the element's options; initial_users must be user IDs."""
    kind = element["type"]
    options = element.get("options")
    if kind in ("static_select", "multi_static_select") and "option_groups" in element:
        options = [o for group in element["option_groups"] for o in (group or {}).get("options") or []]
    keys = [_option_key(o) for o in options or []]
    candidates: list[tuple[str, Any]] = []
    if kind in ("checkboxes", "multi_static_select") and "initial_options" in element:
        initial = element["initial_options"]
        if not isinstance(initial, list):
            return _err(pointer + "/initial_options", "must be an array of option objects")
        candidates = [(f"{pointer}/initial_options/{i}", o) for i, o in enumerate(initial)]
    if kind in ("radio_buttons", "static_select") and "initial_option" in element:
        candidates = [(pointer + "/initial_option", element["initial_option"])]
    for p, option in candidates:
        if _option_key(option) is None or _option_key(option) not in keys:
            return _err(p, "must match one of the provided options")
    if kind == "multi_users_select" and "initial_users" in element:
        users = element["initial_users"]
        if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
            return _err(pointer + "/initial_users", "must be an array of user IDs (strings)")
    if kind == "users_select" and "initial_user" in element and not isinstance(element["initial_user"], str):
        return _err(pointer + "/initial_user", "must be a user ID (string)")
    return None


def _check_element(element: Any, pointer: str, action_ids: set[str]) -> str | None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return _err(pointer, "must be an element object with a type")
    action_id = element.get("action_id")
    if action_id is not None:
        if len(str(action_id)) > 255:
            return _err(pointer + "/action_id", "must be less than 256 characters")
        if action_id in action_ids:
            return _err(pointer + "/action_id", f"duplicate action_id: {action_id}")
        action_ids.add(action_id)
    kind = element["type"]
    if kind == "button":
        error = _check_text(element.get("text"), pointer + "/text", 75, plain_only=True)
        if error:
            return error
        if len(str(element.get("value", ""))) > 2000:
            return _err(pointer + "/value", "must be less than 2001 characters")
    elif kind in ("checkboxes", "radio_buttons"):
        error = _check_options(element.get("options"), pointer + "/options", 1, 10)
        if error:
            return error
    elif kind == "overflow":
        return _check_options(element.get("options"), pointer + "/options", 2, 5)
    elif kind in ("static_select", "multi_static_select"):
        if "option_groups" in element:
            groups = element["option_groups"]
            if not isinstance(groups, list) or not 1 <= len(groups) <= 100:
                return _err(pointer + "/option_groups", "must provide between 1 and 100 items")
            for i, group in enumerate(groups):
                error = _check_options((group or {}).get("options"), f"{pointer}/option_groups/{i}/options", 1, 100)
                if error:
                    return error
        else:
            error = _check_options(element.get("options"), pointer + "/options", 1, 100)
            if error:
                return error
    error = _check_initial(element, pointer)
    if error:
        return error
    if "placeholder" in element:
        return _check_text(element["placeholder"], pointer + "/placeholder", 150, plain_only=True)
    return None


def _check_block(block: Any, pointer: str, block_ids: set[str]) -> str | None:
    if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
        return _err(pointer + "/type", "must be a supported block type")
    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str) or not block_id or len(block_id) > 255:
            return _err(pointer + "/block_id", "must be a string of 1 to 255 characters")
        if block_id in block_ids:
            return _err(pointer + "/block_id", f"duplicate block_id: {block_id}")
        block_ids.add(block_id)

    action_ids: set[str] = set()  # Slack scopes action_id uniqueness to a block
    kind = block["type"]
    checks: list[Callable[[], str | None]] = []
    if kind == "section":
        if "text" not in block and "fields" not in block:
            return _err(pointer, "must provide text or fields")
        if "text" in block:
            checks.append(lambda: _check_text(block["text"], pointer + "/text", 3000))
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or len(fields) > 10:
                return _err(pointer + "/fields", "must provide at most 10 items")
            checks += [lambda i=i, f=f: _check_text(f, f"{pointer}/fields/{i}", 2000) for i, f in enumerate(fields)]
        if "accessory" in block:
            checks.append(lambda: _check_element(block["accessory"], pointer + "/accessory", action_ids))
    elif kind == "header":
        checks.append(lambda: _check_text(block.get("text"), pointer + "/text", 150, plain_only=True))
    elif kind in ("actions", "context"):
        elements = block.get("elements")
        high = 25 if kind == "actions" else 10
        if not isinstance(elements, list) or not 1 <= len(elements) <= high:
            return _err(pointer + "/elements", f"must provide between 1 and {high} items")
        for i, element in enumerate(elements):
            p = f"{pointer}/elements/{i}"
            if kind == "context" and isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
                checks.append(lambda e=element, p=p: _check_text(e, p, 3000))
            else:
                checks.append(lambda e=element, p=p: _check_element(e, p, action_ids))
    elif kind == "input":
        checks.append(lambda: _check_text(block.get("label"), pointer + "/label", 2000, plain_only=True))
        if "element" not in block:
            return _err(pointer + "/element", "is required")
        checks.append(lambda: _check_element(block["element"], pointer + "/element", action_ids))
    elif kind == "image":
        if not block.get("image_url") and not block.get("slack_file"):
            return _err(pointer + "/image_url", "is required")
        if not block.get("alt_text") or len(str(block["alt_text"])) > 2000:
            return _err(pointer + "/alt_text", "must be 1 to 2000 characters")
    for check in checks:
        error = check()
        if error:
            return error
    return None


def validate_blocks(blocks: Any, limit: int, pointer: str = "/blocks") -> str | None:
    """Check Block Kit the way Slack does; None when valid.

    Returns the human-readable reason (the text Slack puts in
    ``response_metadata.messages``), not the error code, because the code
    depends on the API family: chat.* answers ``invalid_blocks`` while views.*
    answers ``invalid_arguments`` for the same defect.
    """
    if isinstance(blocks, (str, bytes)):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return _err(pointer, "must be a valid JSON array")
    if not isinstance(blocks, list):
        return _err(pointer, "must be an array")
    if len(blocks) > limit:
        return _err(pointer, f"must provide at most {limit} items")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        error = _check_block(block, f"{pointer}/{i}", block_ids)
        if error:
            return error
    return None


def _validate_view(view: Any, allowed_types: tuple[str, ...]) -> dict:
    """Return the decoded view or raise the invalid_arguments Slack sends for views.*."""
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            raise _invalid_arguments("[ERROR] view must be valid JSON") from None
    if not isinstance(view, dict):
        raise _invalid_arguments("[ERROR] missing required field: view")
    if view.get("type") not in allowed_types:
        raise _invalid_arguments(_err("/view/type", f"must be one of {', '.join(allowed_types)}"))
    checks = [("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)]
    for key, max_len in checks:
        if len(str(view.get(key) or "")) > max_len:
            raise _invalid_arguments(_err(f"/view/{key}", f"must be less than {max_len + 1} characters"))
    if view["type"] == "modal":
        for key in ("title", "submit", "close"):
            if key in view or key == "title":
                error = _check_text(view.get(key), f"/view/{key}", 24, plain_only=True)
                if error:
                    raise _invalid_arguments(error)
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        if has_input and "submit" not in view:
            raise _invalid_arguments(_err("/view/submit", "submit is required when an input block is within the blocks array"))
    error = validate_blocks(view.get("blocks", []), 100, "/view/blocks")
    if error:
        raise _invalid_arguments(error)
    return view


# --------------------------------------------------------------------------- #
# Recording
# --------------------------------------------------------------------------- #


@dataclass
class Call:
    """One request to /api/<method>.

    ``status`` is the HTTP status answered; 0 means the connection was dropped
    without an answer (``crash_after``) even though the work was done.
    """

    method: str
    args: dict
    token: str | None
    status: int = 200
    ok: bool = True
    error: str | None = None
    at: float = field(default_factory=time.time)


class Hold:
    """One API call held back before the fake acts on it (see ``FakeSlack.hold``).

    ``arrived`` is set when the call comes in, ``answered`` once it has been
    processed and answered; the call goes ahead at ``release()`` or after
    ``seconds``, so a test that forgets to release cannot hang the server.
    """

    def __init__(self, method: str, predicate: Callable[[dict], bool] | None, seconds: float) -> None:
        self.method = method
        self.predicate = predicate
        self.seconds = seconds
        self.arrived = threading.Event()
        self.answered = threading.Event()
        self._go = threading.Event()

    def release(self) -> None:
        self._go.set()

    def matches(self, method: str, args: dict) -> bool:
        return method == self.method and (self.predicate is None or self.predicate(args))


# Registry of API handlers: method name -> function(fake, args) -> response dict.
_API: dict[str, Callable[[FakeSlack, dict], dict]] = {}


def api(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        _API[name] = fn
        return fn

    return register


# --------------------------------------------------------------------------- #
# HTTP plumbing
# --------------------------------------------------------------------------- #


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSlack

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (timeouts, crash tests) are expected noise.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        self.fake.server_errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 = one request per connection: stop() never waits on keep-alives.
    protocol_version = "HTTP/1.0"
    server_version = "FakeSlack/1.0"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fake._route(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._route(self, "POST")


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
    _send(handler, status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)


# --------------------------------------------------------------------------- #
# The fake
# --------------------------------------------------------------------------- #


class FakeSlack:
    """Stateful fake of the Slack Web API; see module docstring."""

    # Real apps with chat:write.public may post to public channels they are
    # not in; default off so a missing conversations.join shows up in tests.
    chat_write_public: bool = False
    # Trigger ids as Slack has them: only those new_trigger_id() issued, each
    # used once, within trigger_ttl_seconds of being issued. Off, any non-empty
    # id is accepted (once only if single_use_triggers).
    strict_triggers: bool = True
    trigger_ttl_seconds: float = 3.0
    single_use_triggers: bool = False
    # chat.postMessage (enforce_rate_limits only): at most this many posts per
    # channel in any window of as many seconds (scaled by rate_window_seconds / 60).
    post_message_burst: int = 5
    response_url_max_uses: int = 5

    def __init__(
        self,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-1-A0000APP1-1-test",
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        enforce_rate_limits: bool = False,
        rate_window_seconds: float = 60.0,
        scopes: Iterable[str] | None = None,
    ) -> None:
        self.bot_token = bot_token
        # The app-level token: only apps.connections.open takes it (Socket Mode), and only it.
        self.app_token = app_token
        # The Socket Mode endpoint apps.connections.open points to (tests/fakes/fake_socket_mode.py);
        # None = the app has Socket Mode off, and Slack answers as it does then.
        self.socket_mode: Any = None
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B0000BOT1"
        self.app_id = "A0000APP1"
        self.enforce_rate_limits = enforce_rate_limits
        # Slack's limits are per minute; a test can shrink the minute (tier 2 = 20 calls per window).
        self.rate_window_seconds = rate_window_seconds
        # Calls allowed per window, by method; a test may lower one (fake.rate_limits["chat.update"] = 2).
        self.rate_limits: dict[str, int] = {m: TIER_LIMITS[tier] for m, tier in RATE_TIERS.items()}
        # The bot token's scopes, in order; default: what manifest.yml asks for.
        self.scopes: tuple[str, ...] = tuple(scopes) if scopes is not None else slack_scopes.manifest_bot_scopes()
        self.url = ""
        self.api_url = ""

        self._lock = threading.RLock()
        self._ids = collections.defaultdict(lambda: itertools.count(1))
        self._last_ts = 0

        self.calls: list[Call] = []
        self.users: dict[str, dict] = {}
        self.channels: dict[str, dict] = {}
        self.messages: dict[str, list[dict]] = collections.defaultdict(list)
        self.ephemerals: list[dict] = []
        self.pins: dict[str, list[str]] = collections.defaultdict(list)
        self.usergroups: dict[str, dict] = {}
        self.views: dict[str, dict] = {}
        self.home_views: dict[str, dict] = {}
        self.files: dict[str, dict] = {}
        self.uploads: list[dict] = []
        self.downloads: list[dict] = []
        self.responses: list[dict] = []
        self.server_errors: list[str] = []

        self._members: dict[str, list[str]] = {}
        self._file_bytes: dict[str, bytes] = {}
        self._held_downloads = 0  # how many more file downloads stop half-way (hold_downloads)
        self._downloads_released = threading.Event()
        self._cut_held_downloads = False
        self._pending_uploads: dict[str, dict] = {}
        self._faults: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._holds: list[Hold] = []
        self._rate_windows: dict[tuple, collections.deque] = collections.defaultdict(collections.deque)
        self._triggers: dict[str, float] = {}  # issued trigger id -> time.monotonic() when issued
        self._used_triggers: set[str] = set()
        self._response_urls: dict[str, int] = {}  # path -> uses so far
        self._response_log: list[tuple[str, dict]] = []

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self.add_user(bot_user_id, "bot", real_name="Bot", is_bot=True)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/"
        self.api_url = f"{self.url}api/"
        with self._lock:  # files seeded before start() need this server's address
            for file in self.files.values():
                file.update(self._file_urls(file["id"], file["name"], file["user"]))
        # Short poll interval keeps stop() fast; tests create many servers.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-slack-{port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def create_limit_per_minute(self) -> int:
        """conversations.create calls allowed per window (kept for older tests; see rate_limits)."""
        return self.rate_limits["conversations.create"]

    @create_limit_per_minute.setter
    def create_limit_per_minute(self, value: int) -> None:
        self.rate_limits["conversations.create"] = value

    # ------------------------------------------------------------ ids & time

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids[prefix]):08d}"

    def _next_ts(self) -> str:
        # Strictly increasing even within the same microsecond, like Slack's.
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # ------------------------------------------------------------ seeding

    def add_user(
        self,
        user_id: str,
        name: str,
        email: str | None = None,
        real_name: str | None = None,
        locale: str = "en-US",
        is_bot: bool = False,
        deleted: bool = False,
        is_admin: bool = False,
        tz: str = "America/Toronto",
        guest: str | None = None,
    ) -> dict:
        """`guest`: None (a full member), "multi" (is_restricted) or "single" (is_ultra_restricted)."""
        real_name = real_name if real_name is not None else name
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real_name,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": 0,
            "is_admin": is_admin,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "is_restricted": guest is not None,
            "is_ultra_restricted": guest == "single",
            "updated": int(time.time()),
            "locale": locale,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": name,
                "display_name_normalized": name,
                "email": email,
                "team": self.team_id,
            },
        }
        if is_bot and user_id == self.bot_user_id:
            user["profile"]["bot_id"] = self.bot_id
        with self._lock:
            self.users[user_id] = user
        return user

    def add_channel(
        self, name: str, members: Any = (), is_private: bool = False, creator: str | None = None, system_messages: bool = False
    ) -> dict:
        """Seed a channel; with `system_messages`, history starts with a channel_join per member."""
        with self._lock:
            members = list(dict.fromkeys(members))
            channel = self._create_channel(name, is_private, creator or (members[0] if members else self.bot_user_id), members)
            if system_messages:
                for user_id in members:
                    self._append_join(channel["id"], user_id)
            return channel

    def delete_channel(self, channel_id: str) -> None:
        """A workspace admin deletes the channel: gone with its members, messages and pins; its
        name is free again and every call about it answers ``channel_not_found``. (Slack then
        sends ``channel_deleted`` to apps that subscribe to it; tests post that event themselves.)"""
        with self._lock:
            self.channels.pop(channel_id, None)
            self._members.pop(channel_id, None)
            self.messages.pop(channel_id, None)
            self.pins.pop(channel_id, None)

    def add_usergroup(self, group_id: str, handle: str, user_ids: Any) -> dict:
        user_ids = list(user_ids)
        group = {
            "id": group_id,
            "team_id": self.team_id,
            "is_usergroup": True,
            "name": handle,
            "handle": handle,
            "date_delete": 0,
            "users": user_ids,
            "user_count": len(user_ids),
        }
        with self._lock:
            self.usergroups[group_id] = group
        return group

    def add_file(
        self,
        file_id: str,
        name: str,
        content: bytes,
        mimetype: str,
        filetype: str,
        user: str,
        channels: Any = (),
        created: int | None = None,
    ) -> dict:
        with self._lock:
            return self._store_file(file_id, name, name, content, mimetype, filetype, user, list(channels), created)

    # ------------------------------------------------------------ fault injection

    def hold_downloads(self, times: int = 1) -> None:
        """The next `times` file downloads send their headers and half their body, then wait (up
        to 30 s) for release_downloads(): downloads caught under way. Later ones are not held."""
        with self._lock:
            self._held_downloads += times
            self._cut_held_downloads = False
            self._downloads_released.clear()

    def release_downloads(self, cut: bool = False) -> None:
        """Held downloads send the rest of the file or, with `cut`, break off (connection closed)."""
        with self._lock:
            self._held_downloads = 0
            self._cut_held_downloads = cut
            self._downloads_released.set()

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        with self._lock:
            self._faults[method].extend([("ratelimit", retry_after)] * times)

    def fail(self, method: str, times: int = 1, status: int = 500) -> None:
        with self._lock:
            self._faults[method].extend([("status", status)] * times)

    def fail_with(self, method: str, error: str, times: int = 1) -> None:
        with self._lock:
            self._faults[method].extend([("error", error)] * times)

    def crash_after(self, method: str) -> None:
        with self._lock:
            self._faults[method].append(("crash", None))

    def hold(self, method: str, predicate: Callable[[dict], bool] | None = None, seconds: float = 10.0) -> Hold:
        """Hold the next call to `method` (whose args match `predicate`) before acting on it: a request
        in flight, overtaken by the calls that come in meanwhile. One call only."""
        hold = Hold(method, predicate, seconds)
        with self._lock:
            self._holds.append(hold)
        return hold

    def _take_hold(self, method: str, args: dict) -> Hold | None:
        with self._lock:
            hold = next((h for h in self._holds if h.matches(method, args)), None)
            if hold is not None:
                self._holds.remove(hold)
            return hold

    # ------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 5.0, predicate: Callable[[Call], bool] | None = None
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            matching = [c for c in self.calls_to(method) if predicate is None or predicate(c)]
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        with self._lock:
            seen = [f"{c.method} -> {'ok' if c.ok else c.error} ({c.status})" for c in self.calls[-50:]]
        what = f"{count} call(s) to {method!r}" + (" matching predicate" if predicate else "")
        raise AssertionError(
            f"Timed out after {timeout}s waiting for {what}; got {len(matching)}.\n"
            f"Calls received ({len(self.calls)}): " + ("\n  " + "\n  ".join(seen) if seen else "none")
        )

    def response_url(self) -> str:
        with self._lock:
            path = f"/response/{next(self._ids['response'])}"
            self._response_urls[path] = 0
        return self.url.rstrip("/") + path

    def responses_for(self, url: str) -> list[dict]:
        path = urlsplit(url).path
        with self._lock:
            return [body for p, body in self._response_log if p == path]

    def wait_for_response(self, count: int = 1, timeout: float = 5.0) -> list[dict]:
        # Bolt's respond() often runs after ack, so tests need to wait for it.
        deadline = time.monotonic() + timeout
        while len(self.responses) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"Timed out after {timeout}s waiting for {count} response_url post(s); "
                    f"got {len(self.responses)}: {self.responses!r}"
                )
            time.sleep(0.01)
        return list(self.responses)

    def channel_by_name(self, name: str) -> dict | None:
        name = name.lstrip("#")
        with self._lock:
            return next((c for c in self.channels.values() if c.get("name") == name and not c.get("is_im")), None)

    def members(self, channel_id: str) -> set[str]:
        with self._lock:
            return set(self._members.get(channel_id, ()))

    def messages_without_system(self, channel_id: str) -> list[dict]:
        """The channel's messages (thread replies included, oldest first) minus the ones Slack
        itself writes (channel_join, channel_topic, pinned_item...): what was posted."""
        with self._lock:
            return [m for m in self.messages.get(channel_id, []) if m.get("subtype") not in SYSTEM_SUBTYPES]

    def system_messages(self, channel_id: str, subtype: str | None = None) -> list[dict]:
        """The messages Slack itself wrote in the channel, oldest first; only `subtype` if given."""
        with self._lock:
            return [
                m
                for m in self.messages.get(channel_id, [])
                if m.get("subtype") in SYSTEM_SUBTYPES and (subtype is None or m["subtype"] == subtype)
            ]

    def new_trigger_id(self) -> str:
        """A trigger id as Slack puts in an interaction payload: usable once, for trigger_ttl_seconds."""
        with self._lock:
            trigger_id = f"{next(self._ids['trigger']) + 100000}.{int(time.time())}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = time.monotonic()
        return trigger_id

    # ------------------------------------------------------------ routing

    def _route(self, handler: BaseHTTPRequestHandler, verb: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = parts.path
        if path.startswith("/api/"):
            self._serve_api(handler, path[len("/api/") :], parts.query, body)
        elif path.startswith("/upload/v1/") and verb == "POST":
            self._serve_upload(handler, path.rsplit("/", 1)[-1], body)
        elif path.startswith("/files-pri/"):
            self._serve_download(handler, path)
        elif path.startswith("/response/") and verb == "POST":
            self._serve_response_url(handler, path, body)
        else:
            _send(handler, 404, b"Not Found", "text/plain; charset=utf-8")

    def _parse_args(self, handler: BaseHTTPRequestHandler, query: str, body: bytes) -> tuple[dict, str | None]:
        """Merge query + body like Slack; returns (args, token-from-params)."""
        args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        content_type = handler.headers.get("Content-Type", "")
        media_type = content_type.split(";")[0].strip().lower()
        if body and media_type == "application/json":
            try:
                decoded = json.loads(body.decode("utf-8"))
            except ValueError:
                raise SlackError("invalid_json") from None
            if not isinstance(decoded, dict):
                raise SlackError("json_not_object")
            # Slack ignores a token inside a JSON body; it must be a header.
            decoded.pop("token", None)
            args.update(decoded)
        elif body and media_type == "multipart/form-data":
            args.update(_parse_multipart(body, content_type))
        elif body:
            args.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        for key in _JSON_ARGS & args.keys():
            if isinstance(args[key], str) and args[key].strip()[:1] in ("[", "{"):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    pass  # handlers report the malformed value with Slack's code
        return args, args.pop("token", None)

    def _take_fault(self, key: str) -> tuple[str, Any] | None:
        queue = self._faults.get(key)
        return queue.popleft() if queue else None

    def _serve_api(self, handler: BaseHTTPRequestHandler, method: str, query: str, body: bytes) -> None:
        auth = handler.headers.get("Authorization", "")
        bearer = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        parse_error: SlackError | None = None
        try:
            args, param_token = self._parse_args(handler, query, body)
        except SlackError as e:
            args, param_token, parse_error = {}, None, e
        except Exception:  # whatever a malformed body breaks, Slack says invalid_form_data
            args, param_token, parse_error = {}, None, SlackError("invalid_form_data")
        token = bearer or param_token
        hold = self._take_hold(method, args) if parse_error is None else None
        if hold is not None:  # waits outside the lock: other calls go ahead meanwhile
            hold.arrived.set()
            hold._go.wait(hold.seconds)
        with self._lock:  # record under the same lock so `calls` order == processing order
            status, payload, headers, drop = self._dispatch(method, args, token, parse_error)
            self.calls.append(Call(method, args, token, 0 if drop else status, payload.get("ok", False), payload.get("error")))
        try:
            if drop:
                handler.close_connection = True
            else:
                _send_json(handler, status, payload, headers)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the caller is gone (killed while it waited): the work is done all the same
        finally:
            if hold is not None:
                hold.answered.set()

    def _dispatch(
        self, method: str, args: dict, token: str | None, parse_error: SlackError | None
    ) -> tuple[int, dict, dict, bool]:
        """Return (status, payload, headers, drop_connection)."""
        with self._lock:
            fault = self._take_fault(method)
            if fault and fault[0] == "ratelimit":
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault[1])}, False
            if fault and fault[0] == "status":
                error = "service_unavailable" if fault[1] == 503 else "internal_error"
                return fault[1], {"ok": False, "error": error}, {}, False
            if fault and fault[0] == "error":
                return 200, {"ok": False, "error": fault[1]}, {}, False
            drop = bool(fault and fault[0] == "crash")

            headers: dict[str, str] = {}
            try:
                if parse_error:
                    raise parse_error
                if not token:
                    raise SlackError("not_authed")
                if method == "apps.connections.open":
                    return 200, {"ok": True, **self._connections_open(token)}, {}, drop
                if token != self.bot_token:
                    raise SlackError("invalid_auth")
                handler = _API.get(method)
                if handler is None:
                    raise SlackError("unknown_method", req_method=method)
                if self.enforce_rate_limits:
                    wait = self._tier_wait(token, method, args)
                    if wait:
                        return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}, False
                # Slack tells every authenticated caller its scopes and the ones the method accepts.
                headers = {
                    "X-OAuth-Scopes": ",".join(self.scopes),
                    "X-Accepted-OAuth-Scopes": ",".join(slack_scopes.scopes_for(method, self._conversation_kind(method, args))),
                }
                needed = self._missing_scope(method, args)
                if needed:
                    raise SlackError("missing_scope", needed=needed, provided=",".join(self.scopes))
                payload = {"ok": True, **handler(self, args)}
            except SlackError as e:
                payload = {"ok": False, "error": e.error, **e.extra}
            except Exception:  # recorded in server_errors, which the fixture fails on
                # A bug in the fake must not look like a Slack answer.
                self.server_errors.append(traceback.format_exc())
                return 500, {"ok": False, "error": "fake_internal_error"}, {}, False
            return 200, payload, headers, drop

    def _connections_open(self, token: str) -> dict:
        """apps.connections.open: an app-level token only (a bot or user token is the wrong type)."""
        if token.startswith(("xoxb-", "xoxp-")):
            raise SlackError("not_allowed_token_type")
        if token != self.app_token:
            raise SlackError("invalid_auth")
        if self.socket_mode is None:
            raise SlackError("fake_socket_mode_not_started")  # the fake's own code: a test forgot to attach one
        return {"url": self.socket_mode.new_url()}

    def _tier_wait(self, token: str, method: str, args: dict) -> int:
        """Rolling window per token and method (and channel, for chat.postMessage): whole seconds
        until a call is allowed again (at least 1), or 0 when this one is allowed and counted."""
        if method == "chat.postMessage":
            limit = self.post_message_burst
            span = self.post_message_burst * self.rate_window_seconds / 60
            key: tuple = (token, method, str(args.get("channel") or ""))
        else:
            limit = self.rate_limits.get(method, 0)
            span = self.rate_window_seconds
            key = (token, method)
        if limit <= 0:
            return 0  # not limited
        now = time.monotonic()
        window = self._rate_windows[key]
        while window and now - window[0] >= span:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(span - (now - window[0])))
        window.append(now)
        return 0

    def _conversation_kind(self, method: str, args: dict) -> str:
        """ "public", "private", "im" or "mpim": the kind of conversation a call is about, which
        decides the scope it needs. Unknown channels count as public (the call then fails on its own)."""
        if method == "conversations.create":
            return "private" if _flag(args.get("is_private")) else "public"
        if method == "conversations.open" and not args.get("channel"):
            return "im" if len(_csv(args.get("users"))) <= 1 else "mpim"
        channel = self.channels.get(str(args.get("channel") or ""))
        if channel is None:
            return "public"
        if channel.get("is_im"):
            return "im"
        if channel.get("is_mpim"):
            return "mpim"
        return "private" if channel.get("is_private") else "public"

    def _missing_scope(self, method: str, args: dict) -> str | None:
        """The scope Slack would report as `needed`, or None when the token may make this call."""
        if method == "conversations.list":
            types = {"public_channel": "public", "private_channel": "private", "im": "im", "mpim": "mpim"}
            kinds = [types[t] for t in _csv(args.get("types")) or ["public_channel"] if t in types]
        else:
            kinds = [self._conversation_kind(method, args)]
        for kind in kinds:
            accepted = slack_scopes.scopes_for(method, kind)
            if accepted and not set(accepted) & set(self.scopes):
                return accepted[0]
        return None

    # ------------------------------------------------------------ non-API endpoints

    def _serve_upload(self, handler: BaseHTTPRequestHandler, file_id: str, body: bytes) -> None:
        with self._lock:
            fault = self._take_fault("upload")
            if fault and fault[0] == "status":
                _send(handler, fault[1], b"error", "text/plain; charset=utf-8")
                return
            pending = self._pending_uploads.get(file_id)
            if pending is None:
                _send(handler, 404, b"Not Found", "text/plain; charset=utf-8")
                return
            # slack_sdk posts raw bytes (urllib even labels them form-urlencoded);
            # other clients send multipart, so accept both.
            content_type = handler.headers.get("Content-Type", "")
            if content_type.lower().startswith("multipart/form-data"):
                fields = _parse_multipart(body, content_type)
                body = next((v for v in fields.values() if isinstance(v, bytes)), b"")
            pending["content"] = body
        _send(handler, 200, f"OK - {len(body)}".encode(), "text/plain; charset=utf-8")

    def _serve_download(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        # /files-pri/<team>-<file id>/[download/]<name>
        segments = path.split("/")
        file_id = segments[2].rsplit("-", 1)[-1] if len(segments) > 2 else ""
        authorized = handler.headers.get("Authorization", "") == f"Bearer {self.bot_token}"
        with self._lock:
            self.downloads.append({"file_id": file_id, "path": path, "authorized": authorized})
            content = self._file_bytes.get(file_id)
            file = self.files.get(file_id)
        if not authorized:
            # Slack's real trap: no error status, just a sign-in page.
            _send(handler, 200, _LOGIN_PAGE, "text/html; charset=utf-8")
            return
        if content is None or file is None:
            _send(handler, 404, b"Not Found", "text/plain; charset=utf-8")
            return
        headers = {}
        if "/download/" in path:
            headers["Content-Disposition"] = f'attachment; filename="{unquote(segments[-1])}"'
        with self._lock:
            held, self._held_downloads = self._held_downloads > 0, max(0, self._held_downloads - 1)
        if not held:
            _send(handler, 200, content, file["mimetype"], headers)
            return
        half = len(content) // 2
        handler.send_response(200)
        for key, value in {"Content-Type": file["mimetype"], "Content-Length": str(len(content)), **headers}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(content[:half])
        self._downloads_released.wait(timeout=30)
        if not self._cut_held_downloads:
            handler.wfile.write(content[half:])

    def _serve_response_url(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        with self._lock:
            uses = self._response_urls.get(path)
            if uses is None:
                _send_json(handler, 404, {"ok": False, "error": "expired_url"})
                return
            if uses >= self.response_url_max_uses:
                _send_json(handler, 404, {"ok": False, "error": "used_url"})
                return
            try:
                payload = json.loads(body.decode("utf-8") or "{}")
            except ValueError:
                _send_json(handler, 400, {"ok": False, "error": "invalid_payload"})
                return
            if not isinstance(payload, dict):
                _send_json(handler, 400, {"ok": False, "error": "invalid_payload"})
                return
            problem = None
            if not (payload.get("text") or payload.get("blocks") or payload.get("attachments") or payload.get("delete_original")):
                problem = "no_text"
            elif "blocks" in payload and validate_blocks(payload["blocks"], 50):
                problem = "invalid_blocks"
            if problem:
                _send_json(handler, 400, {"ok": False, "error": problem})
                return
            self._response_urls[path] = uses + 1
            self.responses.append(payload)
            self._response_log.append((path, payload))
        _send_json(handler, 200, {"ok": True})

    # ------------------------------------------------------------ shared state helpers

    def _visible(self, channel: dict) -> bool:
        # Private conversations the bot is not in do not exist as far as Slack says.
        if channel.get("is_im") or channel.get("is_mpim") or channel.get("is_private"):
            return self.bot_user_id in self._members.get(channel["id"], ())
        return True

    def _channel(self, channel_id: Any) -> dict:
        channel = self.channels.get(str(channel_id or ""))
        if channel is None or not self._visible(channel):
            raise SlackError("channel_not_found")
        return channel

    def _user(self, user_id: Any, error: str = "user_not_found") -> dict:
        user = self.users.get(str(user_id or ""))
        if user is None:
            raise SlackError(error)
        return user

    def _require_member(self, channel: dict) -> None:
        if self.bot_user_id not in self._members.get(channel["id"], ()):
            # Slack says is_archived to an app that archiving took out of the channel.
            raise SlackError("is_archived" if channel.get("is_archived") else "not_in_channel")

    def _require_active(self, channel: dict) -> None:
        if channel.get("is_archived"):
            raise SlackError("is_archived")

    def _render_channel(self, channel: dict) -> dict:
        rendered = dict(channel)
        members = self._members.get(channel["id"], [])
        rendered["is_member"] = self.bot_user_id in members
        if not channel.get("is_im"):
            rendered["num_members"] = len(members)
        return rendered

    def _render_user(self, user: dict, include_locale: bool) -> dict:
        rendered = json.loads(json.dumps(user))
        if not include_locale:
            rendered.pop("locale", None)
        return rendered

    def _create_channel(self, name: str, is_private: bool, creator: str, members: list[str], prefix: str = "C") -> dict:
        now = int(time.time())
        channel = {
            "id": self._next_id(prefix),
            "name": name,
            "name_normalized": name,
            "is_channel": not is_private,
            "is_group": is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": is_private,
            "created": now,
            "creator": creator,
            "is_archived": False,
            "is_general": False,
            "unlinked": 0,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "context_team_id": self.team_id,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "previous_names": [],
        }
        self.channels[channel["id"]] = channel
        self._members[channel["id"]] = list(members)
        return channel

    def _open_im(self, user_id: str) -> tuple[dict, bool]:
        """DM with one user, reused like Slack does; returns (channel, already_open)."""
        user = self._user(user_id)
        if user["deleted"]:
            raise SlackError("user_disabled")
        if user["is_bot"] and user_id != self.bot_user_id:
            raise SlackError("cannot_dm_bot")
        for channel in self.channels.values():
            if channel.get("is_im") and channel["user"] == user_id:
                return channel, True
        channel = {
            "id": self._next_id("D"),
            "is_im": True,
            "is_org_shared": False,
            "context_team_id": self.team_id,
            "user": user_id,
            "created": int(time.time()),
            "is_user_deleted": False,
            "is_archived": False,
            "is_private": True,
        }
        self.channels[channel["id"]] = channel
        self._members[channel["id"]] = [user_id, self.bot_user_id]
        return channel, False

    def _postable_channel(self, ref: Any) -> dict:
        """Resolve chat.* `channel`: an ID, a user ID (DM) or a #name."""
        ref = str(ref or "").strip()
        if not ref:
            raise SlackError("channel_not_found")
        if ref in self.users:
            return self._open_im(ref)[0]
        # Names are always lowercase, so they cannot collide with IDs.
        channel = self.channels.get(ref) or self.channel_by_name(ref)
        if channel is None or not self._visible(channel):
            raise SlackError("channel_not_found")
        self._require_active(channel)
        if not channel.get("is_im") and self.bot_user_id not in self._members[channel["id"]]:
            may_post_public = self.chat_write_public or "chat:write.public" in self.scopes
            if not (may_post_public and not channel.get("is_private")):
                raise SlackError("not_in_channel")
        return channel

    def _find_message(self, channel_id: str, ts: Any) -> dict:
        for message in self.messages.get(channel_id, []):
            if message["ts"] == str(ts or ""):
                return message
        raise SlackError("message_not_found")

    def _message_content(self, args: dict, limit: int = 50) -> dict:
        """Validate text/blocks/attachments and return the fields to store."""
        text = args.get("text")
        blocks = args.get("blocks")
        attachments = args.get("attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if text is not None and len(str(text)) > 40000:
            raise SlackError("msg_too_long")
        content: dict[str, Any] = {"text": str(text or "")}
        if blocks is not None:
            if isinstance(blocks, str):
                raise SlackError("invalid_blocks_format")
            problem = validate_blocks(blocks, limit)
            if problem:
                raise SlackError("invalid_blocks", response_metadata={"messages": [problem]})
            content["blocks"] = blocks
        if attachments is not None:
            if not isinstance(attachments, list):
                raise SlackError("invalid_attachments")
            if len(attachments) > 100:
                raise SlackError("too_many_attachments")
            content["attachments"] = attachments
        if args.get("metadata") is not None:
            content["metadata"] = args["metadata"]
        return content

    def _append_message(self, channel_id: str, content: dict, thread_ts: Any = None) -> dict:
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": self._next_ts(),
            **content,
        }
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            parent = next((m for m in self.messages[channel_id] if m["ts"] == str(thread_ts)), None)
            if parent is not None:
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = message["ts"]
                parent["reply_users"] = sorted(set(parent.get("reply_users", [])) | {self.bot_user_id})
        self.messages[channel_id].append(message)
        return message

    def _append_system(self, channel_id: str, subtype: str, user_id: str, text: str, **extra: Any) -> dict:
        """A message Slack itself writes (no bot_id: the app did not post it)."""
        message = {"type": "message", "subtype": subtype, "user": user_id, "text": text, "ts": self._next_ts(), **extra}
        self.messages[channel_id].append(message)
        return message

    def _append_join(self, channel_id: str, user_id: str, inviter: str | None = None) -> dict:
        extra = {"inviter": inviter} if inviter else {}
        return self._append_system(channel_id, "channel_join", user_id, f"<@{user_id}> has joined the channel", **extra)

    def _append_leave(self, channel_id: str, user_id: str) -> dict:
        return self._append_system(channel_id, "channel_leave", user_id, f"<@{user_id}> has left the channel")

    def _file_object(self, file_id: str) -> dict:
        return json.loads(json.dumps(self.files[file_id]))

    def _store_file(
        self,
        file_id: str,
        name: str,
        title: str,
        content: bytes,
        mimetype: str,
        filetype: str,
        user: str,
        channel_ids: list[str],
        created: int | None,
    ) -> dict:
        created = int(created if created is not None else time.time())
        file = {
            "id": file_id,
            "created": created,
            "timestamp": created,
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(content),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            **self._file_urls(file_id, name, user),
            "channels": [],
            "groups": [],
            "ims": [],
            "shares": {},
            "comments_count": 0,
        }
        self.files[file_id] = file
        self._file_bytes[file_id] = bytes(content)
        for channel_id in channel_ids:
            self._share_file(file, channel_id, None)
        return file

    def _file_urls(self, file_id: str, name: str, user: str) -> dict:
        quoted = quote(name)
        base = f"{self.url}files-pri/{self.team_id}-{file_id}/"
        return {
            "url_private": base + quoted,
            "url_private_download": base + "download/" + quoted,
            "permalink": f"{self.url}files/{user}/{file_id}/{quoted}",
            "permalink_public": f"{self.url}{self.team_id}-{file_id}-public",
        }

    def _share_file(self, file: dict, channel_id: str, ts: str | None) -> None:
        # Slack files list public channels, private channels and DMs separately.
        channel = self.channels.get(channel_id, {})
        bucket = "ims" if channel.get("is_im") else "groups" if channel.get("is_private") else "channels"
        if channel_id not in file[bucket]:
            file[bucket].append(channel_id)
        visibility = "private" if bucket != "channels" else "public"
        file["is_public"] = file["is_public"] or visibility == "public"
        share = {"ts": ts, "channel_name": channel.get("name", ""), "team_id": self.team_id}
        file["shares"].setdefault(visibility, {}).setdefault(channel_id, []).append(share)


# =========================================================================== #
# API handlers, grouped by Slack API family
# =========================================================================== #

# ---- auth / team / bots ---------------------------------------------------- #


@api("auth.test")
def _auth_test(fake: FakeSlack, args: dict) -> dict:
    return {
        "url": fake.url,
        "team": "Fake Dealership",
        "user": "bot",
        "team_id": fake.team_id,
        "user_id": fake.bot_user_id,
        "bot_id": fake.bot_id,
        "is_enterprise_install": False,
    }


@api("team.info")
def _team_info(fake: FakeSlack, args: dict) -> dict:
    return {
        "team": {
            "id": fake.team_id,
            "name": "Fake Dealership",
            "domain": "fake-dealership",
            "email_domain": "",
            "icon": {},
            "url": fake.url,
        }
    }


@api("bots.info")
def _bots_info(fake: FakeSlack, args: dict) -> dict:
    if args.get("bot", fake.bot_id) != fake.bot_id:
        raise SlackError("bot_not_found")
    return {
        "bot": {
            "id": fake.bot_id,
            "deleted": False,
            "name": "bot",
            "updated": int(time.time()),
            "app_id": fake.app_id,
            "user_id": fake.bot_user_id,
            "icons": {},
        }
    }


# ---- users / usergroups ---------------------------------------------------- #


@api("users.info")
def _users_info(fake: FakeSlack, args: dict) -> dict:
    return {"user": fake._render_user(fake._user(args.get("user")), _flag(args.get("include_locale")))}


@api("users.lookupByEmail")
def _users_lookup_by_email(fake: FakeSlack, args: dict) -> dict:
    email = str(args.get("email") or "").strip().lower()
    if not email:
        raise _invalid_arguments("[ERROR] missing required field: email")
    for user in fake.users.values():
        # Deactivated users are reported as not found, as Slack documents.
        if not user["deleted"] and (user["profile"].get("email") or "").lower() == email:
            return {"user": fake._render_user(user, False)}
    raise SlackError("users_not_found")


@api("users.list")
def _users_list(fake: FakeSlack, args: dict) -> dict:
    include_locale = _flag(args.get("include_locale"))
    page, meta = _paginate(list(fake.users.values()), args, default_limit=1000)
    return {
        "members": [fake._render_user(u, include_locale) for u in page],
        "cache_ts": int(time.time()),
        "response_metadata": meta,
    }


@api("usergroups.list")
def _usergroups_list(fake: FakeSlack, args: dict) -> dict:
    include_users = _flag(args.get("include_users"))
    groups = [dict(g) if include_users else {k: v for k, v in g.items() if k != "users"} for g in fake.usergroups.values()]
    return {"usergroups": groups}


@api("usergroups.users.list")
def _usergroups_users_list(fake: FakeSlack, args: dict) -> dict:
    group = fake.usergroups.get(str(args.get("usergroup") or ""))
    if group is None:
        raise SlackError("no_such_subteam")
    return {"users": list(group["users"])}


# ---- conversations --------------------------------------------------------- #


def _check_channel_name(fake: FakeSlack, name: str) -> None:
    if not name:
        raise SlackError("invalid_name_required")
    if len(name) > 80:
        raise SlackError("invalid_name_maxlength")
    # Lowercase letters (Slack accepts non-Latin ones too), digits, - and _.
    if any(not (ch in "-_" or ("0" <= ch <= "9") or (ch.isalpha() and not ch.isupper())) for ch in name):
        raise SlackError("invalid_name_specials")
    if not name.strip("-_"):
        raise SlackError("invalid_name_punctuation")
    if any(c.get("name") == name for c in fake.channels.values()):
        raise SlackError("name_taken")


@api("conversations.create")
def _conversations_create(fake: FakeSlack, args: dict) -> dict:
    name = str(args.get("name") or "")
    _check_channel_name(fake, name)
    channel = fake._create_channel(name, _flag(args.get("is_private")), fake.bot_user_id, [fake.bot_user_id])
    fake._append_join(channel["id"], fake.bot_user_id)  # Slack writes the creator's join too
    return {"channel": fake._render_channel(channel)}


@api("conversations.info")
def _conversations_info(fake: FakeSlack, args: dict) -> dict:
    return {"channel": fake._render_channel(fake._channel(args.get("channel")))}


def _conversation_type(c: dict) -> str:
    if c.get("is_im"):
        return "im"
    if c.get("is_mpim"):
        return "mpim"
    return "private_channel" if c.get("is_private") else "public_channel"


def _listed(fake: FakeSlack, args: dict, member: str | None = None) -> list[dict]:
    """The conversations a listing shows: of the asked `types`, visible to the bot, without the
    archived ones when `exclude_archived`, and (users.conversations) with `member` in them."""
    types = set(_csv(args.get("types"))) or {"public_channel"}
    exclude_archived = _flag(args.get("exclude_archived"))
    return [
        fake._render_channel(c)
        for c in fake.channels.values()
        if _conversation_type(c) in types
        and (member is None or member in fake._members.get(c["id"], ()))
        and fake._visible(c)
        and not (exclude_archived and c.get("is_archived"))
    ]


@api("conversations.list")
def _conversations_list(fake: FakeSlack, args: dict) -> dict:
    page, meta = _paginate(_listed(fake, args), args, default_limit=100)
    return {"channels": page, "response_metadata": meta}


@api("users.conversations")
def _users_conversations(fake: FakeSlack, args: dict) -> dict:
    """The conversations a user (the bot by default) is a member of; limit under 1000, as Slack says."""
    user_id = str(args.get("user") or fake.bot_user_id)
    fake._user(user_id)
    if _int(args.get("limit"), 100) >= 1000:
        raise _invalid_arguments("limit must be under 1000")
    page, meta = _paginate(_listed(fake, args, member=user_id), args, default_limit=100, max_limit=999)
    return {"channels": page, "response_metadata": meta}


@api("conversations.rename")
def _conversations_rename(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if channel.get("is_im") or channel.get("is_mpim"):
        raise SlackError("method_not_supported_for_channel_type")
    fake._require_member(channel)
    fake._require_active(channel)
    name = str(args.get("name") or "")
    if name != channel["name"]:
        _check_channel_name(fake, name)
        channel["previous_names"] = [*channel.get("previous_names", []), channel["name"]]
        channel["name"] = channel["name_normalized"] = name
    return {"channel": fake._render_channel(channel)}


@api("conversations.members")
def _conversations_members(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    page, meta = _paginate(list(fake._members[channel["id"]]), args, default_limit=100)
    return {"members": page, "response_metadata": meta}


@api("conversations.invite")
def _conversations_invite(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if channel.get("is_im") or channel.get("is_mpim"):
        raise SlackError("method_not_supported_for_channel_type")
    fake._require_active(channel)
    fake._require_member(channel)
    user_ids = _csv(args.get("users"))
    if not user_ids:
        raise SlackError("no_user")
    if len(user_ids) > 1000:
        raise SlackError("too_many_users")

    members = fake._members[channel["id"]]
    errors, valid = [], []
    for user_id in dict.fromkeys(user_ids):
        user = fake.users.get(user_id)
        if user is None:
            error = "user_not_found"
        elif user_id == fake.bot_user_id:
            error = "cant_invite_self"
        elif user["deleted"]:
            error = "cant_invite"  # no deactivation-specific code is documented
        elif user_id in members:
            error = "already_in_channel"
        else:
            valid.append(user_id)
            continue
        errors.append({"user": user_id, "ok": False, "error": error})

    # Slack fails the whole call on any per-user problem unless force=true.
    if errors and (not _flag(args.get("force")) or not valid):
        raise SlackError(errors[0]["error"], errors=errors)
    members.extend(valid)
    for user_id in valid:
        fake._append_join(channel["id"], user_id, inviter=fake.bot_user_id)
    result: dict[str, Any] = {"channel": fake._render_channel(channel)}
    if errors:
        result["errors"] = errors
    return result


@api("conversations.kick")
def _conversations_kick(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if channel.get("is_im"):
        raise SlackError("method_not_supported_for_channel_type")
    if not args.get("user"):
        raise SlackError("no_user")
    user = fake._user(args.get("user"))
    if user["id"] == fake.bot_user_id:
        raise SlackError("cant_kick_self")
    fake._require_member(channel)
    members = fake._members[channel["id"]]
    if user["id"] not in members:
        raise SlackError("not_in_channel")
    members.remove(user["id"])
    fake._append_leave(channel["id"], user["id"])
    return {"errors": {}}


@api("conversations.join")
def _conversations_join(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if channel.get("is_private") or channel.get("is_im"):
        raise SlackError("method_not_supported_for_channel_type")
    fake._require_active(channel)
    members = fake._members[channel["id"]]
    result: dict[str, Any] = {}
    if fake.bot_user_id in members:
        result = {"warning": "already_in_channel", "response_metadata": {"warnings": ["already_in_channel"]}}
    else:
        members.append(fake.bot_user_id)
        fake._append_join(channel["id"], fake.bot_user_id)
    return {"channel": fake._render_channel(channel), **result}


@api("conversations.leave")
def _conversations_leave(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if channel.get("is_im"):
        raise SlackError("method_not_supported_for_channel_type")
    fake._require_active(channel)
    members = fake._members[channel["id"]]
    if fake.bot_user_id not in members:
        return {"not_in_channel": True}  # not an error, as Slack documents
    members.remove(fake.bot_user_id)
    fake._append_leave(channel["id"], fake.bot_user_id)
    return {}


def _set_channel_text(fake: FakeSlack, args: dict, field_name: str) -> dict:
    channel = fake._channel(args.get("channel"))
    fake._require_active(channel)
    fake._require_member(channel)
    value = str(args.get(field_name) or "")
    if len(value) > 250:
        raise SlackError("too_long")
    channel[field_name] = {"value": value, "creator": fake.bot_user_id, "last_set": int(time.time())}
    fake._append_system(
        channel["id"], f"channel_{field_name}", fake.bot_user_id, f"set the channel {field_name}: {value}", **{field_name: value}
    )
    return {"channel": fake._render_channel(channel)}


@api("conversations.setTopic")
def _conversations_set_topic(fake: FakeSlack, args: dict) -> dict:
    return _set_channel_text(fake, args, "topic")


@api("conversations.setPurpose")
def _conversations_set_purpose(fake: FakeSlack, args: dict) -> dict:
    return _set_channel_text(fake, args, "purpose")


@api("conversations.archive")
def _conversations_archive(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if channel.get("is_im"):
        raise SlackError("method_not_supported_for_channel_type")
    if channel["is_archived"]:
        raise SlackError("already_archived")
    fake._require_member(channel)
    channel["is_archived"] = True
    # Archiving takes the app out of the channel (people stay members, to read it).
    fake._members[channel["id"]] = [m for m in fake._members.get(channel["id"], []) if m != fake.bot_user_id]
    return {}


@api("conversations.unarchive")
def _conversations_unarchive(fake: FakeSlack, args: dict) -> dict:
    # As Slack answers a bot token: a private channel the bot left is invisible (channel_not_found);
    # a public one it is no longer in is not_in_channel (Slack: bot tokens cannot unarchive).
    channel = fake._channel(args.get("channel"))
    if not channel["is_archived"]:
        raise SlackError("not_archived")
    if fake.bot_user_id not in fake._members.get(channel["id"], ()):
        raise SlackError("not_in_channel")
    channel["is_archived"] = False
    return {}


@api("conversations.open")
def _conversations_open(fake: FakeSlack, args: dict) -> dict:
    if args.get("channel"):
        channel, already = fake._channel(args["channel"]), True
    else:
        user_ids = _csv(args.get("users"))
        if not user_ids:
            raise SlackError("users_list_not_supplied")
        if len(user_ids) == 1:
            channel, already = fake._open_im(user_ids[0])
        else:
            channel, already = _open_mpim(fake, user_ids)
    if _flag(args.get("return_im")):
        body: dict[str, Any] = {"channel": fake._render_channel(channel)}
    else:
        body = {"channel": {"id": channel["id"]}}
    if already:
        body.update(no_op=True, already_open=True)
    return body


def _open_mpim(fake: FakeSlack, user_ids: list[str]) -> tuple[dict, bool]:
    for user_id in user_ids:
        fake._user(user_id)
    wanted = set(user_ids) | {fake.bot_user_id}
    for channel in fake.channels.values():
        if channel.get("is_mpim") and set(fake._members[channel["id"]]) == wanted:
            return channel, True
    name = "mpdm-" + "--".join(sorted(wanted)) + "-1"
    channel = fake._create_channel(name, True, fake.bot_user_id, sorted(wanted), prefix="G")
    channel.update(is_mpim=True, is_group=False)
    return channel, False


@api("conversations.history")
def _conversations_history(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    fake._require_member(channel)
    oldest = float(args.get("oldest") or 0)
    latest = float(args.get("latest") or "inf")
    inclusive = _flag(args.get("inclusive"))

    def in_range(ts: float) -> bool:
        return (oldest <= ts <= latest) if inclusive else (oldest < ts < latest)

    # Thread replies live only in conversations.replies, as on Slack.
    top_level = [
        dict(m)
        for m in reversed(fake.messages.get(channel["id"], []))
        if m.get("thread_ts", m["ts"]) == m["ts"] and in_range(float(m["ts"]))
    ]
    page, meta = _paginate(top_level, args, default_limit=100, max_limit=999)
    return {
        "messages": page,
        "has_more": bool(meta["next_cursor"]),
        "pin_count": len(fake.pins[channel["id"]]),
        "response_metadata": meta,
    }


@api("conversations.replies")
def _conversations_replies(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    fake._require_member(channel)
    ts = str(args.get("ts") or "")
    thread = [dict(m) for m in fake.messages.get(channel["id"], []) if m["ts"] == ts or m.get("thread_ts") == ts]
    if not thread:
        raise SlackError("thread_not_found")
    page, meta = _paginate(thread, args, default_limit=1000)
    return {"messages": page, "has_more": bool(meta["next_cursor"]), "response_metadata": meta}


# ---- chat ------------------------------------------------------------------ #


@api("chat.postMessage")
def _chat_post_message(fake: FakeSlack, args: dict) -> dict:
    channel = fake._postable_channel(args.get("channel"))
    message = fake._append_message(channel["id"], fake._message_content(args), args.get("thread_ts"))
    return {"channel": channel["id"], "ts": message["ts"], "message": dict(message)}


@api("chat.update")
def _chat_update(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    message = fake._find_message(channel["id"], args.get("ts"))
    if message.get("user") != fake.bot_user_id or message.get("subtype") in SYSTEM_SUBTYPES:
        raise SlackError("cant_update_message")
    if channel.get("is_archived"):
        # Slack's code for an edit in an archived channel (not is_archived, unlike chat.postMessage).
        raise SlackError("is_inactive")
    content = fake._message_content(args)
    message.update(content)
    message["edited"] = {"user": fake.bot_user_id, "ts": fake._next_ts()}
    return {"channel": channel["id"], "ts": message["ts"], "text": message["text"], "message": dict(message)}


@api("chat.delete")
def _chat_delete(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    message = fake._find_message(channel["id"], args.get("ts"))
    if message.get("user") != fake.bot_user_id or message.get("subtype") in SYSTEM_SUBTYPES:
        raise SlackError("cant_delete_message")
    fake.messages[channel["id"]].remove(message)
    return {"channel": channel["id"], "ts": message["ts"]}


@api("chat.postEphemeral")
def _chat_post_ephemeral(fake: FakeSlack, args: dict) -> dict:
    channel = fake._postable_channel(args.get("channel"))
    user = fake._user(args.get("user"))
    if user["id"] not in fake._members[channel["id"]]:
        raise SlackError("user_not_in_channel")
    content = fake._message_content(args)
    ts = fake._next_ts()
    fake.ephemerals.append(
        {"channel": channel["id"], "user": user["id"], "ts": ts, "thread_ts": args.get("thread_ts"), **content}
    )
    return {"message_ts": ts}


@api("chat.getPermalink")
def _chat_get_permalink(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    message = fake._find_message(channel["id"], args.get("message_ts"))
    permalink = f"{fake.url}archives/{channel['id']}/p{message['ts'].replace('.', '')}"
    return {"channel": channel["id"], "permalink": permalink}


# ---- pins ------------------------------------------------------------------ #


@api("pins.add")
def _pins_add(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if not args.get("timestamp"):
        raise SlackError("no_item_specified")
    fake._require_member(channel)
    fake._require_active(channel)  # undocumented for pins.add; the code Slack uses for posts
    message = fake._find_message(channel["id"], args["timestamp"])
    if message.get("subtype") in SYSTEM_SUBTYPES:
        raise SlackError("not_pinnable")  # "channel join messages" cannot be pinned, says Slack
    pinned = fake.pins[channel["id"]]
    if message["ts"] in pinned:
        raise SlackError("already_pinned")
    if len(pinned) >= 100:
        raise SlackError("too_many_pins")
    pinned.append(message["ts"])
    message["pinned_to"] = [channel["id"]]
    fake._append_system(
        channel["id"],
        "pinned_item",
        fake.bot_user_id,
        f"<@{fake.bot_user_id}> pinned a message to this channel.",
        item_type="G" if channel.get("is_private") else "C",
    )
    return {}


@api("pins.remove")
def _pins_remove(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    if not args.get("timestamp"):
        raise SlackError("no_item_specified")
    pinned = fake.pins[channel["id"]]
    if str(args["timestamp"]) not in pinned:
        raise SlackError("no_pin")
    pinned.remove(str(args["timestamp"]))
    return {}


@api("pins.list")
def _pins_list(fake: FakeSlack, args: dict) -> dict:
    channel = fake._channel(args.get("channel"))
    items = []
    for ts in fake.pins[channel["id"]]:
        message = fake._find_message(channel["id"], ts)
        items.append(
            {
                "type": "message",
                "channel": channel["id"],
                "created": int(float(ts)),
                "created_by": fake.bot_user_id,
                "message": dict(message),
            }
        )
    return {"items": items}


# ---- views ----------------------------------------------------------------- #


def _check_trigger(fake: FakeSlack, args: dict) -> str:
    """Refuse a trigger id Slack would refuse; return it, to be spent once the view opens."""
    trigger_id = str(args.get("trigger_id") or "")
    if not trigger_id:
        raise _invalid_arguments("[ERROR] missing required field: trigger_id")
    if trigger_id == "expired":
        raise SlackError("expired_trigger_id")
    if trigger_id in fake._used_triggers and (fake.strict_triggers or fake.single_use_triggers):
        raise SlackError("exchanged_trigger_id")
    if fake.strict_triggers:
        issued = fake._triggers.get(trigger_id)
        if issued is None:
            raise SlackError("invalid_trigger_id")
        if time.monotonic() - issued > fake.trigger_ttl_seconds:
            raise SlackError("expired_trigger_id")
    return trigger_id


def _spend_trigger(fake: FakeSlack, trigger_id: str) -> None:
    fake._used_triggers.add(trigger_id)


def _store_view(fake: FakeSlack, view: dict, view_id: str | None = None, previous: dict | None = None) -> dict:
    external_id = view.get("external_id") or ""
    if external_id and any(v.get("external_id") == external_id and v["id"] != view_id for v in fake.views.values()):
        raise SlackError("duplicate_external_id")
    view_id = view_id or fake._next_id("V")
    stored = {
        **json.loads(json.dumps(view)),
        "id": view_id,
        "team_id": fake.team_id,
        "app_id": fake.app_id,
        "bot_id": fake.bot_id,
        "external_id": external_id,
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": f"{time.time():.6f}.{next(fake._ids['hash'])}",
        "root_view_id": (previous or {}).get("root_view_id", view_id),
        "previous_view_id": (previous or {}).get("previous_view_id"),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
    }
    fake.views[view_id] = stored
    return stored


@api("views.open")
def _views_open(fake: FakeSlack, args: dict) -> dict:
    trigger_id = _check_trigger(fake, args)
    stored = _store_view(fake, _validate_view(args.get("view"), ("modal",)))
    _spend_trigger(fake, trigger_id)  # a refused view leaves the trigger unused
    return {"view": dict(stored)}


@api("views.push")
def _views_push(fake: FakeSlack, args: dict) -> dict:
    trigger_id = _check_trigger(fake, args)
    stored = _store_view(fake, _validate_view(args.get("view"), ("modal",)))
    _spend_trigger(fake, trigger_id)
    return {"view": dict(stored)}


@api("views.update")
def _views_update(fake: FakeSlack, args: dict) -> dict:
    view_id, external_id = args.get("view_id"), args.get("external_id")
    if not view_id and not external_id:
        raise _invalid_arguments("[ERROR] either view_id or external_id is required")
    current = (
        fake.views.get(str(view_id))
        if view_id
        else next((v for v in fake.views.values() if v.get("external_id") == external_id), None)
    )
    if current is None:
        raise SlackError("not_found")
    if args.get("hash") and args["hash"] != current["hash"]:
        raise SlackError("hash_conflict")
    view = dict(_validate_view(args.get("view"), ("modal", "home")))
    view.setdefault("external_id", current.get("external_id", ""))
    return {"view": dict(_store_view(fake, view, current["id"], current))}


@api("views.publish")
def _views_publish(fake: FakeSlack, args: dict) -> dict:
    user = fake._user(args.get("user_id"))
    current = fake.home_views.get(user["id"])
    if current and args.get("hash") and args["hash"] != current["hash"]:
        raise SlackError("hash_conflict")
    view = _validate_view(args.get("view"), ("home",))
    stored = _store_view(fake, view, current["id"] if current else None)
    fake.home_views[user["id"]] = stored
    return {"view": dict(stored)}


# ---- files ----------------------------------------------------------------- #


@api("files.info")
def _files_info(fake: FakeSlack, args: dict) -> dict:
    file_id = str(args.get("file") or "")
    if file_id not in fake.files:
        raise SlackError("file_not_found")
    return {"file": fake._file_object(file_id), "comments": [], "response_metadata": {"next_cursor": ""}}


@api("files.list")
def _files_list(fake: FakeSlack, args: dict) -> dict:
    channel, user = args.get("channel"), args.get("user")
    matching = [
        fake._file_object(f["id"])
        for f in fake.files.values()
        if (not user or f["user"] == user) and (not channel or channel in f["channels"] + f["groups"] + f["ims"])
    ]
    matching.sort(key=lambda f: f["created"], reverse=True)
    count, page = max(1, _int(args.get("count"), 100)), max(1, _int(args.get("page"), 1))
    chunk = matching[(page - 1) * count : page * count]
    pages = max(1, math.ceil(len(matching) / count))
    return {"files": chunk, "paging": {"count": count, "total": len(matching), "page": page, "pages": pages}}


@api("files.getUploadURLExternal")
def _files_get_upload_url_external(fake: FakeSlack, args: dict) -> dict:
    filename = str(args.get("filename") or "")
    if not filename:
        raise _invalid_arguments("[ERROR] missing required field: filename")
    length = _int(args.get("length"), 0)
    if length <= 0:
        raise SlackError("missing_argument")  # what Slack answers for length=0
    file_id = fake._next_id("F")
    fake._pending_uploads[file_id] = {
        "filename": filename,
        "length": length,
        "alt_txt": args.get("alt_txt"),
        "snippet_type": args.get("snippet_type"),
        "content": None,
    }
    return {"upload_url": f"{fake.url}upload/v1/{file_id}", "file_id": file_id}


@api("files.completeUploadExternal")
def _files_complete_upload_external(fake: FakeSlack, args: dict) -> dict:
    entries = args.get("files")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and e.get("id") for e in entries):
        raise _invalid_arguments("[ERROR] files must be a non-empty JSON array of {id, title} [json-pointer:/files]")
    channel_ids = _csv(args.get("channels")) or _csv(args.get("channel_id"))
    channels = []
    for channel_id in channel_ids:
        if not _CONVERSATION_ID.match(channel_id):
            raise _invalid_arguments("input must match regex pattern: ^[CGDZ][A-Z0-9]{8,}$ [json-pointer:/channel_id]")
        channel = fake.channels.get(channel_id)
        if channel is None or not fake._visible(channel):
            raise SlackError("invalid_channel")
        fake._require_active(channel)
        fake._require_member(channel)
        channels.append(channel)
    for entry in entries:
        pending = fake._pending_uploads.get(entry["id"])
        if pending is None or pending["content"] is None:
            raise SlackError("file_not_found")

    files = []
    for entry in entries:
        pending = fake._pending_uploads.pop(entry["id"])
        filename = pending["filename"]
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        filetype = pending["snippet_type"] or _filetype_for(filename)
        files.append(
            fake._store_file(
                entry["id"],
                filename,
                entry.get("title") or filename,
                pending["content"],
                mimetype,
                filetype,
                fake.bot_user_id,
                [],
                None,
            )
        )
        fake.uploads.append(
            {
                "id": entry["id"],
                "filename": filename,
                "title": entry.get("title") or filename,
                "content": pending["content"],
                "length": pending["length"],
                "channels": [c["id"] for c in channels],
                "initial_comment": args.get("initial_comment"),
                "thread_ts": args.get("thread_ts"),
                "alt_txt": pending["alt_txt"],
                "snippet_type": pending["snippet_type"],
            }
        )
    for channel in channels:
        # One message per channel carries all the files, like the Slack client.
        message = fake._append_message(
            channel["id"], {"text": str(args.get("initial_comment") or ""), "upload": True, "files": []}, args.get("thread_ts")
        )
        for file in files:
            fake._share_file(file, channel["id"], message["ts"])
        message["files"] = [fake._file_object(f["id"]) for f in files]
    return {"files": [fake._file_object(f["id"]) for f in files]}
