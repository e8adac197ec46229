"""HTTP transport for Tekmetric's public REST API: token, retries, error mapping, pages.

Knows nothing about repair orders; ``dms.tekmetric`` builds on it. Every failure leaves
as a ``DmsError`` subclass; neither the client secret nor the access token ever appears
in a message or a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from .errors import DmsAuthError, DmsBadData, DmsUnavailable

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/v1/oauth/token"
PAGE_SIZE = 100  # Tekmetric's maximum; larger values are silently capped
MAX_PAGES = 2000  # a server that never says `last` must not keep us paging forever
CREDENTIALS_HINT = "check TEKMETRIC_CLIENT_ID / TEKMETRIC_CLIENT_SECRET"


class DmsForbidden(DmsAuthError):
    """HTTP 403 on one path: this app may not read that object (an employee, a customer...)."""


@dataclass(frozen=True)
class Page:
    content: list[dict]
    last: bool  # no page after this one


class TekmetricClient:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 15.0,
        session: requests.Session | None = None,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.timeout = timeout
        self.session = session or requests.Session()
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._token: str | None = None
        self.scope: list[str] | None = None  # shop ids the token may read, per Tekmetric
        self.first_server_time: datetime | None = None

    def __repr__(self) -> str:
        return f"TekmetricClient({self.base_url!r}, client_id={self._client_id!r})"

    # --- public -------------------------------------------------------------

    def start_clock(self) -> None:
        """Forget the server time seen so far; the next response's ``Date`` becomes ``first_server_time``."""
        self.first_server_time = None

    def get_json(self, path: str, params: Mapping[str, object] | None = None, *, missing_ok: bool = False) -> Any:
        """Decoded JSON of a GET; None for a 404 when ``missing_ok``.

        A 401 means the token was revoked or expired: get a new one once, then give up.
        """
        for attempt in (1, 2):
            response = self._send("GET", path, params=params, headers={"Authorization": f"Bearer {self.token()}"})
            if response.status_code != 401:
                break
            self._token = None
            if attempt == 2:
                raise DmsAuthError(f"Tekmetric refused a fresh access token for {path} (HTTP 401); {CREDENTIALS_HINT}")
            log.info("Tekmetric access token refused; fetching a new one")
        if response.status_code == 404 and missing_ok:
            return None
        self._raise_for_status(response, path)
        return _decode_json(response, path)

    def get_page(self, path: str, params: Mapping[str, object], page: int = 0) -> Page:
        """One page (``PAGE_SIZE`` items) of a Spring-style paged list."""
        data = self.get_json(path, {**params, "page": page, "size": PAGE_SIZE})
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise DmsBadData(f"Tekmetric answered {path} without a `content` list; is TEKMETRIC_URL right?")
        content = data["content"]
        if not all(isinstance(item, dict) for item in content):
            raise DmsBadData(f"Tekmetric answered {path} with a non-object item in `content`")
        total_pages = data.get("totalPages")
        last = data.get("last") is True or not content or (isinstance(total_pages, int) and page + 1 >= total_pages)
        return Page(content, last)

    def iter_pages(self, path: str, params: Mapping[str, object]) -> Iterator[dict]:
        """Every item of a small Spring-style paged list, page 0 onwards (a vehicle's appointments).

        Page numbers shift when the list changes between two reads; long lists that must not
        lose an item are read by ``dms.tekmetric`` with a moving date filter instead.
        """
        for page in range(MAX_PAGES):
            found = self.get_page(path, params, page)
            yield from found.content
            if found.last:
                return
        raise DmsBadData(f"Tekmetric kept paging {path} past {MAX_PAGES} pages")

    def token(self) -> str:
        """The cached access token, fetched on first use (Tekmetric tokens live until revoked)."""
        if self._token is None:
            self._token = self._fetch_token()
        return self._token

    # --- internals ----------------------------------------------------------

    def _fetch_token(self) -> str:
        response = self._send(
            "POST", TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=(self._client_id, self._client_secret)
        )
        if response.status_code in (400, 401, 403):
            raise DmsAuthError(
                f"Tekmetric refused the client credentials (HTTP {response.status_code}"
                f"{_oauth_error(response)}); {CREDENTIALS_HINT}"
            )
        self._raise_for_status(response, TOKEN_PATH)
        body = _decode_json(response, TOKEN_PATH)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise DmsBadData("Tekmetric's token answer has no access_token; is TEKMETRIC_URL right?")
        scope = body.get("scope")
        self.scope = scope.split() if isinstance(scope, str) else None
        return token

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request, repeated after 429s within the retry budget; network faults become DmsUnavailable."""
        waited = 0.0
        for retry in range(self.max_retries + 1):
            try:
                response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
            except requests.Timeout:
                raise DmsUnavailable(f"Tekmetric did not answer {path} within {self.timeout:g} s") from None
            except requests.RequestException as exc:
                raise DmsUnavailable(f"cannot reach Tekmetric at {self.base_url}: {type(exc).__name__}") from None
            self._note_server_time(response)
            if response.status_code != 429:
                return response
            wait = _retry_after(response, default=2.0 ** (retry + 1))
            if retry == self.max_retries or waited + wait > self.max_retry_wait:
                break
            log.info("Tekmetric rate limit on %s; retrying in %.1f s", path, wait)
            self._sleep(wait)
            waited += wait
        raise DmsUnavailable(
            f"Tekmetric kept answering 429 Too Many Requests for {path} "
            f"(waited {waited:.0f} s over {retry} retries); will retry at the next sync"
        )

    def _note_server_time(self, response: requests.Response) -> None:
        if self.first_server_time is not None:
            return
        try:
            self.first_server_time = parsedate_to_datetime(response.headers["Date"]).astimezone(UTC)
        except (KeyError, TypeError, ValueError, IndexError):
            pass

    def _raise_for_status(self, response: requests.Response, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status >= 500:
            raise DmsUnavailable(f"Tekmetric failed on {path} (HTTP {status})")
        if status == 403:
            raise DmsForbidden(
                f"Tekmetric denied access to {path} (HTTP 403): this app is not authorised for the shop; "
                "check TEKMETRIC_SHOP_ID and ask the shop to grant access"
            )
        if status == 404:
            raise DmsBadData(f"Tekmetric has no {path} (HTTP 404); check TEKMETRIC_URL and TEKMETRIC_SHOP_ID")
        raise DmsBadData(f"Tekmetric refused the request {path} (HTTP {status})")


def _decode_json(response: requests.Response, path: str) -> Any:
    # A proxy or login page answers 200 with HTML; that is not data.
    try:
        return response.json()
    except ValueError:
        kind = "HTML" if response.text.lstrip()[:1] == "<" else "something"
        raise DmsBadData(f"Tekmetric answered {kind} instead of JSON for {path}; is TEKMETRIC_URL the API host?") from None


def _retry_after(response: requests.Response, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return default


def _oauth_error(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f", {error}" if isinstance(error, str) and error.isidentifier() else ""
