"""Tests for tests/fake_twilio.py, driven over real HTTP with requests (no product code)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tests.fakes.fake_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    GSM7_BASIC,
    GSM7_EXTENSION,
    FakeTwilio,
    segments,
)

AUTH = (ACCOUNT_SID, AUTH_TOKEN)
CUSTOMER = "+15145550142"
OTHER = "+14165550199"
RFC2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} \+0000$"
)
PUBLIC_URL = "https://dealer.example"


@pytest.fixture
def fake():
    twilio = FakeTwilio().start()
    yield twilio
    twilio.stop()


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def messages_url(fake: FakeTwilio) -> str:
    return f"{fake.api_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def send(fake: FakeTwilio, body: str = "hello", to: str = CUSTOMER, timeout: float = 10, **fields) -> requests.Response:
    return requests.post(
        messages_url(fake), data={"To": to, "From": FROM_NUMBER, "Body": body, **fields}, auth=AUTH, timeout=timeout
    )


def listing(fake: FakeTwilio, **params) -> dict:
    answer = requests.get(messages_url(fake), params=params, auth=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


class App:
    """A stand-in for the product's webhook endpoint: records each POST and answers 200 with empty TwiML."""

    def __init__(self):
        self.posts: list[dict] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                app.posts.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "raw": raw,
                        "form": dict(parse_qsl(raw, keep_blank_values=True)),
                    }
                )
                data = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app():
    running = App()
    yield running
    running.stop()


def twilio_signature(url: str, form: dict[str, str]) -> str:
    """Twilio's webhook signature, written out here again to check the fake's."""
    payload = url + "".join(key + form[key] for key in sorted(form))
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()).decode()


# -- the existing surface still works ----------------------------------------------------------------


def test_a_send_is_recorded_with_its_creation_time_and_answered_like_twilio(fake):
    before = datetime.now(UTC)
    answer = send(fake, "Your car is ready", StatusCallback=f"{PUBLIC_URL}/sms/status")
    assert answer.status_code == 201
    [message] = fake.messages
    assert (message["To"], message["From"], message["Body"], message["MediaUrl"]) == (
        CUSTOMER,
        FROM_NUMBER,
        "Your car is ready",
        [],
    )
    assert message["StatusCallback"] == f"{PUBLIC_URL}/sms/status" and message["sid"] == answer.json()["sid"]
    assert before <= message["date_created"] <= datetime.now(UTC) and message["date_created"].tzinfo is not None
    resource = answer.json()
    assert resource["status"] == "queued" and resource["direction"] == "outbound-api" and resource["num_segments"] == "1"
    assert resource["date_sent"] is None and RFC2822.match(resource["date_created"]) and resource["price"] is None


def test_refusals_go_to_rejected_with_their_code(fake):
    fake.fail_with(21610, message="Attempt to send to unsubscribed recipient")
    answer = send(fake)
    assert answer.status_code == 400 and answer.json()["code"] == 21610
    assert send(fake, "").json()["code"] == 21604
    assert [r["error_code"] for r in fake.rejected] == [21610, 21604] and fake.messages == []


# -- listing and fetching messages ------------------------------------------------------------------


