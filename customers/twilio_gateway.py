"""Twilio's REST API over `requests` (TWILIO_API_URL), and its webhook signature check.

`send_message` posts to `/2010-04-01/Accounts/{sid}/Messages.json` with HTTP Basic sid:token.
Every failure comes out as SmsError with a code the product branches on:
- `opted_out`: Twilio error 21610, the number replied STOP — never text it again;
- `unreachable`: network error, timeout or 5xx — worth retrying;
- `auth`: 401/403, our credentials are wrong;
- `rejected`: any other 4xx (invalid number, not a mobile…), with Twilio's numeric code.
A failure is sure (nothing was texted) when Twilio answered it, or when the request never left:
a refused connection, a connect time-out. Any other network failure (a read time-out, a dropped
connection, an answer that is not Twilio's) is `unsure`: Twilio may have taken the text. Before
any new attempt, automatic or pressed, the caller then asks Twilio (`find_sent`) and never texts
twice; Files sends and staff replies follow these same rules.

`signature_valid` is the one check for every webhook Twilio calls (`/sms/status`, `/sms/inbound`),
done by Twilio's own library (twilio.request_validator).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import requests
from twilio.request_validator import RequestValidator
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from core.config import Settings

log = logging.getLogger(__name__)
OPTED_OUT_CODE = 21610
CONNECT_TIMEOUT = 5.0
CLOCK_SKEW = timedelta(minutes=2)  # between our clock and Twilio's, when telling one attempt's text from another's


class SmsError(Exception):
    def __init__(self, code: str, provider_code: int | None = None, *, unsure: bool = False):
        self.code = code
        self.provider_code = provider_code
        self.unsure = unsure  # Twilio may have taken the text: look it up before texting again
        super().__init__(
            f"SMS {code}" + (f" (Twilio {provider_code})" if provider_code else "") + (" (unsure)" if unsure else "")
        )

    @property
    def opted_out(self) -> bool:
        return self.code == "opted_out"


@dataclass(frozen=True)
class SmsReceipt:
    sid: str
    status: str


def send_message(
    settings: Settings, to: str, body: str, media_urls: Iterable[str] = (), status_callback: str | None = None
) -> SmsReceipt:
    sid = settings.twilio_account_sid or ""
    url = f"{settings.twilio_api_url}/2010-04-01/Accounts/{sid}/Messages.json"
    sender = settings.twilio_from or ""
    form: list[tuple[str, str]] = [("To", to), ("Body", body)]
    # A Messaging Service SID (MG…) picks the sending number itself.
    form.append(("MessagingServiceSid", sender) if sender.startswith("MG") else ("From", sender))
    form += [("MediaUrl", media) for media in media_urls]
    if status_callback:
        form.append(("StatusCallback", status_callback))
    try:
        response = requests.post(url, data=form, auth=(sid, settings.twilio_auth_token or ""), timeout=_timeout(settings))
    except requests.RequestException as exc:
        unsure = not _never_sent(exc)
        log.warning("SMS gateway unreachable: %s%s", type(exc).__name__, " (the text may have gone)" if unsure else "")
        raise SmsError("unreachable", unsure=unsure) from None
    payload = _json(response)
    if response.status_code >= 500:
        # Twilio's own error answer says it did not take the text; a proxy's (no Twilio code) does not.
        raise SmsError("unreachable", unsure=not isinstance(payload.get("code"), int))
    if response.status_code in (401, 403):
        raise SmsError("auth", payload.get("code"))
    if response.status_code >= 400:
        code = payload.get("code")
        if code == OPTED_OUT_CODE:
            raise SmsError("opted_out", code)
        raise SmsError("rejected", code if isinstance(code, int) else None)
    if not payload.get("sid"):
        raise SmsError("unreachable", unsure=True)  # a 2xx that is not Twilio's answer: it may have gone
    return SmsReceipt(str(payload["sid"]), str(payload.get("status") or "queued"))


def _never_sent(exc: requests.RequestException) -> bool:
    """The request never reached Twilio: the connection was refused (or the name unknown), or not
    made in time. Anything else (read time-out, connection dropped mid-way) may have reached it."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError) or isinstance(exc, requests.exceptions.SSLError):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def find_sent(
    settings: Settings,
    to: str,
    marker: str | None,
    since: datetime,
    known: Collection[str] = frozenset(),
    *,
    body: str | None = None,
) -> str | None:
    """The sid of a message we sent to `to`, created at `since` or after (give or take the clocks'
    skew), whose sid is not in `known` (every sid already recorded for another text or attempt)
    and whose body contains `marker` (a token only this text carries) and/or is exactly `body`,
    else None. Never a part of a body: an earlier "Ok" is not "Ok, see you at 3".

    A send interrupted after Twilio took it (a read time-out, the worker killed while waiting for
    the answer) must not text the customer twice: before sending again, the next attempt asks
    Twilio. Raises SmsError("unreachable") when Twilio cannot say, so the caller retries instead
    of guessing."""
    if marker is None and body is None:
        raise ValueError("find_sent needs a marker or a body to tell this text from others")
    sid = settings.twilio_account_sid or ""
    url: str | None = f"{settings.twilio_api_url}/2010-04-01/Accounts/{sid}/Messages.json"
    params: dict | None = {"To": to, "DateSent>": (since - timedelta(days=1)).strftime("%Y-%m-%d"), "PageSize": 100}
    for _ in range(10):  # ten pages of 100 to one number in two days is more than any shop sends
        try:
            response = requests.get(url, params=params, auth=(sid, settings.twilio_auth_token or ""), timeout=_timeout(settings))
        except requests.RequestException:
            raise SmsError("unreachable") from None
        if response.status_code != 200:
            raise SmsError(
                "unreachable" if response.status_code >= 500 else "auth" if response.status_code in (401, 403) else "rejected"
            )
        page = _json(response)
        for message in page.get("messages") or []:
            if not isinstance(message, dict) or not _same_text(str(message.get("body") or ""), marker, body):
                continue
            if str(message.get("sid")) in known or not _created_since(message, since):
                continue  # an earlier attempt's text (its history has it), not this one's
            return str(message.get("sid"))
        next_uri = page.get("next_page_uri")
        if not next_uri:
            return None
        url, params = f"{settings.twilio_api_url}{next_uri}", None
    return None


