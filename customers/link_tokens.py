"""Customer links: opaque, signed tokens that carry a send's token_id.

A token is base64url(token_id ‖ HMAC-SHA256(key, token_id)[:16]): 43 characters that reveal
nothing and cannot be forged or altered without the signing key (SECRET_KEY). Only the canonical
encoding is accepted: each token has exactly one spelling, so no changed character is accepted. Expiry and revocation live
in the database (CustomerSend), so a link can be revoked after it was sent.

Files on the page are named by a reference derived the same way from (token_id, item id):
our own opaque id, checked against the send's own items, never a path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_ID_BYTES = 16
_MAC_BYTES = 16
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_REF = re.compile(r"^[A-Za-z0-9_-]{16}$")


def new_token_id() -> str:
    return secrets.token_hex(_ID_BYTES)


def _mac(key: bytes, purpose: bytes, data: bytes, size: int) -> bytes:
    return hmac.new(key, purpose + b":" + data, hashlib.sha256).digest()[:size]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(key: bytes, token_id: str) -> str:
    raw = bytes.fromhex(token_id)
    return _b64(raw + _mac(key, b"customer-page", raw, _MAC_BYTES))


def read_token(key: bytes, token: str) -> str | None:
    """The token_id of a genuine token, else None (malformed, altered or signed with another key)."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    data = base64.urlsafe_b64decode(token + "=")
    if _b64(data) != token:
        return None  # the last character's unused bits were changed: not the token we issued
    raw, mac = data[:_ID_BYTES], data[_ID_BYTES:]
    if not hmac.compare_digest(mac, _mac(key, b"customer-page", raw, _MAC_BYTES)):
        return None
    return raw.hex()


def file_ref(key: bytes, token_id: str, item_id: int) -> str:
    return _b64(_mac(key, b"customer-file", f"{token_id}:{item_id}".encode(), 12))


def is_file_ref(value: str) -> bool:
    return isinstance(value, str) and bool(_REF.match(value))
