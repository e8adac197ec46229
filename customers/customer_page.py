"""The customer page: `GET /c/<token>` and its files at `GET /c/<token>/<file>`.

Mobile-first, in the customer's language: the shop, the RO and vehicle, the photos (tap to
enlarge), the videos (play and seek: files answer Range requests) and a download link for each.

Safety rules:
- the token is checked (signature, then expiry and revocation in the database) on every request;
  an expired, revoked or unknown link, or a file that is not there, gets a polite page in the
  customer's language with the shop's phone number, never the files;
- `<file>` is our own opaque reference, compared with the send's own items; the path on disk
  comes from the stored sha256 only, never from the URL;
- the content type comes from our own list (media.file_kinds), with `nosniff`; the page itself is not
  cached (revocation works at once), files are cached privately for an hour;
- no scripts at all (Content-Security-Policy), no referrer (the token is in the URL), no indexing.
"""

from __future__ import annotations

import hmac
import io
import logging
import re
from dataclasses import dataclass

from flask import Blueprint, Response, render_template, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from core.config import Settings
from core.formats import long_date
from core.i18n import LANGUAGES, language_of, t
from customers import link_tokens as tokens
from customers import send_rules as sends
from customers.customer_texts import vehicle_phrase, what_phrase
from media.blob_store import open_store
from media.file_kinds import extension_for, served_type
from storage import metric_events
from storage.models import CustomerSend, CustomerSendFile, RepairOrder, RoFile, utcnow
from storage.values import DOCUMENT, PICTURE, VIDEO

log = logging.getLogger(__name__)

FILE_MAX_AGE_SECONDS = 3600
_CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_UNSAFE_NAME = re.compile(r"[^\w\- ]+", re.UNICODE)
# Who fetches a link before (or instead of) the customer: SMS apps, iMessage and chat apps draw a
# preview, crawlers index. iMessage's fetcher says "facebookexternalhit … Twitterbot".
_PREVIEW_NAMES = (
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "whatsapp",
    "slackbot",
    "slack-imgproxy",
    "telegrambot",
    "skypeuripreview",
    "discordbot",
    "googlebot",
    "google-pagerenderer",
    "bingbot",
    "linkedinbot",
    "embedly",
    "preview",
    "crawler",
    "spider",
)
# "bot" as a word or a product name ("Applebot/0.1", "SomeBot (…)"), not inside one: a Cubot phone is a phone.
_BOT_WORD = re.compile(r"(?:^|[^a-z0-9])bot(?:[^a-z]|$)|[a-z]bot(?:/|\s*\(|$)")


@dataclass
class Entry:
    ref: str
    kind: str
    number: int
    url: str
    download_url: str
    download_name: str
    inline: bool


