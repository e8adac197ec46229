"""Merge benchmark: our path (media.video_merge) against plain moviepy, on the same clips, in one run.

    .venv/bin/python bench/merge.py                 # 10 s clips, as the issue sets them
    .venv/bin/python bench/merge.py --seconds 3     # quicker

Two sets, made here with the ffmpeg imageio-ffmpeg ships (ffmpeg's moving test picture with a red
band along the top, so a clip drawn sideways shows, and a tone):
- same phone: three 1080×1920 30 fps H.264/AAC clips;
- mixed: 1920×1080 landscape, 1280×720 at 24 fps, a portrait clip stored as 1920×1080 plus a
  rotation tag (as iPhones write it), and a 1080×1920 clip without audio.

Each merge runs in a process of its own (so its CPU time and peak memory, ffmpeg's included, are
its own): wall time, CPU time (user + system, children included), peak resident memory. Each
result is checked: length, frame size, audio track and codec, the last frame decoded, and the
picture upright at the middle of every clip (the red band on top). moviepy is used as its
documentation shows: `concatenate_videoclips(method="compose")` then `write_videofile` with
libx264 and AAC, every clip closed. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from media.video_merge import merge, probe_clips  # noqa: E402
from media.video_probe import ffmpeg_exe, probe  # noqa: E402


def make_clip(out: Path, size: str, fps: int, seconds: float, audio: bool = True, iphone_portrait: bool = False) -> Path:
    """`iphone_portrait`: a portrait picture stored as an iPhone stores it, turned on its side
    (landscape pixels) with a display matrix telling the player to turn it back."""
    picture = f"testsrc2=size={size}:rate={fps}:duration={seconds},drawbox=x=0:y=0:w=iw:h=ih/8:color=red:t=fill"
    if iphone_portrait:
        picture += ",transpose=2"
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", picture]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate=48000", "-c:a", "aac", "-ac", "2"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p", "-g", str(fps)]
    plain = out.with_name("plain-" + out.name)
    subprocess.run([*command, str(plain if iphone_portrait else out)], check=True)
    if iphone_portrait:
        turn = [ffmpeg_exe(), "-loglevel", "error", "-y", "-display_rotation", "-90", "-i", str(plain), "-c", "copy"]
        subprocess.run([*turn, str(out)], check=True)
        plain.unlink()
    return out


def make_sets(folder: Path, seconds: float) -> dict[str, list[Path]]:
    same = [make_clip(folder / f"same-{n}.mp4", "1080x1920", 30, seconds) for n in range(3)]
    mixed = [
        make_clip(folder / "mixed-landscape.mp4", "1920x1080", 30, seconds),
        make_clip(folder / "mixed-720p24.mp4", "1280x720", 24, seconds),
        make_clip(folder / "mixed-rotated.mp4", "1080x1920", 30, seconds, iphone_portrait=True),  # stored 1920×1080
        make_clip(folder / "mixed-silent.mp4", "1080x1920", 30, seconds, audio=False),
    ]
    return {"same phone": same, "mixed": mixed}


# -- the two ways, each run in a child process -------------------------------------------------------


def ours(paths: list[Path], out: Path) -> str:
    work = out.parent / "work"
    work.mkdir(exist_ok=True)
    return merge(probe_clips(paths), out, work).mode


def plain_moviepy(paths: list[Path], out: Path) -> str:
    from moviepy import VideoFileClip, concatenate_videoclips

    clips = [VideoFileClip(str(p)) for p in paths]
    try:
        joined = concatenate_videoclips(clips, method="compose")
        joined.write_videofile(str(out), codec="libx264", audio_codec="aac", logger=None)
        joined.close()
    finally:
        for clip in clips:
            clip.close()  # moviepy leaves its ffmpeg readers running otherwise
    return "moviepy"


def child(way: str, paths: list[str], out: str) -> None:
    mode = {"ours": ours, "moviepy": plain_moviepy}[way]([Path(p) for p in paths], Path(out))
    print(json.dumps({"mode": mode}))


def measured(way: str, paths: list[Path], out: Path) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", way, "--out", str(out), *map(str, paths)], stdout=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    output = process.stdout.read() if process.stdout else ""
    if status != 0:
        raise SystemExit(f"{way} failed (status {status})")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,  # the child's and, once waited for, its ffmpeg's
        "peak_mb": usage.ru_maxrss / 1024,
        "mode": json.loads(output.strip().splitlines()[-1])["mode"],
    }


# -- checking a result ---------------------------------------------------------------------------------


def _frame(path: Path, at: float) -> tuple[int, int, bytes]:
    info = probe(path)
    width, height = info.display_size
    command = [ffmpeg_exe(), "-loglevel", "error", "-ss", f"{at:.3f}", "-i", str(path), "-frames:v", "1"]
    data = subprocess.run([*command, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    if len(data) != width * height * 3:
        raise ValueError("frame did not decode")
    return width, height, data


def _band_is_red(picture: tuple[int, int, bytes]) -> bool:
    """The red band along the top of the clip's own picture, wherever the letterbox put it."""
    width, height, data = picture
    rows = []
    for y in range(height):
        offset = (y * width + width // 2) * 3
        r, g, b = data[offset], data[offset + 1], data[offset + 2]
        rows.append((r > 150 and g < 90 and b < 90, max(r, g, b) < 30))
    first_picture_row = next((y for y, (_, black) in enumerate(rows) if not black), 0)
    return rows[min(height - 1, first_picture_row + 2)][0]


def check(out: Path, sources: list[Path]) -> tuple[bool, str]:
    clips = probe_clips(sources)
    expected = sum(c.duration for c in clips)
    result = probe(out)
    problems = []
    if abs(result.duration - expected) > 0.5:
        problems.append(f"lasts {result.duration:.1f} s, not {expected:.1f} s")
    if result.video_codec != "h264" or result.pix_fmt not in ("yuv420p", "yuvj420p"):
        problems.append(f"video {result.video_codec} {result.pix_fmt}")
    if result.audio_codec != "aac":
        problems.append(f"audio {result.audio_codec or 'none'}")
    _frame(out, max(0.0, result.duration - 0.1))  # the last frame decodes
    start = 0.0
    for n, clip in enumerate(clips):
        if not _band_is_red(_frame(out, start + clip.duration / 2)):
            problems.append(f"clip {n + 1} not upright")
        start += clip.duration
    size = "×".join(map(str, result.display_size))
    return not problems, f"{size}, {result.duration:.1f} s, " + ("; ".join(problems) if problems else "checked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--child")
    parser.add_argument("--out")
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.paths, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as folder:
        root = Path(folder)
        sets = make_sets(root, args.seconds)
        print(f"clips of {args.seconds:g} s, made with {Path(ffmpeg_exe()).name}; {os.cpu_count()} CPUs\n")
        print(f"{'set':<11} {'way':<14} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}  output")
        for name, paths in sets.items():
            figures = {}
            for way in ("ours", "moviepy"):
                out = root / f"{name.replace(' ', '-')}-{way}.mp4"
                figures[way] = measured(way, paths, out)
                ok, said = check(out, paths)
                label = f"ours ({figures[way]['mode']})" if way == "ours" else "moviepy"
                f = figures[way]
                print(
                    f"{name:<11} {label:<14} {f['wall']:>8.2f} {f['cpu']:>8.2f} {f['peak_mb']:>8.0f}  {'✓' if ok else '✗'} {said}"
                )
            ratio = figures["moviepy"]["wall"] / figures["ours"]["wall"]
            print(
                f"{'':<11} {'→ ours is':<14} {ratio:>7.1f}× faster (wall), {figures['moviepy']['cpu'] / figures['ours']['cpu']:.1f}× less CPU\n"
            )


if __name__ == "__main__":
    main()
