"""Customer-ready copies, made at send time: every phone and browser must show what we send.

- iPhone HEIC/HEIF photos (and other images browsers can't show) → JPEG (Pillow + pillow-heif).
- Any video that is not H.264 in MP4 (iPhone HEVC, QuickTime .mov…) → H.264/AAC MP4 with the
  index at the front (`+faststart`), so playback and seeking start at once. H.264 in a .mov is
  only re-wrapped, which is fast.
- Everything else is sent as stored.

Copies are stored content-addressed too, and remembered per source content (MediaRendition), so a
file sent twice is converted once. A conversion that fails falls back to the original (the page
still offers it for download) and is logged.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from peewee import IntegrityError

from media.blob_store import BlobStore
from media.file_kinds import INLINE_TYPES, normalise_mimetype
from media.video_probe import description, ffmpeg_exe
from storage.models import MediaRendition

log = logging.getLogger(__name__)
FFMPEG_TIMEOUT_SECONDS = 30 * 60
_WEB_IMAGES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


class ConversionFailed(Exception):
    pass


@dataclass(frozen=True)
class Asset:
    """What the customer gets for one stored file."""

    sha256: str
    mimetype: str
    size: int
    converted: bool = False


@dataclass(frozen=True)
class VideoProbe:
    video_codec: str | None
    audio_codec: str | None


def probe(path: Path) -> VideoProbe:
    """Codecs of the first video and audio streams, read from ffmpeg's own description."""
    text = description(path, timeout=120)
    video = re.search(r"Stream #\S+.*?: Video: (\w+)", text)
    audio = re.search(r"Stream #\S+.*?: Audio: (\w+)", text)
    return VideoProbe(video.group(1) if video else None, audio.group(1) if audio else None)


def needs_conversion(mimetype: str, path: Path) -> bool:
    mimetype = normalise_mimetype(mimetype)
    if mimetype.startswith("image/"):
        return mimetype not in _WEB_IMAGES
    if mimetype.startswith("video/"):
        return not (mimetype == "video/mp4" and probe(path).video_codec == "h264")
    return False


def customer_version(store: BlobStore, sha256: str, mimetype: str) -> Asset:
    """The asset to show the customer for the stored blob `sha256` of type `mimetype`."""
    mimetype = normalise_mimetype(mimetype)
    cached = MediaRendition.get_or_none(MediaRendition.source_sha256 == sha256)
    if cached and store.has(cached.sha256):
        return Asset(cached.sha256, cached.mimetype, cached.size, converted=cached.sha256 != sha256)
    with store.local_copy(sha256) as source:
        original = Asset(sha256, mimetype, source.stat().st_size)
        try:
            if not needs_conversion(mimetype, source):
                asset = original
            elif mimetype.startswith("image/"):
                asset = _convert(store, source, ".jpg", "image/jpeg", _image_to_jpeg)
            else:
                asset = _convert(store, source, ".mp4", "video/mp4", _video_to_mp4)
        except (ConversionFailed, OSError, subprocess.SubprocessError, ValueError) as exc:
            log.warning("conversion of %s (%s) failed, sending the original: %s", sha256[:12], mimetype, exc)
            return original
    try:
        MediaRendition.create(source_sha256=sha256, sha256=asset.sha256, mimetype=asset.mimetype, size=asset.size)
    except IntegrityError:
        pass  # another send converted the same content at the same time; both copies are identical in use
    return asset


def _convert(store: BlobStore, source: Path, suffix: str, mimetype: str, convert) -> Asset:
    out = store.temp_path(suffix)
    try:
        convert(source, out)
        if out.stat().st_size == 0:
            raise ConversionFailed("empty output")
        sha, size = store.put_file(out)
    finally:
        out.unlink(missing_ok=True)
    return Asset(sha, mimetype, size, converted=True)


def _image_to_jpeg(source: Path, out: Path) -> None:
    from PIL import Image, ImageOps, UnidentifiedImageError
    from pillow_heif import register_heif_opener

    register_heif_opener()
    try:
        with Image.open(source) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            # No EXIF in the customer's copy: it may carry the shop's GPS position and device details.
            image.save(out, "JPEG", quality=88, optimize=True)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ConversionFailed(f"unreadable image: {type(exc).__name__}") from None


def _video_to_mp4(source: Path, out: Path) -> None:
    info = probe(source)
    if info.video_codec is None:
        raise ConversionFailed("no video stream")
    audio = ["-c:a", "copy"] if info.audio_codec in (None, "aac") else ["-c:a", "aac", "-b:a", "128k"]
    if info.video_codec == "h264":
        # Already H.264 (a .mov): re-wrap only.
        if _ffmpeg(source, out, ["-c:v", "copy", *audio]):
            return
    video = [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
        "-vf",
        "scale=trunc(iw/2)*2:trunc(ih/2)*2",
    ]
    if not _ffmpeg(source, out, [*video, "-c:a", "aac", "-b:a", "128k"]):
        raise ConversionFailed("ffmpeg could not convert the video")


def _ffmpeg(source: Path, out: Path, codec_args: list[str]) -> bool:
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(source),
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        *codec_args,
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=FFMPEG_TIMEOUT_SECONDS)
    if result.returncode != 0:
        log.info("ffmpeg exited %s: %s", result.returncode, result.stderr.strip()[-300:])
    return result.returncode == 0


def is_inline(mimetype: str) -> bool:
    return normalise_mimetype(mimetype) in INLINE_TYPES
