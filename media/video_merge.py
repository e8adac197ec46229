"""Joining video clips into one MP4 (H.264 + AAC, `+faststart`), with the ffmpeg imageio-ffmpeg ships.

Two ways, chosen per set of clips:
- **stream copy** when every clip is already H.264 (8-bit 4:2:0) with the same profile, size,
  pixel format, frame rate and rotation, and every clip has AAC audio of the same layout: the
  usual case (one phone). ffmpeg's concat demuxer copies the video without decoding a frame;
  only the audio is re-encoded, because AAC copied through the concat demuxer lands 10-50 ms late
  at each join.
- **one re-encoding pass** otherwise: each clip is rotated as its metadata says (iPhones store
  portrait video as landscape plus a rotation tag), scaled into one frame size and letterboxed
  (never stretched), brought to one frame rate, tone-mapped to 8-bit SDR when it is 10-bit HDR,
  given silence when it has no audio (so the sound stays in sync), then all are concatenated by
  one filter graph and encoded once.

A clip that differs only by its rotation tag, or that lacks audio, must not be stream-copied: ffmpeg
exits 0 and the result plays sideways or loses sync. Clips are described by media.video_probe; no
frame goes through Python.

ffmpeg never outlives the worker that started it: it runs in a process group of its own, asks the
kernel (Linux's PR_SET_PDEATHSIG) to be killed when the thread that started it dies, and `merge`
reports its pid and start time (`on_start`) so that whoever takes a dead worker's merge over can
stop it (`stop_ffmpeg`) where the kernel could not (another OS, a death between fork and prctl) —
only if that pid is still that ffmpeg, never a process that got its recycled pid.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import psutil

from media.video_probe import Clip, ProbeFailed, ffmpeg_exe, probe

log = logging.getLogger(__name__)
MAX_SIDE = 1920  # the output's longest side: phones record more, customers watch on phones
AUDIO_RATE = 48000


class MergeFailed(Exception):
    """The merge cannot be made. `code` names why (the catalog's merge.error.<code>): not_video,
    unreadable, empty, too_slow, ffmpeg, bad_output, too_few; `clip` is the index (in the order
    given) of the clip at fault, if one is; `detail` is for the logs."""

    def __init__(self, code: str, clip: int | None = None, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.clip = clip
        self.detail = detail


def probe_clips(paths: list[Path]) -> list[Clip]:
    """Every clip described, in order. Raises MergeFailed naming the first clip that is no usable video."""
    clips = []
    for index, path in enumerate(paths):
        try:
            clips.append(probe(path))
        except ProbeFailed as failed:
            raise MergeFailed(failed.code, index, failed.detail) from None
    return clips


def can_stream_copy(clips: list[Clip]) -> bool:
    first = clips[0]
    return (
        first.video_codec == "h264"
        and first.pix_fmt in ("yuv420p", "yuvj420p")
        and not first.hdr
        and first.has_audio
        and all(clip.copy_signature() == first.copy_signature() for clip in clips)
    )


@dataclass(frozen=True)
class Plan:
    mode: str  # copy | encode
    width: int
    height: int
    fps: Fraction
    duration: float


def plan(clips: list[Clip]) -> Plan:
    """How the clips will be joined: the frame of the first clip (its display orientation, longest
    side at most MAX_SIDE, even sides), the first clip's frame rate (24 to 60)."""
    total = sum(clip.duration for clip in clips)
    if can_stream_copy(clips):
        width, height = clips[0].display_size
        return Plan("copy", width, height, clips[0].fps, total)
    width, height = clips[0].display_size
    scale = min(1.0, MAX_SIDE / max(width, height))
    width, height = _even(width * scale), _even(height * scale)
    fps = min(max(clips[0].fps, Fraction(24)), Fraction(60))
    return Plan("encode", width, height, fps, total)


def _even(value: float) -> int:
    return max(2, int(math.floor(value / 2)) * 2)


def merge(
    clips: list[Clip],
    out: Path,
    work: Path,
    on_progress: Callable[[float], None] | None = None,
    timeout: float = 3600,
    on_start: Callable[[FfmpegRun], None] | None = None,
) -> Plan:
    """Join `clips`, in this order, into `out`. `work` is a folder for temporary files (the caller
    removes it). Raises MergeFailed; `out` is complete when this returns, absent otherwise.
    `on_start` is told which ffmpeg runs, once it runs (to record it: see stop_ffmpeg); if it
    raises, ffmpeg is stopped and the error goes up."""
    if len(clips) < 2:
        raise MergeFailed("too_few")
    chosen = plan(clips)
    partial = work / "merged.part.mp4"
    if chosen.mode == "copy":
        listing = work / "clips.txt"
        listing.write_text("".join(f"file '{_quoted(clip.path)}'\n" for clip in clips), encoding="utf-8")
        arguments = [
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-map",
            "0:v:0",
            "-map",
            "0:a:0",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-ar",
            str(AUDIO_RATE),
        ]
    else:
        arguments = [
            *[item for clip in clips for item in ("-i", str(clip.path))],
            "-filter_complex",
            filter_graph(clips, chosen),
            "-map",
            "[v]",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-ar",
            str(AUDIO_RATE),
            "-ac",
            "2",
        ]
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        *arguments,
        "-movflags",
        "+faststart",
        "-progress",
        "pipe:1",
        "-nostats",
        "-f",
        "mp4",
        str(partial),
    ]
    _run(command, [clip.path for clip in clips], work / "ffmpeg.log", chosen.duration, on_progress, timeout, on_start)
    try:
        written = probe(partial)
    except ProbeFailed as failed:
        raise MergeFailed("bad_output", None, failed.code) from None
    if abs(written.duration - chosen.duration) > max(1.0, 0.05 * chosen.duration):
        raise MergeFailed("bad_output", None, f"{written.duration:.1f} s instead of {chosen.duration:.1f} s")
    os.replace(partial, out)
    return chosen