def create_blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("customer_page", __name__, template_folder="templates")
    store = open_store(settings)
    key = settings.signing_key()

    def resolve(token: str) -> tuple[str, CustomerSend | None]:
        """("ok" | "invalid" | "expired" | "revoked", the send)."""
        token_id = tokens.read_token(key, token)
        send = CustomerSend.get_or_none(CustomerSend.token_id == token_id) if token_id else None
        if send is None:
            return "invalid", None
        if send.revoked_at is not None:
            return "revoked", send
        if utcnow() >= send.expires_at:
            return "expired", send
        return "ok", send

    def gone(state: str, send: CustomerSend | None) -> Response:
        """The polite page: "invalid" | "missing" (404), "expired" | "revoked" (410)."""
        lang = RepairOrder.get_by_id(send.ro_id).language if send else _accepted_language()
        lang = language_of(lang)
        body = render_template(
            "customer_gone.html",
            lang=lang,
            state=state,
            shop=settings.shop_name,
            phone=settings.shop_phone,
            tel=re.sub(r"[^\d+]", "", settings.shop_phone or ""),
            t=lambda k, **v: t(k, lang, **v),
        )
        return Response(body, status=404 if state in ("invalid", "missing") else 410, mimetype="text/html")

    @bp.get("/c/<token>")
    def page(token: str) -> Response:
        state, send = resolve(token)
        if state != "ok" or send is None:
            return gone(state, send)
        if request.method == "GET" and not is_link_preview(request.headers.get("User-Agent")):
            # The customer opened it (once per send counts): a HEAD or a preview is no one reading.
            metric_events.record(metric_events.VIEW, str(send.id), user_id=send.sent_by, ro_id=send.ro_id)
        ro = RepairOrder.get_by_id(send.ro_id)
        lang = language_of(ro.language)
        entries = _entries(send, settings, ro)
        counts = sends.counts_of(send)
        body = render_template(
            "customer_page.html",
            lang=lang,
            shop=settings.shop_name,
            phone=settings.shop_phone,
            ro=ro,
            vehicle=vehicle_phrase(ro, lang),
            what=what_phrase(counts, lang),
            photos=[e for e in entries if e.kind == PICTURE and e.inline],
            videos=[e for e in entries if e.kind == VIDEO and e.inline],
            documents=[e for e in entries if not e.inline or e.kind == DOCUMENT],
            expires=long_date(send.expires_at, settings.shop_timezone, lang),
            t=lambda k, **v: t(k, lang, **v),
        )
        response = Response(body, mimetype="text/html")
        response.headers["Cache-Control"] = "private, no-store"
        return response

    @bp.get("/c/<token>/<ref>")
    def file(token: str, ref: str) -> Response:
        state, send = resolve(token)
        if state != "ok" or send is None:
            return gone(state, send)
        found = _find_item(send, ref, key) if tokens.is_file_ref(ref) else None
        if found is None:
            return gone("missing", send)
        item, rofile, number = found
        asset = sends.stored_asset(rofile)
        try:  # the name comes from our own record, never from the URL
            blob = store.open_blob(asset.sha256)
            size = blob.seek(0, io.SEEK_END)  # its length, known without reading (one lookup a request)
            blob.seek(0)
        except FileNotFoundError:
            return gone("missing", send)
        except OSError as exc:  # the object store is down: say so, do not pretend the file is gone
            log.warning("customer file %s not served: %s", asset.sha256[:12], exc)
            return Response("temporarily unavailable", status=503, mimetype="text/plain", headers={"Retry-After": "30"})
        content_type, inline = served_type(asset.mimetype)
        ro = RepairOrder.get_by_id(send.ro_id)
        response = send_file(
            blob,
            mimetype=content_type,
            as_attachment=request.args.get("download") == "1" or not inline,
            download_name=_download_name(ro, rofile, number, content_type),
            conditional=False,
            etag=asset.sha256,
            last_modified=None,
            max_age=None,
        )
        # Ranges (a phone seeking in a video) on a seekable blob, from a folder or a bucket alike.
        response.content_length = size
        try:
            response = response.make_conditional(request, accept_ranges=True, complete_length=size)
        except RequestedRangeNotSatisfiable:
            blob.close()
            raise
        response.headers["Cache-Control"] = f"private, max-age={FILE_MAX_AGE_SECONDS}"
        return response

    @bp.after_request
    def safety_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
        response.headers["Content-Security-Policy"] = _CSP
        response.headers.setdefault("Cache-Control", "private, no-store")
        response.vary.add("Accept-Language")
        return response

    return bp


def is_link_preview(user_agent: str | None) -> bool:
    """Is this request a link-preview fetcher or a robot rather than a person's browser? No
    User-Agent at all is not a browser either."""
    agent = (user_agent or "").strip().lower()
    if not agent:
        return True
    return any(name in agent for name in _PREVIEW_NAMES) or bool(_BOT_WORD.search(agent))


def _entries(send: CustomerSend, settings: Settings, ro: RepairOrder) -> list[Entry]:
    entries, numbers = [], {}
    for item, f in sends.items_of(send):
        numbers[f.kind] = numbers.get(f.kind, 0) + 1
        asset = sends.stored_asset(f)
        content_type, inline = served_type(asset.mimetype)
        url = f"/c/{sends.token_for(send, settings)}/{sends.file_ref(send, item, settings)}"
        entries.append(
            Entry(
                sends.file_ref(send, item, settings),
                f.kind,
                numbers[f.kind],
                url,
                url + "?download=1",
                _download_name(ro, f, numbers[f.kind], content_type),
                inline and f.kind in (PICTURE, VIDEO),
            )
        )
    return entries


def _find_item(send: CustomerSend, ref: str, key: bytes) -> tuple[CustomerSendFile, RoFile, int] | None:
    numbers: dict[str, int] = {}
    for item, f in sends.items_of(send):
        numbers[f.kind] = numbers.get(f.kind, 0) + 1
        if hmac.compare_digest(tokens.file_ref(key, send.token_id, item.id), ref):
            return item, f, numbers[f.kind]
    return None


def _download_name(ro: RepairOrder, f: RoFile, number: int, content_type: str) -> str:
    """ "IMG_0042.jpg" for a HEIC sent as JPEG; names that are not plain fall back to "RO-123-photo-2.jpg"."""
    stem = f.name.rsplit(".", 1)[0] if "." in f.name else f.name
    stem = _UNSAFE_NAME.sub("", stem).strip()[:60]
    if not stem:
        stem = f"RO-{ro.ro_number}-{f.kind}-{number}"
    extension = extension_for(content_type)
    if extension == "bin" and "." in f.name:
        extension = _UNSAFE_NAME.sub("", f.name.rsplit(".", 1)[1])[:8] or "bin"
    return f"{stem}.{extension}"


def _accepted_language() -> str:
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"
