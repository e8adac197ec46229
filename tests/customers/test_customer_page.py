"""The customer page `GET /c/<token>` and its files: content, languages, headers, Range, and bad links."""

from __future__ import annotations

import html
import http.client
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests

from customers import send_rules as sends
from media.blob_store import BlobStore
from storage.models import CustomerSend, utcnow
from tests.support.factories import make_ro
from tests.support.files import SHOP_PHONE, delivered_send, heic_bytes, jpeg_bytes, page_path, stored_file, video_bytes

IMG = re.compile(r'<img src="(/c/[^"]+)"')
VIDEO = re.compile(r'<video [^>]*src="(/c/[^"]+)"')


def _get(app, path: str, **headers) -> requests.Response:
    return requests.get(app.url + path, headers=headers, timeout=10)


def _text(response: requests.Response) -> str:
    return html.unescape(response.text)


def _raw_get(app, path: str) -> int:
    """GET `path` exactly as written (no client-side normalisation of dots or escapes)."""
    parts = urlsplit(app.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


@pytest.fixture
def gallery(app, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UADVISOR",), language="fr", vehicle_year=2019, vehicle_make="Toyota", vehicle_model="RAV4")
    photo = stored_file(app, ro, jpeg_bytes(120, 90), "IMG_0001.jpg", "image/jpeg", minutes_ago=3)
    iphone = stored_file(app, ro, heic_bytes(100, 75), "IMG_0002.HEIC", "image/heic", minutes_ago=2)
    clip = stored_file(app, ro, video_bytes(tmp_path, seconds=2), "walkaround.mp4", "video/mp4", minutes_ago=1)
    send = delivered_send(app, ro, [photo, iphone, clip])
    assert send.status == "sent"
    return ro, send


def test_the_page_shows_shop_ro_vehicle_photos_and_videos_in_french(app, gallery):
    ro, send = gallery
    page = _get(app, page_path(app, send))
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = _text(page)
    assert '<html lang="fr">' in html and 'name="viewport"' in html
    assert "Garage Tremblay" in html and f"Bon de travail {ro.ro_number}" in html and "2019 Toyota RAV4" in html
    assert "Touchez une photo pour l'agrandir." in html and "Télécharger" in html and SHOP_PHONE in html
    assert len(IMG.findall(html)) == 4  # two thumbnails, two enlarged views
    assert len(set(IMG.findall(html))) == 2 and len(VIDEO.findall(html)) == 1
    assert 'href="#photo-1"' in html and 'id="photo-1"' in html, "tap to enlarge"
    assert html.count("?download=1") >= 3


def test_the_page_is_in_english_for_an_english_customer(app, fake_slack):
    ro = make_ro(fake_slack, language="en")
    send = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    html = _text(_get(app, page_path(app, send)))
    assert '<html lang="en">' in html and f"Repair order {ro.ro_number}" in html and "Tap a photo to enlarge it." in html
    assert "Download" in html and "This page is available until" in html


def test_heic_is_shown_as_jpeg_and_files_carry_safe_headers(app, gallery):
    _, send = gallery
    html = _get(app, page_path(app, send)).text
    photo_urls = list(dict.fromkeys(IMG.findall(html)))
    types = [_get(app, url).headers["Content-Type"] for url in photo_urls]
    assert types == ["image/jpeg", "image/jpeg"]
    served = _get(app, photo_urls[1])
    assert served.content[:3] == b"\xff\xd8\xff"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Cache-Control"] == "private, max-age=3600" and served.headers.get("ETag")
    assert served.headers["Referrer-Policy"] == "no-referrer"
    page = _get(app, page_path(app, send))
    assert page.headers["Cache-Control"] == "private, no-store" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        "script-src" not in page.headers["Content-Security-Policy"]
        and "default-src 'none'" in page.headers["Content-Security-Policy"]
    )


def test_videos_answer_range_requests(app, gallery):
    _, send = gallery
    video = VIDEO.search(_get(app, page_path(app, send)).text).group(1)
    whole = _get(app, video)
    assert whole.headers["Content-Type"] == "video/mp4" and whole.headers["Accept-Ranges"] == "bytes"
    part = _get(app, video, Range="bytes=100-199")
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole.content)}"
    assert _get(app, video, Range=f"bytes={len(whole.content) + 10}-").status_code == 416
    assert requests.head(app.url + video, timeout=10).status_code == 200