def test_listing_needs_the_account_basic_auth(fake):
    for auth in (None, (ACCOUNT_SID, "wrong")):
        answer = requests.get(messages_url(fake), auth=auth, timeout=10)
        assert answer.status_code == 401
        assert answer.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
        assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_listed_messages_are_shaped_like_twilio_newest_first(fake):
    clock = Clock(datetime(2026, 12, 3, 15, 46, 43, 250000, tzinfo=UTC))
    fake.clock = clock
    first = send(fake, "first").json()["sid"]
    clock.now += timedelta(seconds=5)
    second = send(fake, "second", to=OTHER, MessagingServiceSid="MG" + "1" * 32).json()["sid"]
    page = listing(fake)
    assert [m["sid"] for m in page["messages"]] == [second, first]
    newest, oldest = page["messages"]
    assert oldest == {
        "sid": first,
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "to": CUSTOMER,
        "from": FROM_NUMBER,
        "messaging_service_sid": None,
        "body": "first",
        "status": "queued",
        "num_media": "0",
        "num_segments": "1",
        "direction": "outbound-api",
        "date_created": "Thu, 03 Dec 2026 15:46:43 +0000",
        "date_sent": "Thu, 03 Dec 2026 15:46:43 +0000",
        "date_updated": "Thu, 03 Dec 2026 15:46:43 +0000",
        "error_code": None,
        "error_message": None,
        "price": None,
        "price_unit": "USD",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{first}.json",
        "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{first}/Media.json",
            "feedback": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{first}/Feedback.json",
        },
    }
    assert newest["messaging_service_sid"] == "MG" + "1" * 32 and newest["to"] == OTHER
    assert parsedate_to_datetime(newest["date_sent"]) == datetime(2026, 12, 3, 15, 46, 48, tzinfo=UTC)
    assert page["page"] == 0 and page["page_size"] == 50 and page["next_page_uri"] is None and page["previous_page_uri"] is None
    assert page["uri"] == page["first_page_uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=50&Page=0"


def test_listing_filters_by_to_and_from(fake):
    mine = send(fake, "to the customer").json()["sid"]
    send(fake, "to someone else", to=OTHER)
    send(fake, "from another number", From="+15145550111")
    assert [m["sid"] for m in listing(fake, To=CUSTOMER, From=FROM_NUMBER)["messages"]] == [mine]
    assert {m["body"] for m in listing(fake, From=FROM_NUMBER)["messages"]} == {"to the customer", "to someone else"}
    page = listing(fake, To=OTHER)
    assert [m["to"] for m in page["messages"]] == [OTHER] and "To=%2B14165550199" in page["uri"]
    assert listing(fake, To="+19995550000")["messages"] == []


def test_listing_filters_by_date_sent_like_twilio(fake):
    clock = Clock(datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC))
    fake.clock = clock
    sids = {}
    for day, moment in (
        ("dec1", datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)),
        ("dec2", datetime(2026, 12, 2, 0, 0, 0, tzinfo=UTC)),
        ("dec2b", datetime(2026, 12, 2, 18, 30, 0, tzinfo=UTC)),
        ("dec3", datetime(2026, 12, 3, 9, 0, 0, tzinfo=UTC)),
    ):
        clock.now = moment
        sids[send(fake, day).json()["sid"]] = day

    def days(**params):
        return [sids[m["sid"]] for m in listing(fake, **params)["messages"]]

    assert days(DateSent="2026-12-02") == ["dec2b", "dec2"]
    assert days(**{"DateSent<": "2026-12-02"}) == ["dec2b", "dec2", "dec1"]
    assert days(**{"DateSent>": "2026-12-02"}) == ["dec3", "dec2b", "dec2"]
    assert days(**{"DateSent>": "2026-12-02", "DateSent<": "2026-12-02"}) == ["dec2b", "dec2"]
    assert days(**{"DateSent>": "2026-12-02T12:00:00Z"}) == ["dec3", "dec2b"]
    assert days(DateSent="2026-11-30") == []
    bad = requests.get(messages_url(fake), params={"DateSent": "03/12/2026"}, auth=AUTH, timeout=10)
    assert bad.status_code == 400 and bad.json()["status"] == 400


