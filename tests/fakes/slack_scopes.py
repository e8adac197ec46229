"""Which OAuth scopes each Slack Web API method needs, and which ones the app's manifest asks for.

Used by tests/fake_slack.py to answer ``missing_scope`` the way Slack does when a bot token lacks a
method's scope. The table follows the "Required scopes" of each method in Slack's reference
(docs.slack.dev/reference/methods, mirrored in github.com/slack-ruby/slack-api-ref,
``docs.slack.dev/methods/<method>.json``), bot tokens only.

A method's entry is either a tuple of scopes, any one of which allows the call, or, for methods that
act on one conversation, a mapping from the conversation's kind ("public", "private", "im",
"mpim") to such a tuple. The first scope of a tuple is the one reported as ``needed``.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["KINDS", "MANIFEST", "METHOD_SCOPES", "manifest_bot_scopes", "parse_bot_scopes", "scopes_for"]

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
KINDS = ("public", "private", "im", "mpim")

Scopes = tuple[str, ...]
Rule = Scopes | dict[str, Scopes]


def _per_kind(public: Scopes, private: Scopes, im: Scopes = (), mpim: Scopes = ()) -> dict[str, Scopes]:
    return {"public": public, "private": private, "im": im, "mpim": mpim}


_READ = _per_kind(("channels:read",), ("groups:read",), ("im:read",), ("mpim:read",))
_HISTORY = _per_kind(("channels:history",), ("groups:history",), ("im:history",), ("mpim:history",))
# Archive, unarchive, leave, kick: channels:manage for public channels (channels:write is user-token only).
_MANAGE = _per_kind(("channels:manage",), ("groups:write",), ("im:write",), ("mpim:write",))
_TOPIC = _per_kind(
    ("channels:manage", "channels:write.topic"),
    ("groups:write", "groups:write.topic"),
    ("im:write", "im:write.topic"),
    ("mpim:write", "mpim:write.topic"),
)

METHOD_SCOPES: dict[str, Rule] = {
    "auth.test": (),
    "bots.info": ("users:read",),
    "team.info": ("team:read",),
    "users.info": ("users:read",),
    "users.list": ("users:read",),
    "users.lookupByEmail": ("users:read.email",),
    "usergroups.list": ("usergroups:read",),
    "usergroups.users.list": ("usergroups:read",),
    "conversations.create": _per_kind(("channels:manage",), ("groups:write",)),
    "conversations.info": _READ,
    "conversations.list": _READ,  # every kind named in `types` is checked
    "conversations.members": _READ,
    "users.conversations": _READ,  # the bot's own conversations (public ones: channels:read)
    "conversations.rename": _MANAGE,
    "conversations.invite": _per_kind(
        ("channels:manage", "channels:write.invites"), ("groups:write", "groups:write.invites"), ("im:write",), ("mpim:write",)
    ),
    "conversations.kick": _per_kind(("channels:manage",), ("groups:write",)),
    "conversations.join": _per_kind(("channels:join",), ()),
    "conversations.leave": _MANAGE,
    "conversations.setTopic": _TOPIC,
    "conversations.setPurpose": _TOPIC,
    "conversations.archive": _MANAGE,
    "conversations.unarchive": _MANAGE,
    # Opening a DM needs im:write (mpim:write for a group DM); posting in it needs only chat:write.
    "conversations.open": _per_kind(("channels:manage",), ("groups:write",), ("im:write",), ("mpim:write",)),
    "conversations.history": _HISTORY,
    "conversations.replies": _HISTORY,
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.getPermalink": (),
    "pins.add": ("pins:write",),
    "pins.remove": ("pins:write",),
    "pins.list": ("pins:read",),
    "views.open": (),
    "views.push": (),
    "views.update": (),
    "views.publish": (),
    "files.info": ("files:read",),
    "files.list": ("files:read",),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}


def scopes_for(method: str, kind: str = "public") -> Scopes:
    """Scopes any one of which allows `method` on a conversation of `kind`; () = none needed.

    A method missing from the table needs no scope (the fake answers unknown_method for it anyway).
    A kind the method does not support at all (a bot joining a private channel) needs nothing here:
    the method itself answers with its own error.
    """
    rule = METHOD_SCOPES.get(method, ())
    if isinstance(rule, dict):
        return rule.get(kind, ())
    return rule


# --------------------------------------------------------------------------- #
# Manifest
# --------------------------------------------------------------------------- #


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _tiny_yaml_list(text: str, path: tuple[str, ...]) -> list[str]:
    """The list of strings at `path` in a YAML document: block sequences (indented or not under
    their key) and one-line flow sequences ``[a, b]``, which is all a Slack manifest's scope lists
    use. Not a YAML parser: anchors, multi-line strings and the like are not understood."""
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings we are inside
    found: list[str] = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if body == "-" or body.startswith("- "):
            while stack and stack[-1][0] > indent:
                stack.pop()
            if tuple(k for _, k in stack) == path:
                found.append(_unquote(body[1:]))
            continue
        key, sep, value = body.partition(":")
        if not sep:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key, value = _unquote(key), value.strip()
        if not value:
            stack.append((indent, key))
        elif tuple(k for _, k in stack) + (key,) == path and value.startswith("[") and value.endswith("]"):
            found.extend(_unquote(v) for v in value[1:-1].split(",") if v.strip())
    return found


def parse_bot_scopes(text: str) -> tuple[str, ...]:
    """``oauth_config.scopes.bot`` of a manifest's text, in its order (PyYAML when installed)."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return tuple(_tiny_yaml_list(text, ("oauth_config", "scopes", "bot")))
    data = yaml.safe_load(text) or {}
    bot = ((data.get("oauth_config") or {}).get("scopes") or {}).get("bot") or []
    return tuple(str(s) for s in bot)


def manifest_bot_scopes(path: Path = MANIFEST) -> tuple[str, ...]:
    """The bot scopes the app's manifest.yml requests."""
    return parse_bot_scopes(path.read_text(encoding="utf-8"))