def _quoted(path: Path) -> str:
    return str(path.resolve()).replace("'", "'\\''")


def filter_graph(clips: list[Clip], chosen: Plan) -> str:
    """One filter graph: per clip, the picture (ffmpeg turns it as its rotation says: autorotate is
    on) fitted into the frame and letterboxed, at the plan's frame rate, tone-mapped when HDR; the
    sound resampled to one layout, or silence as long as the clip; then all concatenated."""
    width, height, fps = chosen.width, chosen.height, chosen.fps
    parts = []
    for n, clip in enumerate(clips):
        video = f"[{n}:v:0]"
        if clip.hdr:
            video += "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv,"
        video += (
            f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags=bicubic,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps={fps.numerator}/{fps.denominator},"
            f"format=yuv420p,trim=duration={clip.duration:.3f},setpts=PTS-STARTPTS[v{n}]"
        )
        if clip.has_audio:
            audio = (
                f"[{n}:a:0]aresample={AUDIO_RATE}:async=1,aformat=sample_fmts=fltp:channel_layouts=stereo,"
                f"apad,atrim=duration={clip.duration:.3f},asetpts=PTS-STARTPTS[a{n}]"
            )
        else:
            audio = f"anullsrc=channel_layout=stereo:sample_rate={AUDIO_RATE},atrim=duration={clip.duration:.3f}[a{n}]"
        parts += [video, audio]
    joined = "".join(f"[v{n}][a{n}]" for n in range(len(clips)))
    parts.append(f"{joined}concat=n={len(clips)}:v=1:a=1[v][a]")
    return ";".join(parts)


# What ffmpeg prints, even when it exits 0, when a clip's media is cut short or damaged: the
# result would freeze on that clip's last good frame, so the merge fails instead.
_DAMAGE = ("partial file", "Decoding error", "Invalid data found when processing input", "Error while decoding")