def test_downloads_are_attachments_with_a_name(app, gallery):
    _, send = gallery
    html = _get(app, page_path(app, send)).text
    url = list(dict.fromkeys(IMG.findall(html)))[1] + "?download=1"
    response = _get(app, url)
    assert (
        response.headers["Content-Disposition"].startswith("attachment;")
        and "IMG_0002.jpg" in response.headers["Content-Disposition"]
    )


@pytest.mark.parametrize(
    "name,mimetype", [("evil.html", "text/html"), ("vector.svg", "image/svg+xml"), ("x.js", "application/javascript")]
)
def test_content_types_come_from_our_list_not_the_upload(app, fake_slack, name, mimetype):
    ro = make_ro(fake_slack)
    upload = stored_file(app, ro, b"<script>alert(1)</script>", name, mimetype)
    send = delivered_send(app, ro, [upload])
    html = _get(app, page_path(app, send)).text
    url = re.search(r'href="(/c/[^"?]+)\?download=1"', html).group(1)
    response = _get(app, url)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _last_char_variants(token: str) -> tuple[str, str]:
    """Two changes of the last character: one in the bits that carry the signature, and one in
    the two bits base64 leaves unused (the same bytes once decoded: a non-canonical spelling)."""
    index = _B64.index(token[-1])
    return token[:-1] + _B64[index ^ 0b000100], token[:-1] + _B64[index ^ 0b000001]


def test_a_tampered_token_gets_a_polite_page_and_no_files(app, gallery):
    _, send = gallery
    path = page_path(app, send)
    token = path.rsplit("/", 1)[1]
    tampered, respelled = _last_char_variants(token)
    for bad in (tampered, respelled, token[:-2], token + "x", "x" * 43, "../../etc/passwd"):
        response = _get(app, f"/c/{bad}", **{"Accept-Language": "fr-CA,fr;q=0.9"})
        assert response.status_code == 404
        if "/" not in bad:
            assert "Ce lien n'est pas valide" in _text(response) and SHOP_PHONE in response.text
    file_ref = IMG.search(_get(app, path).text).group(1).rsplit("/", 1)[1]
    for bad in (tampered, respelled):
        assert _get(app, f"/c/{bad}/{file_ref}").status_code == 404
    assert "Ce lien" not in _get(app, f"/c/{tampered}", **{"Accept-Language": "en-US"}).text


@pytest.mark.parametrize(
    "language,expired,revoked,missing,other",
    [
        ("fr", "Ce lien a expiré", "Ce lien n'est plus accessible", "Ce fichier n'est pas disponible", "This link"),
        ("en", "This link has expired", "This link is no longer available", "This file is not available", "Ce lien"),
    ],
)
def test_file_links_that_do_not_work_answer_in_the_customers_language_with_the_shops_phone(
    app, fake_slack, language, expired, revoked, missing, other
):
    ro = make_ro(fake_slack, language=language)
    send = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    file_url = IMG.search(_get(app, page_path(app, send)).text).group(1)
    browser = {"Accept-Language": "fr-CA" if language == "en" else "en-US"}  # the customer's language wins

    def polite(response: requests.Response, status: int, words: str) -> None:
        assert (response.status_code, response.headers["Content-Type"].split(";")[0]) == (status, "text/html")
        assert words in _text(response) and SHOP_PHONE in response.text and 'href="tel:5145550100"' in response.text
        assert other not in _text(response) and response.content[:3] != b"\xff\xd8\xff"

    polite(_get(app, f"{page_path(app, send)}/AAAAAAAAAAAAAAAA", **browser), 404, missing)  # no such file in this send

    [(_, rofile)] = sends.items_of(send)
    copy = BlobStore(app.settings.media_dir).path_for(sends.stored_asset(rofile).sha256)
    kept = copy.read_bytes()
    copy.unlink()  # our copy is gone from the disk
    polite(_get(app, file_url, **browser), 404, missing)
    copy.write_bytes(kept)
    assert _get(app, file_url).status_code == 200

    CustomerSend.update(expires_at=utcnow() - timedelta(minutes=1)).where(CustomerSend.id == send.id).execute()
    polite(_get(app, file_url, **browser), 410, expired)

    CustomerSend.update(expires_at=utcnow() + timedelta(days=1)).where(CustomerSend.id == send.id).execute()
    sends.revoke(send.id, "UADVISOR", app.settings)
    polite(_get(app, file_url, **browser), 410, revoked)


