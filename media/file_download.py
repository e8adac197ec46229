"""Downloading a Slack file with the bot token, safely.

The bot token is a key to the whole workspace's files:
- it goes only to Slack's file host (https://files.slack.com) or to the exact origin of
  SLACK_API_URL (a test or proxy set-up); a redirect elsewhere is followed without it;
- Slack answers a wrong or missing token with its HTML sign-in page and status 200: an HTML
  answer for a file that is not HTML, or a body whose size is not the file's, is a failed
  download, never stored.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import requests

from media.blob_store import BlobStore, TooLarge

SLACK_FILE_HOST = "files.slack.com"
MAX_REDIRECTS = 5
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<!--")


class CopyFailed(Exception):
    """A download that must not be stored; the message is for logs and the Files view."""


def token_allowed(url: str, slack_api_url: str) -> bool:
    """May the bot token be sent to `url`? Only Slack's file host over https (port 443), or the
    exact origin (scheme, host and port) of SLACK_API_URL."""
    try:
        target, api = _origin(url), _origin(slack_api_url)
    except ValueError:  # a port that is not a number
        return False
    if target == ("https", SLACK_FILE_HOST, 443):
        return True
    return bool(target[1]) and target == api


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"https": 443, "http": 80}.get(scheme)


def download(
    url: str, token: str, slack_api_url: str, store: BlobStore, *, max_bytes: int, expected_size: int = 0, expected_type: str = ""
) -> tuple[str, int]:
    """Fetch a Slack file into the store; (sha256, size). Raises CopyFailed or TooLarge."""
    expects_html = expected_type in ("text/html", "application/xhtml+xml")
    for _ in range(MAX_REDIRECTS + 1):
        if urlsplit(url).scheme not in ("http", "https"):
            raise CopyFailed("download URL is not http(s)")
        headers = {"Authorization": f"Bearer {token}"} if token and token_allowed(url, slack_api_url) else {}
        response = requests.get(url, headers=headers, stream=True, allow_redirects=False, timeout=(10, 120))
        if response.is_redirect and response.headers.get("Location"):
            url = urljoin(url, response.headers["Location"])
            response.close()
            continue
        break
    else:
        raise CopyFailed("too many redirects")
    with response:
        if response.status_code != 200:
            raise CopyFailed(f"Slack answered HTTP {response.status_code}")
        content_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type == "text/html" and not expects_html:
            raise CopyFailed("Slack answered an HTML page instead of the file (bot token wrong or missing files:read)")
        if expected_size > max_bytes:
            raise TooLarge(f"{expected_size} bytes")
        with store.writer(max_bytes) as out:
            first = True
            for chunk in response.iter_content(chunk_size=256 * 1024):
                if first and not expects_html and chunk.lstrip()[:16].lower().startswith(_HTML_STARTS):
                    raise CopyFailed("Slack answered an HTML page instead of the file (bot token wrong or missing files:read)")
                first = False
                out.write(chunk)
            if expected_size and out.size != expected_size:
                raise CopyFailed(f"incomplete download: {out.size} of {expected_size} bytes")
            return out.commit()
