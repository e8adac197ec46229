"""Fetching a customer's MMS media from Twilio, safely.

Twilio serves media at `{TWILIO_API_URL}/2010-04-01/Accounts/{sid}/Messages/{MM…}/Media/{ME…}`
behind HTTP Basic auth (the account sid and auth token), and answers with a redirect to a
short-lived CDN address. The credentials go only to our own account's media paths on Twilio's
API host: never to the CDN, never to a URL the webhook names elsewhere (a forged or mistaken
MediaUrl must not get the auth token). A media larger than the limit is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from core.config import Settings
from media.blob_store import BlobStore, TooLarge

TIMEOUT = (5, 30)
MAX_REDIRECTS = 3


class MediaFailed(Exception):
    """The media could not be kept; the message says why (shown in the Files view and the thread)."""


@dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int
    content_type: str


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"https": 443, "http": 80}.get(scheme)


def is_our_media_url(url: str, settings: Settings) -> bool:
    """Is `url` a media of our own Twilio account, on Twilio's API host?"""
    try:
        same_host = _origin(url) == _origin(settings.twilio_api_url)
    except ValueError:
        return False
    path = urlsplit(url).path
    prefix = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages/"
    return same_host and path.startswith(prefix) and "/Media/" in path[len(prefix) :]


def fetch(url: str, settings: Settings, store: BlobStore, max_bytes: int) -> Fetched:
    """Download one media into the store. Raises MediaFailed."""
    if not is_our_media_url(url, settings):
        raise MediaFailed("not a media of this Twilio account")
    auth = (settings.twilio_account_sid or "", settings.twilio_auth_token or "")
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        with_auth = is_our_media_url(current, settings)
        try:
            response = requests.get(
                current, auth=auth if with_auth else None, stream=True, allow_redirects=False, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise MediaFailed(f"Twilio did not answer ({type(exc).__name__})") from None
        if response.is_redirect and response.headers.get("Location"):
            current = urljoin(current, response.headers["Location"])
            response.close()
            if urlsplit(current).scheme not in ("http", "https"):
                raise MediaFailed("Twilio redirected to an address that is not http(s)")
            continue
        break
    else:
        raise MediaFailed("too many redirects")
    with response:
        if response.status_code != 200:
            raise MediaFailed(f"Twilio answered HTTP {response.status_code}")
        declared = int(response.headers.get("Content-Length") or 0)
        if declared > max_bytes:
            raise MediaFailed(f"too large ({declared} bytes; the limit is {max_bytes})")
        content_type = (response.headers.get("Content-Type") or "application/octet-stream").split(";", 1)[0].strip().lower()
        try:
            with store.writer(max_bytes) as out:
                for chunk in response.iter_content(chunk_size=256 * 1024):
                    out.write(chunk)
                sha, size = out.commit()
        except TooLarge:
            raise MediaFailed(f"too large (over {max_bytes} bytes)") from None
        except requests.RequestException as exc:
            raise MediaFailed(f"the download broke off ({type(exc).__name__})") from None
        except OSError as exc:  # the media disk is full or unwritable
            raise MediaFailed(f"storage error ({exc.strerror or type(exc).__name__})") from None
    return Fetched(sha, size, content_type)