def test_a_token_signed_with_another_key_is_refused(app, gallery):
    from customers.link_tokens import make_token

    _, send = gallery
    forged = make_token(b"another key", send.token_id)
    assert _get(app, f"/c/{forged}").status_code == 404


def test_an_expired_link_says_so_with_the_shops_phone(app, gallery):
    _, send = gallery
    CustomerSend.update(expires_at=utcnow() - timedelta(minutes=1)).where(CustomerSend.id == send.id).execute()
    response = _get(app, page_path(app, send))
    assert response.status_code == 410 and "Ce lien a expiré" in _text(response) and SHOP_PHONE in response.text
    assert 'href="tel:5145550100"' in response.text
    assert "<img" not in response.text


def test_a_revoked_link_says_so(app, gallery):
    _, send = gallery
    html = _get(app, page_path(app, send)).text
    file_url = IMG.search(html).group(1)
    sends.revoke(send.id, "UADVISOR", app.settings)
    response = _get(app, page_path(app, send))
    assert response.status_code == 410 and "Ce lien n'est plus accessible" in _text(response)
    assert _get(app, file_url).status_code == 410


@pytest.mark.parametrize(
    "suffix",
    [
        "..",
        "%2e%2e",
        "..%2f..%2fetc%2fpasswd",
        "../../../etc/passwd",
        "%2e%2e%2f%2e%2e%2fmedia",
        "..%5c..%5cwin.ini",
        "1",
        "AAAAAAAAAAAAAAAA",
        "%00",
    ],
)
def test_dots_and_encoded_paths_never_reach_the_disk(app, gallery, suffix):
    _, send = gallery
    status = _raw_get(app, f"{page_path(app, send)}/{suffix}")
    assert status == 404


def test_a_file_of_another_send_is_not_served_under_this_token(app, gallery, fake_slack):
    ro, send = gallery
    other = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(color=(0, 0, 0)), "other.jpg", "image/jpeg")])
    other_ref = IMG.search(_get(app, page_path(app, other)).text).group(1).rsplit("/", 1)[1]
    assert _get(app, f"{page_path(app, send)}/{other_ref}").status_code == 404
    assert _get(app, f"{page_path(app, other)}/{other_ref}").status_code == 200


def test_a_file_deleted_from_slack_is_still_served_from_our_copy(app, client, fake_slack):
    from tests.support.files import share

    ro = make_ro(fake_slack, members=("UTECH",))
    content = jpeg_bytes(color=(9, 99, 199))
    row = share(client, fake_slack, ro, "IMG_0042.jpg", content, "image/jpeg")
    del fake_slack.files[row.slack_file_id]  # deleted in Slack (and from the phone)
    send = delivered_send(app, ro, [row])
    url = IMG.search(_get(app, page_path(app, send)).text).group(1)
    assert _get(app, url).content == content


def test_a_quicktime_video_is_served_as_an_mp4_copy(app, fake_slack, tmp_path):
    from tests.support.files import has_encoder, video_codec

    codec = "libx265" if has_encoder("libx265") else "libx264"
    ro = make_ro(fake_slack)
    clip = stored_file(app, ro, video_bytes(tmp_path, codec=codec, container="mov"), "IMG_0100.MOV", "video/quicktime")
    send = delivered_send(app, ro, [clip])
    html = _text(_get(app, page_path(app, send)))
    served = _get(app, VIDEO.search(html).group(1))
    assert served.headers["Content-Type"] == "video/mp4" and video_codec(served.content, tmp_path) == "h264"
    assert "IMG_0100.mp4" in _get(app, VIDEO.search(html).group(1) + "?download=1").headers["Content-Disposition"]
