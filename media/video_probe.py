"""What a video file is, read from the description ffmpeg prints (the ffmpeg imageio-ffmpeg ships).

moviepy's ffmpeg reader parses the duration, size, frame rate and codec; what it does not read, or
reads wrong with the ffmpeg 9 that imageio-ffmpeg 0.8 ships (the rotation, the pixel format, the
audio layout, HDR, the recording's own time), is read here from the same text. One ffmpeg call a
file, no frame decoded.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

from moviepy.video.io.ffmpeg_reader import FFmpegInfosParser

PROBE_TIMEOUT = 60
_HDR_TRANSFERS = ("smpte2084", "arib-std-b67")


class ProbeFailed(Exception):
    """The file is no usable video. `code`: not_video, unreadable, empty, too_slow."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class Clip:
    path: Path
    duration: float
    width: int  # as stored
    height: int
    rotation: int  # degrees the player turns it (0, 90, 180, 270)
    fps: Fraction
    video_codec: str
    profile: str
    pix_fmt: str
    hdr: bool
    has_audio: bool
    audio_codec: str | None
    audio_rate: int | None
    audio_channels: str | None  # "mono", "stereo", "5.1"…
    created_at: datetime | None  # the recording's own time, when the file says it

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)

    def copy_signature(self) -> tuple:
        """What must be equal between clips for a stream copy to be right."""
        return (
            self.video_codec,
            self.profile,
            self.width,
            self.height,
            self.pix_fmt,
            self.fps,
            self.rotation,
            self.has_audio,
            self.audio_codec,
            self.audio_rate,
            self.audio_channels,
        )


def description(path: Path, timeout: float = PROBE_TIMEOUT) -> str:
    """What ffmpeg prints about the file's streams (raises subprocess.TimeoutExpired)."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    return result.stderr


def probe(path: Path) -> Clip:
    """What a clip is. Raises ProbeFailed (not a video, unreadable, truncated, too slow to read)."""
    try:
        text = description(path)
    except subprocess.TimeoutExpired:
        raise ProbeFailed("too_slow") from None
    if "Invalid data found" in text or "moov atom not found" in text or "Stream #" not in text:
        raise ProbeFailed("not_video")
    try:
        infos = FFmpegInfosParser(text, str(path), check_duration=True).parse()
    except Exception as exc:  # moviepy raises bare exceptions for what it cannot parse
        raise ProbeFailed("unreadable", type(exc).__name__) from None
    if not infos.get("video_found"):
        raise ProbeFailed("not_video")
    duration = float(infos.get("duration") or infos.get("video_duration") or 0)
    if duration <= 0:
        raise ProbeFailed("empty")
    video_line = next((line for line in text.splitlines() if re.search(r"Stream #\S+.*: Video:", line)), "")
    audio_line = next((line for line in text.splitlines() if re.search(r"Stream #\S+.*: Audio:", line)), "")
    width, height = (int(v) for v in infos["video_size"])
    pix = re.search(r"Video: [^,]+, (\w+)", video_line)
    pix_fmt = pix.group(1) if pix else "unknown"
    fps = _fps(video_line) or Fraction(str(infos.get("video_fps") or 30)).limit_denominator(1001)
    audio = re.search(r"Audio: (\w+)[^,]*, (\d+) Hz, ([\w.()]+)", audio_line)
    return Clip(
        path=path,
        duration=duration,
        width=width,
        height=height,
        rotation=_rotation(text),
        fps=fps,
        video_codec=str(infos.get("video_codec_name") or "unknown"),
        profile=str(infos.get("video_profile") or ""),
        pix_fmt=pix_fmt,
        hdr=any(t in video_line for t in _HDR_TRANSFERS) or "10le" in pix_fmt or "10be" in pix_fmt,
        has_audio=bool(infos.get("audio_found")) and bool(audio_line),
        audio_codec=audio.group(1) if audio else None,
        audio_rate=int(audio.group(2)) if audio else None,
        audio_channels=audio.group(3) if audio else None,
        created_at=_creation_time(text),
    )


def _fps(video_line: str) -> Fraction | None:
    found = re.search(r"([\d.]+) fps", video_line)
    if not found:
        return None
    value = float(found.group(1))
    for exact in (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)):
        if abs(float(exact) - value) < 0.01:
            return exact
    return Fraction(value).limit_denominator(1001)


def _rotation(text: str) -> int:
    """Degrees the player turns the picture: ffmpeg 9 prints the display matrix ("rotation of -90.00
    degrees" = turn 90° clockwise); older files carry a "rotate" tag."""
    matrix = re.search(r"rotation of (-?[\d.]+) degrees", text)
    if matrix:
        return int(round(-float(matrix.group(1)))) % 360
    tag = re.search(r"^\s*rotate\s*:\s*(-?\d+)", text, re.MULTILINE)
    return int(tag.group(1)) % 360 if tag else 0


def _creation_time(text: str) -> datetime | None:
    found = re.search(r"creation_time\s*:\s*(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", text)
    if not found:
        return None
    moment = datetime.fromisoformat(found.group(1)).replace(tzinfo=timezone.utc)
    return None if moment.year < 2000 else moment  # 1904/1970: a camera that never set its clock