# -- ffmpeg's life: tied to its worker's ------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once, here in the parent (Linux only; None elsewhere): between fork
    and exec the child only calls it, it loads nothing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def _dies_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn: the child gets SIGKILL when the thread that started it dies (a worker killed
    with SIGKILL, by the OOM killer…). None where the kernel cannot do that: the takeover's
    stop_ffmpeg is then the only guard."""
    prctl = _PRCTL
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl: no signal will come
            os._exit(137)

    return preexec


def start_ffmpeg(command: list[str], **popen: object) -> subprocess.Popen:
    """Popen for ffmpeg: a process group (session) of its own, killed with the thread that started it."""
    return subprocess.Popen(command, start_new_session=True, preexec_fn=_dies_with_parent(os.getpid()), **popen)


@dataclass(frozen=True)
class FfmpegRun:
    """A running ffmpeg, as another process can find it again: its pid, and its start time (psutil's
    create_time, in ms), which tells it from a later process that got the same pid."""

    pid: int
    started_ms: int


def _started_ms(process: psutil.Process) -> int:
    return int(process.create_time() * 1000)


def ffmpeg_process(run: FfmpegRun) -> psutil.Process | None:
    """The process, if `run` is still running and is still that ffmpeg (same start time, an ffmpeg
    binary): never another program that got its pid."""
    try:
        process = psutil.Process(run.pid)
        if process.status() == psutil.STATUS_ZOMBIE or abs(_started_ms(process) - run.started_ms) > 10:
            return None
        program = (process.cmdline() or [""])[0]
        if "ffmpeg" not in os.path.basename(program).lower() and "ffmpeg" not in process.name().lower():
            return None
        return process
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, ValueError):
        return None


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE  # a zombie runs no more
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True


def stop_ffmpeg(run: FfmpegRun, timeout: float = 10.0) -> bool:
    """Kill the ffmpeg `run` names, its process group with it, if it is still that ffmpeg; True
    once it is gone (or was gone, or is another program now, left alone)."""
    process = ffmpeg_process(run)
    if process is None:
        return True
    try:
        if hasattr(os, "killpg") and os.getpgid(run.pid) == run.pid:  # its own group, as start_ffmpeg made it
            os.killpg(run.pid, signal.SIGKILL)
        else:
            process.kill()  # psutil checks it is still the same process first
    except (ProcessLookupError, psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except (PermissionError, psutil.AccessDenied):
        log.error("ffmpeg %s could not be stopped: not ours to kill", run.pid)
        return False
    deadline = time.monotonic() + timeout
    while not _gone(process):
        if time.monotonic() > deadline:
            log.error("ffmpeg %s still runs %.0f s after SIGKILL", run.pid, timeout)
            return False
        time.sleep(0.02)
    log.warning("ffmpeg %s, left running by a worker that died, stopped", run.pid)
    return True


def _kill(process: subprocess.Popen) -> None:
    """Our own ffmpeg, and its group (not once it is reaped: its pid may be another's by then)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        process.kill()


def _run(
    command: list[str],
    sources: list[Path],
    log_path: Path,
    duration: float,
    on_progress: Callable[[float], None] | None,
    timeout: float,
    on_start: Callable[[FfmpegRun], None] | None = None,
) -> None:
    """Run ffmpeg, following its progress; its messages go to a file (a pipe left unread would
    stall it). Raises MergeFailed naming the clip at fault when ffmpeg names one."""
    with open(log_path, "w+", encoding="utf-8", errors="replace") as messages:
        process = start_ffmpeg(command, stdout=subprocess.PIPE, stderr=messages, text=True, errors="replace")
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            _kill(process)

        # A watchdog, not a task: it only kills an ffmpeg that outlived its time (it may hang silent).
        watchdog = threading.Timer(timeout, stop)
        watchdog.start()
        try:
            if on_start is not None:
                try:
                    started = _started_ms(psutil.Process(process.pid))
                except psutil.Error:  # gone already (it failed at once): nothing left to find again
                    started = None
                if started is not None:
                    on_start(FfmpegRun(process.pid, started))
            assert process.stdout is not None
            for line in process.stdout:
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and value.isdigit() and on_progress and duration > 0:
                    on_progress(min(1.0, int(value) / 1_000_000 / duration))
            process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                _kill(process)
                process.wait()
        messages.seek(0)
        error = messages.read().strip().splitlines()
    if timed_out.is_set():
        raise MergeFailed("too_slow")
    if process.returncode != 0:
        log.warning("ffmpeg exited %s: %s", process.returncode, " | ".join(error[-3:]))
        raise MergeFailed("ffmpeg", _culprit(error, sources), (error or [f"exit {process.returncode}"])[-1][:200])
    damaged = [line for line in error if any(sign in line for sign in _DAMAGE)]
    if damaged:
        log.warning("ffmpeg read a damaged clip: %s", " | ".join(damaged[:3]))
        culprit = _culprit(damaged, sources)
        raise MergeFailed("unreadable", culprit if culprit is not None else _damaged_clip(sources), damaged[0][:200])


def _culprit(error: list[str], sources: list[Path]) -> int | None:
    """Which clip ffmpeg's messages name (its path, or its input number), if any."""
    text = " ".join(error)
    named = next((n for n, path in enumerate(sources) if str(path) in text or str(path.resolve()) in text), None)
    if named is not None:
        return named
    found = re.search(r"(?:input #|in#)(\d+)(?!/concat)", text)
    return int(found.group(1)) if found and int(found.group(1)) < len(sources) else None


def _damaged_clip(sources: list[Path]) -> int | None:
    """The first clip whose media cannot be read to its end (read, not decoded: quick)."""
    for index, path in enumerate(sources):
        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-c", "copy"]
        reader = start_ffmpeg(
            [*command, "-f", "null", "-"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace"
        )
        try:
            _, stderr = reader.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            _kill(reader)
            reader.wait()
            return index
        if reader.returncode != 0 or any(sign in stderr for sign in _DAMAGE):
            return index
    return None


def poster_frame(path: Path, out: Path, at: float = 0.5) -> None:
    """A still of the video (JPEG), with moviepy's reader: for the customer page and the Files view."""
    from moviepy import VideoFileClip
    from PIL import Image

    with VideoFileClip(str(path), audio=False) as clip:  # closed: moviepy leaves ffmpeg running otherwise
        frame = clip.get_frame(min(at, max(0.0, clip.duration - 0.05)))
    Image.fromarray(frame).save(out, "JPEG", quality=85)