def test_listing_pages_with_twilio_uris_until_next_page_uri_is_null(fake):
    sids = [send(fake, f"message {i}").json()["sid"] for i in range(5)]
    page = listing(fake, PageSize=2)
    seen, numbers = [], []
    while True:
        seen += [m["sid"] for m in page["messages"]]
        numbers.append((page["page"], page["page_size"], len(page["messages"])))
        assert page["first_page_uri"].endswith("PageSize=2&Page=0")
        if page["page"] > 0:
            assert page["previous_page_uri"] and f"Page={page['page'] - 1}" in page["previous_page_uri"]
        if page["next_page_uri"] is None:
            break
        page = requests.get(fake.api_url + page["next_page_uri"], auth=AUTH, timeout=10).json()
    assert seen == list(reversed(sids)) and numbers == [(0, 2, 2), (1, 2, 2), (2, 2, 1)]
    previous = requests.get(fake.api_url + page["previous_page_uri"], auth=AUTH, timeout=10).json()
    assert [m["sid"] for m in previous["messages"]] == [sids[2], sids[1]]


def test_paging_is_stable_while_new_messages_arrive(fake):
    sids = [send(fake, f"message {i}").json()["sid"] for i in range(4)]
    first = listing(fake, PageSize=2)
    send(fake, "newer than the listing")
    second = requests.get(fake.api_url + first["next_page_uri"], auth=AUTH, timeout=10).json()
    assert [m["sid"] for m in second["messages"]] == [sids[1], sids[0]]


def test_page_size_defaults_to_50_and_stops_at_1000(fake):
    for i in range(51):
        send(fake, f"m{i}")
    page = listing(fake)
    assert page["page_size"] == 50 and len(page["messages"]) == 50 and page["next_page_uri"] is not None
    assert listing(fake, PageSize=5000)["page_size"] == 1000
    assert requests.get(messages_url(fake), params={"PageSize": "0"}, auth=AUTH, timeout=10).status_code == 400


def test_one_message_by_sid_or_twilio_404(fake):
    sid = send(fake, "fetch me").json()["sid"]
    url = f"{fake.api_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"
    assert requests.get(url, timeout=10).status_code == 401
    one = requests.get(url, auth=AUTH, timeout=10)
    assert one.status_code == 200 and one.json()["body"] == "fetch me" and one.json()["sid"] == sid
    unknown = "SM" + "f" * 32
    missing = requests.get(f"{fake.api_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{unknown}.json", auth=AUTH, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["code"] == 20404 and missing.json()["status"] == 404
    assert missing.json()["more_info"] == "https://www.twilio.com/docs/errors/20404" and unknown in missing.json()["message"]


def test_delivery_reports_update_the_listed_status(fake, app):
    sid = send(fake).json()["sid"]
    fake.status_callback(app.url, PUBLIC_URL, sid, "undelivered", error_code="30005")
    [listed] = listing(fake)["messages"]
    assert (listed["status"], listed["error_code"]) == ("undelivered", 30005)
    assert app.posts[0]["form"]["MessageStatus"] == "undelivered"


# -- segments and the 1600 limit ---------------------------------------------------------------------


def test_the_gsm_tables_are_the_03_38_ones():
    assert len(GSM7_BASIC) == 127 and len(set(GSM7_BASIC)) == 127 and "\x1b" not in GSM7_BASIC
    assert set(GSM7_EXTENSION) == set("\x0c^{}\\[~]|\u20ac")
    assert all(segments(c)[0] == "GSM-7" for c in GSM7_BASIC + GSM7_EXTENSION)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", ("GSM-7", 1)),
        ("Votre véhicule est prêt", ("UCS-2", 1)),  # ê is not GSM-7: French often goes UCS-2
        ("Votre vehicule est pret a etre ramasse. Merci!", ("GSM-7", 1)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("\u20ac" * 80, ("GSM-7", 1)),  # the extension table costs 2 septets
        ("\u20ac" * 81, ("GSM-7", 2)),
        ("a" * 152 + "{" + "a" * 152, ("GSM-7", 3)),  # 306 septets, but { can't straddle two segments
        ("Ça coûte 10$", ("UCS-2", 1)),
        ("Ça marche", ("GSM-7", 1)),  # capital Ç is in the basic set; lower-case ç is not
        ("ça marche", ("UCS-2", 1)),
        ("It\u2019s ready", ("UCS-2", 1)),  # a curly apostrophe
        ("\u00ea" * 70, ("UCS-2", 1)),
        ("\u00ea" * 71, ("UCS-2", 2)),
        ("\u00ea" * 134, ("UCS-2", 2)),
        ("\u00ea" * 135, ("UCS-2", 3)),
        ("\U0001f697" * 35, ("UCS-2", 1)),  # an emoji is 2 UTF-16 code units
        ("\U0001f697" * 36, ("UCS-2", 2)),
        ("\u00ea" * 66 + "\U0001f697" + "\u00ea" * 66, ("UCS-2", 3)),  # 134 units; the pair can't be split
    ],
    ids=lambda v: f"{v[0]}x{v[1]}" if isinstance(v, tuple) else f"{len(v)}:{v[:6].encode('unicode_escape').decode()}",
)
def test_segments_count_like_carriers(body, expected):
    assert segments(body) == expected


