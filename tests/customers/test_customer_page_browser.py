"""The customer page in a real browser: headless Chromium (Debian's `chromium`) at phone width,
driven over the DevTools protocol. Images load, a video plays and seeks (Range requests), tapping a
photo enlarges it, and the text is in the customer's language.

Without Chromium the test is skipped with the reason, except in CI (env CI set), where that is a
failure: .ci/run installs the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.factories import make_ro
from tests.support.files import delivered_send, has_encoder, heic_bytes, jpeg_bytes, page_path, stored_file, video_bytes

PHONE_WIDTH, PHONE_HEIGHT = 390, 844
IPHONE_CODEC = "libx265" if has_encoder("libx265") else "libx264"


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found:
        return found
    reason = "no Chromium here: install Debian's package with `apt-get install -y chromium`"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set: .ci/run must install it, so skipping is a failure)")
    pytest.skip(reason)


class Browser:
    """One headless Chromium and one page, spoken to over the DevTools protocol."""

    def __init__(self, tmp_path: Path):
        import websocket

        profile = tmp_path / "chromium-profile"
        self.process = subprocess.Popen(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
                f"--window-size={PHONE_WIDTH},{PHONE_HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise AssertionError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        pages = [t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=PHONE_WIDTH, height=PHONE_HEIGHT, deviceScaleFactor=3, mobile=True)

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not finish loading")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def browser(tmp_path):
    _chromium()
    opened = Browser(tmp_path)
    yield opened
    opened.close()


CHECK_PAGE = """(async () => {
  const photos = [...document.querySelectorAll('figure img')];
  await Promise.all(photos.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const video = document.querySelector('video');
  video.muted = true;
  const played = await video.play().then(() => 'ok', e => String(e));
  await new Promise(r => setTimeout(r, 400));
  const playedTo = video.currentTime;
  video.pause();
  const seeked = new Promise(r => video.addEventListener('seeked', r, {once: true}));
  video.currentTime = 1.5;
  await seeked;
  return {photos: photos.map(i => i.naturalWidth), played, playedTo, readyState: video.readyState, seekedTo: video.currentTime,
          duration: video.duration, videoError: video.error && video.error.code, lang: document.documentElement.lang,
          text: document.body.innerText, width: document.documentElement.clientWidth,
          scrollWidth: document.documentElement.scrollWidth};
})()"""

ENLARGE = """(async () => {
  document.querySelector('figure a.thumb').click();
  const box = document.querySelector('#photo-1');
  const img = box.querySelector('img');
  await new Promise(r => { if (img.complete && img.naturalWidth) r(); else { img.onload = img.onerror = r; } });
  return {hash: location.hash, display: getComputedStyle(box).display, width: img.naturalWidth,
          shown: img.getBoundingClientRect().width};
})()"""


@pytest.mark.parametrize(
    "language,expected",
    [
        ("fr", ["Bon de travail", "Touchez une photo pour l'agrandir.", "Télécharger", "Vidéo 1"]),
        ("en", ["Repair order", "Tap a photo to enlarge it.", "Download", "Video 1"]),
    ],
)
def test_the_customer_page_works_in_a_phone_browser(app, fake_slack, tmp_path, browser, language, expected):
    ro = make_ro(fake_slack, language=language)
    files = [
        stored_file(app, ro, jpeg_bytes(640, 480, (200, 60, 40)), "IMG_0001.jpg", "image/jpeg", minutes_ago=3),
        stored_file(app, ro, heic_bytes(320, 240), "IMG_0002.HEIC", "image/heic", minutes_ago=2),
        # An iPhone-style HEVC .mov (Chromium cannot play HEVC: it plays only because the send made an H.264 copy).
        stored_file(
            app,
            ro,
            video_bytes(tmp_path, codec=IPHONE_CODEC, container="mov", seconds=3, size="320x240"),
            "IMG_0003.MOV",
            "video/quicktime",
            minutes_ago=1,
        ),
    ]
    send = delivered_send(app, ro, files)
    browser.open(app.url + page_path(app, send))
    seen = browser.evaluate(CHECK_PAGE)
    browser.screenshot(tmp_path / f"customer-page-{language}.png")

    assert seen["lang"] == language
    for text in expected:
        assert text in seen["text"], text
    assert seen["photos"] == [640, 320], "both photos (the HEIC as JPEG) loaded"
    assert seen["played"] == "ok" and seen["playedTo"] > 0 and seen["videoError"] is None
    assert abs(seen["seekedTo"] - 1.5) < 0.25 and seen["readyState"] >= 2 and seen["duration"] > 2.5
    assert seen["width"] == PHONE_WIDTH and seen["scrollWidth"] <= PHONE_WIDTH, "no sideways scrolling on a phone"

    enlarged = browser.evaluate(ENLARGE)
    assert enlarged["hash"] == "#photo-1" and enlarged["display"] == "flex"
    assert enlarged["width"] == 640 and enlarged["shown"] > 300


def test_an_expired_link_reads_well_in_a_phone_browser(app, fake_slack, tmp_path, browser):
    from datetime import timedelta

    from storage.models import CustomerSend, utcnow

    ro = make_ro(fake_slack, language="fr")
    send = delivered_send(app, ro, [stored_file(app, ro, jpeg_bytes(), "a.jpg", "image/jpeg")])
    CustomerSend.update(expires_at=utcnow() - timedelta(days=1)).where(CustomerSend.id == send.id).execute()
    browser.open(app.url + page_path(app, send))
    seen = browser.evaluate("({text: document.body.innerText, width: document.documentElement.scrollWidth})")
    assert "Ce lien a expiré" in seen["text"] and "514 555-0100" in seen["text"] and seen["width"] <= PHONE_WIDTH