def _same_text(listed: str, marker: str | None, body: str | None) -> bool:
    if marker is not None and marker not in listed:
        return False
    return body is None or listed.strip() == body.strip()  # Twilio may trim the ends; nothing else


def _timeout(settings: Settings) -> tuple[float, float]:
    """(connect, read): TWILIO_TIMEOUT_MS bounds both."""
    return min(CONNECT_TIMEOUT, settings.twilio_timeout_seconds), settings.twilio_timeout_seconds


def _created_since(message: dict, since: datetime) -> bool:
    """Twilio's date_created (RFC 2822) is at `since` or after; our clock may run ahead of Twilio's."""
    try:
        created = parsedate_to_datetime(str(message.get("date_created") or ""))
    except (TypeError, ValueError):
        return True  # no date to go by: the marker alone decides (texting twice is the worse mistake)
    moment = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    return created >= moment - CLOCK_SKEW


def _json(response: requests.Response) -> dict:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def signature_valid(auth_token: str | None, url: str, params: Mapping[str, str], given: str | None) -> bool:
    """Is `given` (the X-Twilio-Signature header) Twilio's signature of this request? Twilio's own
    RequestValidator: HMAC-SHA1 of the URL and the sorted parameters, with and without the port.
    `params` holds one value a field: the caller refuses repeated fields before asking."""
    if not auth_token or not given:
        return False
    return RequestValidator(auth_token).validate(url, dict(params), given.strip())