def test_sent_messages_carry_their_segment_count(fake):
    long_gsm = send(fake, "a" * 161).json()["sid"]
    emoji = send(fake, "Prêt \U0001f697" * 12).json()["sid"]
    counts = {m["sid"]: m["num_segments"] for m in listing(fake)["messages"]}
    assert counts == {long_gsm: "2", emoji: "2"} and segments("Prêt \U0001f697" * 12) == ("UCS-2", 2)  # 84 code units
    service = requests.post(
        messages_url(fake), data={"To": CUSTOMER, "MessagingServiceSid": "MG" + "2" * 32, "Body": "hi"}, auth=AUTH, timeout=10
    )
    assert service.json()["num_segments"] == "0", "Twilio answers 0 until a sender of the service is picked"


def test_a_body_over_1600_characters_is_refused_with_21617(fake):
    assert send(fake, "a" * 1600).status_code == 201
    refused = send(fake, "a" * 1601)
    assert refused.status_code == 400
    assert refused.json() == {
        "code": 21617,
        "message": "The concatenated message body exceeds the 1600 character limit",
        "more_info": "https://www.twilio.com/docs/errors/21617",
        "status": 400,
    }
    assert send(fake, "\U0001f697" * 800).status_code == 201
    assert send(fake, "\U0001f697" * 801).json()["code"] == 21617, "counted in UTF-16 code units"
    assert len(fake.messages) == 2 and [r["error_code"] for r in fake.rejected] == [21617, 21617]


# -- holding a send ----------------------------------------------------------------------------------


