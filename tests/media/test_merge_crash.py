"""A worker process killed with SIGKILL in the middle of a merge: the next worker finishes it, and
the channel gets one merged video and one note; nothing half-made is posted or left on disk; the
ffmpeg it was running does not outlive it.

Real processes (`python bot.py worker`), a real SIGKILL, the fake Slack holding the call in flight.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from core.processes import holder_id
from media import merge_flow
from media.video_merge import start_ffmpeg
from media.video_probe import ffmpeg_exe
from storage.models import MergeJob, RepairOrder, RoFile, TaskRecord
from storage.values import MERGED_FILE
from tests.media.test_merge_flow import no_temporary_files, notes, stored_clip
from tests.support.factories import make_ro
from tests.support.files import files_env
from tests.support.harness import start_app, wait_until
from tests.support.processes import ROOT, kill, stop, worker

LINUX = sys.platform.startswith("linux")


@pytest.fixture
def web(fake_slack, database_url, tmp_path, twilio):
    """The web process alone (no task workers in it): merges wait for a worker process."""
    env = files_env(fake_slack, database_url, tmp_path, twilio, None)
    running = start_app(env, workers=0)
    yield running, env
    running.stop()


@pytest.mark.parametrize(
    "held", ["chat.postMessage", "files.completeUploadExternal"], ids=["killed posting its note", "killed uploading"]
)
def test_a_worker_killed_mid_merge_leaves_one_merged_video_and_one_note(web, fake_slack, tmp_path, held):
    running, env = web
    log = tmp_path / "workers.log"
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(running, ro, tmp_path, f"IMG_{n}.MOV", minutes_ago=n, seconds=1) for n in range(3)]
    job = merge_flow.start_merge(running.services, ro, "UADVISOR", [c.id for c in clips])

    hold = fake_slack.hold(held, seconds=60)
    first = worker(env, log)
    try:
        assert hold.arrived.wait(60), "the first worker never got there:\n" + log.read_text()
        kill(first)
    finally:
        stop(first)
    hold.release()  # the held call goes through; its client is gone
    assert hold.answered.wait(10)

    second = worker(env, log)
    try:
        done = wait_until(
            lambda: (row := MergeJob.get_by_id(job.id)).status in ("done", "failed") and row,
            timeout=90,
            message="the merge finished by the second worker",
        )
        running.services.tasks.wait_idle(timeout=60)
    finally:
        stop(second)
    assert done.status == "done", log.read_text()
    assert len(fake_slack.uploads) == 1, "one merged video in the channel"
    assert RoFile.select().where(RoFile.origin == MERGED_FILE).count() == 1
    [note] = notes(fake_slack, ro)
    assert "✅" in note["text"], "the one note says it is done"
    [record] = TaskRecord.select().where(TaskRecord.name == "merge.run")
    assert (record.status, record.attempts) == ("done", 2), "taken over from the dead worker"
    assert no_temporary_files(running)


# -- ffmpeg does not outlive its worker -------------------------------------------------------------


def worker_without_prctl(env: dict, log: Path) -> subprocess.Popen:
    """`bot.py worker` as it runs where the kernel cannot kill a child with its parent (no
    PR_SET_PDEATHSIG): only the takeover can stop the ffmpeg it leaves behind."""
    code = "import sys, bot, media.video_merge as m; m._PRCTL = None; sys.exit(bot.main(['worker', '--workers', '1']))"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env, "DOTENV_PATH": os.devnull},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def encoding(job_id: int) -> psutil.Process | None:
    """The ffmpeg recorded on the job, once it runs (an ffmpeg binary, started when recorded)."""
    row = MergeJob.get_by_id(job_id)
    if not row.ffmpeg_pid:
        return None
    try:
        process = psutil.Process(row.ffmpeg_pid)
        same = abs(int(process.create_time() * 1000) - row.ffmpeg_started) <= 10
        if same and "ffmpeg" in Path(process.cmdline()[0]).name and process.status() != psutil.STATUS_ZOMBIE:
            return process
    except (psutil.Error, IndexError):
        pass
    return None


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE  # a zombie runs nothing
    except psutil.Error:
        return True


@pytest.mark.parametrize(
    "first_worker",
    [
        pytest.param(
            worker,
            id="the kernel kills it with its worker",
            marks=pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's"),
        ),
        pytest.param(worker_without_prctl, id="the takeover kills it"),
    ],
)
def test_the_ffmpeg_of_a_worker_killed_mid_encode_does_not_outlive_it(web, fake_slack, tmp_path, first_worker):
    running, env = web
    log = tmp_path / "workers.log"
    ro = make_ro(fake_slack, members=("UTECH",))
    # A real encode that lasts: a 720p first clip sets the frame, a long small one fills it.
    clips = [
        stored_clip(running, ro, tmp_path, "IMG_0.MOV", minutes_ago=5, size="1280x720", seconds=0.2),
        stored_clip(running, ro, tmp_path, "IMG_1.MOV", minutes_ago=1, size="320x180", seconds=8, fps=24),
    ]
    job = merge_flow.start_merge(running.services, ro, "UADVISOR", [c.id for c in clips])

    first = first_worker(env, log)
    try:
        ffmpeg = wait_until(lambda: encoding(job.id), timeout=60, message="ffmpeg encoding, its pid recorded")
        # Frozen mid-encode, so that however fast the machine, it is still encoding when its worker dies.
        ffmpeg.suspend()
        kill(first)
    finally:
        stop(first)
    try:
        if first_worker is worker:
            wait_until(lambda: gone(ffmpeg), timeout=10, message="ffmpeg killed with its worker")
        else:
            assert not gone(ffmpeg), "left behind: its worker could not take it along"
            assert encoding(job.id) is not None, "still recorded on the job"

        second = worker(env, log)
        try:
            done = wait_until(
                lambda: (row := MergeJob.get_by_id(job.id)).status in ("done", "failed") and row,
                timeout=120,
                message="the merge finished by the second worker",
            )
            running.services.tasks.wait_idle(timeout=60)
        finally:
            stop(second)
        assert gone(ffmpeg), "the first worker's ffmpeg does not run on beside the second's"
    finally:
        if not gone(ffmpeg):
            ffmpeg.kill()
    assert done.status == "done", log.read_text()
    assert len(fake_slack.uploads) == 1, "one merged video in the channel"
    assert RoFile.select().where(RoFile.origin == MERGED_FILE).count() == 1
    merged = MergeJob.get_by_id(job.id)
    assert (merged.mode, merged.ffmpeg_pid, merged.ffmpeg_holder) == ("encode", None, None)
    [record] = TaskRecord.select().where(TaskRecord.name == "merge.run")
    assert (record.status, record.attempts) == ("done", 2), "taken over from the dead worker"
    assert no_temporary_files(running)


def _dead_holder() -> str:
    """The holder id a worker of this machine had, now that its process is gone."""
    gone_process = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_process.wait()
    return f"{socket.gethostname()}:{gone_process.pid}:1:deadbeef"


def _long_ffmpeg() -> subprocess.Popen:
    source = "testsrc=size=64x64:rate=10"
    return start_ffmpeg(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", source, "-t", "120", "-f", "null", "-"]
    )


def test_a_takeover_stops_only_the_ffmpeg_of_a_dead_worker_and_never_a_recycled_pid(db):
    ro = RepairOrder.create(source="file", external_id="1", ro_number="1")
    orphan, busy = _long_ffmpeg(), _long_ffmpeg()
    stranger = subprocess.Popen(["sleep", "120"])  # a process that got a dead ffmpeg's pid
    started = {p.pid: int(psutil.Process(p.pid).create_time() * 1000) for p in (orphan, busy, stranger)}
    dead = _dead_holder()

    def job(process: subprocess.Popen, holder: str, shift: int = 0) -> MergeJob:
        return MergeJob.create(
            ro=ro.id,
            requested_by="UADVISOR",
            file_ids=json.dumps([1, 2]),
            ffmpeg_pid=process.pid,
            ffmpeg_started=started[process.pid] + shift,
            ffmpeg_holder=holder,
        )

    try:
        of_dead_worker = job(orphan, dead)
        of_live_worker = job(busy, holder_id())  # this process: alive
        recycled_by_a_stranger = job(stranger, dead)
        recycled_by_another_ffmpeg = job(busy, dead, shift=-60_000)  # that pid's ffmpeg of a minute before
        assert merge_flow.stop_orphans() == 3
        assert orphan.wait(10) == -signal.SIGKILL, "the dead worker's ffmpeg, stopped"
        assert busy.poll() is None and stranger.poll() is None, "nothing else"
        assert os.getpgid(busy.pid) == busy.pid, "each ffmpeg leads a process group of its own"
        cleared = [of_dead_worker, recycled_by_a_stranger, recycled_by_another_ffmpeg]
        assert all(MergeJob.get_by_id(j.id).ffmpeg_pid is None for j in cleared)
        assert MergeJob.get_by_id(of_live_worker.id).ffmpeg_pid == busy.pid
    finally:
        for process in (orphan, busy, stranger):
            if process.poll() is None:
                process.kill()
            process.wait()
