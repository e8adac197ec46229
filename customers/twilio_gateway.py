"""Twilio's REST API over `requests` (TWILIO_API_URL), and its webhook signature check.

`send_message` posts to `/2010-04-01/Accounts/{sid}/Messages.json` with HTTP Basic sid:token.
Every failure comes out as SmsError with a code the product branches on:
- `opted_out`: Twilio error 21610, the number replied STOP — never text it again;
- `unreachable`: network error, timeout or 5xx — worth retrying;
- `auth`: 401/403, our credentials are wrong;
- `rejected`: any other 4xx (invalid number, not a mobile…), with Twilio's numeric code.

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

from core.config import Settings

log = logging.getLogger(__name__)
OPTED_OUT_CODE = 21610
TIMEOUT = (5, 20)
CLOCK_SKEW = timedelta(minutes=2)  # between our clock and Twilio's, when telling one attempt's text from another's


class SmsError(Exception):
    def __init__(self, code: str, provider_code: int | None = None):
        self.code = code
        self.provider_code = provider_code
        super().__init__(f"SMS {code}" + (f" (Twilio {provider_code})" if provider_code else ""))

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
        response = requests.post(url, data=form, auth=(sid, settings.twilio_auth_token or ""), timeout=TIMEOUT)
    except requests.RequestException as exc:
        log.warning("SMS gateway unreachable: %s", type(exc).__name__)
        raise SmsError("unreachable") from None
    if response.status_code >= 500:
        raise SmsError("unreachable")
    payload = _json(response)
    if response.status_code in (401, 403):
        raise SmsError("auth", payload.get("code"))
    if response.status_code >= 400:
        code = payload.get("code")
        if code == OPTED_OUT_CODE:
            raise SmsError("opted_out", code)
        raise SmsError("rejected", code if isinstance(code, int) else None)
    if not payload.get("sid"):
        raise SmsError("unreachable")  # a 2xx that is not Twilio's answer: treat as not sent
    return SmsReceipt(str(payload["sid"]), str(payload.get("status") or "queued"))


def find_sent(settings: Settings, to: str, marker: str, since: datetime, known: Collection[str] = frozenset()) -> str | None:
    """The sid of a message we sent to `to`, created at `since` or after (give or take the clocks'
    skew), whose body contains `marker` and whose sid is not in `known`, else None.

    A send interrupted after Twilio took it (the worker killed while waiting for the answer) must
    not text the customer twice: before sending again, the resumed attempt asks Twilio. Raises
    SmsError("unreachable") when Twilio cannot say, so the caller retries instead of guessing."""
    sid = settings.twilio_account_sid or ""
    url: str | None = f"{settings.twilio_api_url}/2010-04-01/Accounts/{sid}/Messages.json"
    params: dict | None = {"To": to, "DateSent>": (since - timedelta(days=1)).strftime("%Y-%m-%d"), "PageSize": 100}
    for _ in range(10):  # ten pages of 100 to one number in two days is more than any shop sends
        try:
            response = requests.get(url, params=params, auth=(sid, settings.twilio_auth_token or ""), timeout=TIMEOUT)
        except requests.RequestException:
            raise SmsError("unreachable") from None
        if response.status_code != 200:
            raise SmsError(
                "unreachable" if response.status_code >= 500 else "auth" if response.status_code in (401, 403) else "rejected"
            )
        page = _json(response)
        for message in page.get("messages") or []:
            if not isinstance(message, dict) or marker not in str(message.get("body") or ""):
                continue
            if str(message.get("sid")) in known or not _created_since(message, since):
                continue  # an earlier attempt's text (its history has it), not this one's
            return str(message.get("sid"))
        next_uri = page.get("next_page_uri")
        if not next_uri:
            return None
        url, params = f"{settings.twilio_api_url}{next_uri}", None
    return None


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
