"""Small real video clips made with ffmpeg in the test run, and ways to look inside the results
(probe, decode a frame, colour of a region)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from media.video_probe import ffmpeg_exe, probe


def clip(
    folder: Path,
    *,
    size: str = "320x180",
    fps: int = 30,
    seconds: float = 1.0,
    audio: bool = True,
    codec: str = "libx264",
    container: str = "mp4",
    rotation: int | None = None,
    created: str | None = None,
    two_colours: bool = False,
    hdr: bool = False,
    name: str | None = None,
    iphone_portrait: bool = False,
) -> Path:
    """A clip of ffmpeg's test pattern (or, with `two_colours`, red on top and blue below, to tell
    which way is up). `rotation`: a display rotation (ffmpeg's -display_rotation, anticlockwise
    degrees) over the pixels as made. `iphone_portrait`: the `size` picture stored as an iPhone
    stores portrait video, on its side (landscape pixels) with a matrix turning it back upright."""
    out = folder / (name or f"clip-{uuid.uuid4().hex[:8]}.{container}")
    width, height = size.split("x")
    source = (
        f"color=red:size={size}:rate={fps}:duration={seconds},drawbox=x=0:y={int(height) // 2}:w={width}:h={int(height) // 2}"
        f":color=blue:t=fill"
        if two_colours
        else f"testsrc=duration={seconds}:size={size}:rate={fps}"
    )
    if iphone_portrait:
        source, rotation = source + ",transpose=2", -90
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate=44100"]
    command += ["-c:v", codec]
    if codec == "libx265":
        params = "log-level=error"
        if hdr:
            params += ":colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc"
        command += ["-tag:v", "hvc1", "-x265-params", params, "-pix_fmt", "yuv420p10le" if hdr else "yuv420p"]
    else:
        command += ["-pix_fmt", "yuv420p"]
    if audio:
        command += ["-c:a", "aac", "-shortest"]
    command += ["-metadata", f"title={out.stem}"]  # every clip its own bytes (the store is content-addressed)
    if created:
        command += ["-metadata", f"creation_time={created}"]
    plain = out.with_name("plain-" + out.name)
    subprocess.run([*command, str(plain if rotation is not None else out)], check=True, capture_output=True, timeout=120)
    if rotation is not None:
        # A display matrix, as a phone writes it (the pixels stay landscape).
        subprocess.run(
            [
                ffmpeg_exe(),
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-display_rotation",
                str(rotation),
                "-i",
                str(plain),
                "-c",
                "copy",
                str(out),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        plain.unlink()
    return out


def frame(path: Path, at: float, folder: Path) -> tuple[int, int, bytes]:
    """(width, height, RGB bytes) of the picture shown at `at` seconds (turned as the file says)."""
    raw = folder / f"frame-{uuid.uuid4().hex[:8]}.rgb"
    result = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            f"{at:.3f}",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            str(raw),
        ],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    info = probe(path)
    width, height = info.display_size
    data = raw.read_bytes()
    assert len(data) == width * height * 3, (len(data), width, height)
    return width, height, data


def last_frame(path: Path, folder: Path) -> tuple[int, int, bytes]:
    return frame(path, max(0.0, probe(path).duration - 0.1), folder)


def mean_colour(picture: tuple[int, int, bytes], left: float, top: float, right: float, bottom: float) -> tuple[int, int, int]:
    """Average (R, G, B) of a region given in fractions of the picture."""
    width, height, data = picture
    totals, count = [0, 0, 0], 0
    for y in range(int(top * height), max(int(top * height) + 1, int(bottom * height))):
        for x in range(int(left * width), max(int(left * width) + 1, int(right * width))):
            offset = (y * width + x) * 3
            for c in range(3):
                totals[c] += data[offset + c]
            count += 1
    return tuple(t // count for t in totals)  # type: ignore[return-value]


def is_black(colour: tuple[int, int, int]) -> bool:
    return max(colour) < 40


def dominant(colour: tuple[int, int, int]) -> str:
    r, g, b = colour
    return "red" if r > 2 * b and r > 100 else "blue" if b > 2 * r and b > 100 else "other"


def audio_seconds(path: Path, folder: Path) -> float:
    """How long the audio track lasts, measured by decoding it."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:a:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    times = [line for line in result.stderr.splitlines() if "time=" in line]
    assert times, result.stderr
    stamp = times[-1].split("time=")[1].split()[0]
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)
