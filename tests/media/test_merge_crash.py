"""A worker process killed with SIGKILL in the middle of a merge: the next worker finishes it, and
the channel gets one merged video and one note; nothing half-made is posted or left on disk.

Real processes (`python bot.py worker`), a real SIGKILL, the fake Slack holding the call in flight.
"""

from __future__ import annotations

import pytest

from media import merge_flow
from storage.models import MergeJob, RoFile, TaskRecord
from storage.values import MERGED_FILE
from tests.media.test_merge_flow import no_temporary_files, notes, stored_clip
from tests.support.factories import make_ro
from tests.support.files import files_env
from tests.support.harness import start_app, wait_until
from tests.support.processes import kill, stop, worker


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