def test_an_accepted_send_exists_before_the_client_hears_back(fake):
    fake.hold_sends(accept=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(fake, "did it go?", timeout=0.5)
    assert fake.send_held.is_set()
    [message] = fake.messages
    assert [m["sid"] for m in listing(fake, To=CUSTOMER)["messages"]] == [message["sid"]]
    fake.release_sends()
    assert fake.held_send_finished.wait(5)
    assert send(fake, "not held").status_code == 201, "only the next send was held"


def test_an_unaccepted_held_send_is_created_only_when_released(fake):
    fake.hold_sends(accept=False)
    answers = []
    worker = threading.Thread(target=lambda: answers.append(send(fake, "held", timeout=10)))
    worker.start()
    assert fake.send_held.wait(5)
    assert fake.messages == [] and listing(fake)["messages"] == []
    fake.release_sends()
    worker.join(5)
    assert answers[0].status_code == 201 and [m["sid"] for m in fake.messages] == [answers[0].json()["sid"]]


def test_an_unaccepted_held_send_whose_client_hung_up_is_never_created(fake):
    fake.hold_sends(accept=False)
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(fake, "gone", timeout=0.5)
    fake.release_sends()
    assert fake.held_send_finished.wait(5)
    assert fake.messages == [] and [a["Body"] for a in fake.abandoned] == ["gone"]


def test_several_holds_and_the_hold_timeout(fake):
    fake.hold_timeout = 0.2  # nobody calls release_sends(): the hold's own time-out must answer them
    fake.hold_sends(times=2, accept=True)
    answers = [send(fake, "one"), send(fake, "two"), send(fake, "three")]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert fake.held == ["one", "two"], "the next two sends were held, the third was not"
    assert [m["Body"] for m in fake.messages] == ["one", "two", "three"]


def test_a_send_held_until_its_client_gives_up_is_taken_and_answered_too_late(fake):
    fake.hold_sends(accept=True, until_client_gone=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(fake, "did it go?", timeout=0.3)
    assert fake.held_send_finished.wait(10) and fake.client_gave_up.is_set()
    [message] = fake.messages
    assert message["Body"] == "did it go?" and [m["sid"] for m in listing(fake, To=CUSTOMER)["messages"]] == [message["sid"]]
    assert send(fake, "next").status_code == 201 and fake.held == ["did it go?"], "only the next send was held"


def test_an_unaccepted_send_held_until_its_client_gives_up_is_never_created(fake):
    fake.hold_sends(accept=False, until_client_gone=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(fake, "gone", timeout=0.3)
    assert fake.held_send_finished.wait(10) and fake.client_gave_up.is_set()
    assert fake.messages == [] and [a["Body"] for a in fake.abandoned] == ["gone"]


def test_a_send_held_until_its_client_gives_up_is_answered_if_released_first(fake):
    fake.hold_sends(accept=True, until_client_gone=True)
    answers = []
    worker = threading.Thread(target=lambda: answers.append(send(fake, "patient", timeout=10)))
    worker.start()
    assert fake.send_held.wait(10)
    fake.release_sends()
    worker.join(10)
    assert answers[0].status_code == 201 and not fake.client_gave_up.is_set()


def test_listing_faults_answer_twilio_errors_then_clear(fake):
    assert send(fake, "one").status_code == 201
    fake.fail_with(20500, status=500, times=2, on="list")
    for _ in range(2):
        answer = requests.get(messages_url(fake), auth=AUTH, timeout=10)
        assert answer.status_code == 500 and answer.json()["code"] == 20500
    assert [m["body"] for m in listing(fake)["messages"]] == ["one"]
    fake.fail_with(20500, status=500, on="list")
    fake.clear_faults()
    assert len(listing(fake)["messages"]) == 1 and send(fake, "two").status_code == 201


# -- MMS media ---------------------------------------------------------------------------------------


def test_media_needs_basic_auth_then_redirects_to_a_cdn_that_serves_without_it(fake):
    url = fake.add_media(b"\xff\xd8jpeg bytes", "image/jpeg")
    assert re.fullmatch(
        re.escape(fake.api_url) + rf"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM[0-9a-f]{{32}}/Media/ME[0-9a-f]{{32}}", url
    )
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 20003
    redirect = requests.get(url, auth=AUTH, allow_redirects=False, timeout=10)
    assert redirect.status_code == 307 and redirect.reason == "Temporary Redirect"
    cdn = redirect.headers["Location"]
    assert urlsplit(cdn).path.startswith("/cdn/") and urlsplit(cdn).netloc == urlsplit(fake.api_url).netloc
    served = requests.get(cdn, timeout=10)
    assert served.status_code == 200 and served.content == b"\xff\xd8jpeg bytes"
    assert served.headers["Content-Type"] == "image/jpeg" and served.headers["Content-Length"] == str(len(b"\xff\xd8jpeg bytes"))
    assert fake.media_requests[-1].startswith("Basic ") and fake.cdn_requests == [None]


def test_a_cdn_on_another_host_name_shows_whether_credentials_follow_the_redirect(fake):
    url = fake.add_media(b"png", "image/png")
    same_host = requests.get(url, auth=AUTH, timeout=10)
    assert same_host.content == b"png" and fake.cdn_requests[-1] is not None, "requests keeps auth on the same host"
    fake.cdn_host = "localhost"
    redirect = requests.get(url, auth=AUTH, allow_redirects=False, timeout=10)
    assert urlsplit(redirect.headers["Location"]).hostname == "localhost"
    other_host = requests.get(url, auth=AUTH, timeout=10)
    assert other_host.content == b"png" and fake.cdn_requests[-1] is None, "requests drops auth for another host"
    assert FakeTwilio(cdn_host="localhost").cdn_host == "localhost"


def test_media_faults_answer_twilio_errors(fake):
    url = fake.add_media(b"x", "image/gif")
    for status, code in ((404, 20404), (401, 20003), (500, 20500)):
        fake.media_fault(url, status)
        answer = requests.get(url, auth=AUTH, timeout=10)
        assert answer.status_code == status and answer.json()["code"] == code and answer.json()["status"] == status
    fake.media_fault(url, None)
    assert requests.get(url, auth=AUTH, timeout=10).content == b"x"
    fake.media_fault(url, 500, times=1)
    assert requests.get(url, auth=AUTH, timeout=10).status_code == 500
    assert requests.get(url, auth=AUTH, timeout=10).content == b"x"
    fake.media_fault(url, 403, at="cdn")
    assert requests.get(url, auth=AUTH, timeout=10).status_code == 403
    unknown = url[:-34] + "ME" + "0" * 32
    assert requests.get(unknown, auth=AUTH, timeout=10).status_code == 404


def test_slow_media_sends_headers_then_waits_before_the_body(fake):
    url = fake.add_media(b"slow bytes", "image/jpeg")
    fake.slow_media(url, 60)  # a guard: release_media() ends the wait
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, auth=AUTH, timeout=0.2).content  # noqa: B018
    answer = requests.get(url, auth=AUTH, stream=True, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Length"] == str(len(b"slow bytes"))
    assert fake.media_waiting(url).is_set() and fake.media_bodies_sent(url) == 0, "the headers came before the body"
    fake.release_media(url)
    assert answer.content == b"slow bytes" and fake.media_bodies_sent(url) >= 1


def test_a_20_mb_mms_is_streamed_from_generated_bytes(fake):
    size = 20 * 1024 * 1024
    url = fake.add_media_size(size, "video/mp4")
    answer = requests.get(url, auth=AUTH, stream=True, timeout=10)
    assert answer.headers["Content-Length"] == str(size) and answer.headers["Content-Type"] == "video/mp4"
    digest, received = hashlib.sha256(), 0
    for chunk in answer.iter_content(256 * 1024):
        digest.update(chunk)
        received += len(chunk)
    assert received == size and digest.hexdigest() == fake.media_digest(url)
    assert fake.media_digest(fake.add_media_size(3, "image/png")) == hashlib.sha256(bytes([0, 1, 2])).hexdigest()
    assert requests.head(requests.get(url, auth=AUTH, allow_redirects=False, timeout=10).headers["Location"], timeout=10).headers[
        "Content-Length"
    ] == str(size)


def test_media_json_is_the_media_resource(fake):
    url = fake.add_media(b"x", "image/png")
    second = fake.add_media(b"y", "image/jpeg", message_sid=url.split("/Messages/")[1].split("/")[0])
    resource = requests.get(second + ".json", auth=AUTH, timeout=10).json()
    assert resource["sid"] == second.rsplit("/", 1)[1] and resource["parent_sid"] in url
    assert resource["content_type"] == "image/jpeg" and RFC2822.match(resource["date_created"])


# -- inbound messages --------------------------------------------------------------------------------


def test_an_inbound_sms_posts_twilio_parameters_signed_over_the_public_url(fake, app):
    answer = fake.inbound(app.url, PUBLIC_URL, CUSTOMER, "Is my car ready?")
    assert answer.status_code == 200 and "<Response>" in answer.text
    [post] = app.posts
    form = post["form"]
    assert post["path"] == "/sms/inbound" and post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"]) and form["SmsSid"] == form["SmsMessageSid"] == form["MessageSid"]
    assert form["AccountSid"] == ACCOUNT_SID and "MessagingServiceSid" not in form
    assert (form["From"], form["To"], form["Body"]) == (CUSTOMER, FROM_NUMBER, "Is my car ready?")
    assert (form["NumMedia"], form["NumSegments"], form["SmsStatus"], form["ApiVersion"]) == ("0", "1", "received", "2010-04-01")
    assert (form["FromCity"], form["FromState"], form["FromCountry"]) == ("MONTREAL", "QC", "CA")
    assert {"FromZip", "ToCity", "ToState", "ToZip", "ToCountry"} <= set(form)
    assert not any(key.startswith("MediaUrl") for key in form)
    assert post["headers"]["X-Twilio-Signature"] == twilio_signature(PUBLIC_URL + "/sms/inbound", form)
    assert post["headers"]["X-Twilio-Signature"] != twilio_signature(app.url + "/sms/inbound", form)
    fake.inbound(app.url, PUBLIC_URL, CUSTOMER, "again")
    assert app.posts[1]["form"]["MessageSid"] != form["MessageSid"], "a fresh sid each time"


def test_an_inbound_mms_lists_its_media_and_takes_the_mm_sid(fake, app):
    photo = fake.add_media(b"jpeg", "image/jpeg")
    message_sid = photo.split("/Messages/")[1].split("/")[0]
    clip = fake.add_media(b"mp4", "video/mp4", message_sid=message_sid)
    fake.inbound(app.url, PUBLIC_URL, CUSTOMER, "", media=[(photo, "image/jpeg"), (clip, "video/mp4")])
    form = app.posts[0]["form"]
    assert form["MessageSid"] == message_sid and form["NumMedia"] == "2" and form["Body"] == ""
    assert (form["MediaUrl0"], form["MediaContentType0"], form["MediaUrl1"], form["MediaContentType1"]) == (
        photo,
        "image/jpeg",
        clip,
        "video/mp4",
    )
    assert app.posts[0]["headers"]["X-Twilio-Signature"] == twilio_signature(PUBLIC_URL + "/sms/inbound", form)
    assert requests.get(form["MediaUrl1"], auth=AUTH, timeout=10).content == b"mp4"


def test_inbound_replays_overrides_and_bad_signatures(fake, app):
    sid = "SM" + "a" * 32
    fake.inbound(
        app.url,
        PUBLIC_URL + "/",
        CUSTOMER,
        "STOP",
        message_sid=sid,
        path="/hooks/sms",
        extra={"OptOutType": "STOP", "FromCity": None},
        messaging_service_sid="MG" + "3" * 32,
    )
    fake.inbound(app.url, PUBLIC_URL, CUSTOMER, "STOP", message_sid=sid, path="/hooks/sms", signature="forged")
    first, replay = app.posts
    assert first["path"] == replay["path"] == "/hooks/sms" and first["form"]["MessageSid"] == replay["form"]["MessageSid"] == sid
    assert first["form"]["OptOutType"] == "STOP" and "FromCity" not in first["form"]
    assert first["form"]["MessagingServiceSid"] == "MG" + "3" * 32
    assert first["headers"]["X-Twilio-Signature"] == twilio_signature(PUBLIC_URL + "/hooks/sms", first["form"])
    assert replay["headers"]["X-Twilio-Signature"] == "forged"
    assert len(fake.received) == 1, "a replay is the same message"


def test_inbound_messages_are_listed_as_inbound_but_not_in_messages(fake, app):
    sent = send(fake, "Your car is ready").json()["sid"]
    fake.inbound(app.url, PUBLIC_URL, CUSTOMER, "Merci! \U0001f44d")
    assert [m["sid"] for m in fake.messages] == [sent]
    page = listing(fake)
    reply, outbound = page["messages"]
    assert (reply["direction"], reply["status"], reply["from"], reply["to"]) == ("inbound", "received", CUSTOMER, FROM_NUMBER)
    assert outbound["sid"] == sent and listing(fake, From=FROM_NUMBER)["messages"] == [outbound]
