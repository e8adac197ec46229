"""Merge videos, from the Files modal to the merged MP4 in the channel: signed requests to the app,
the Web API calls it makes to the fake Slack, small real clips, the result probed and decoded."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from blocks import ids
from media.blob_store import BlobStore
from media.video_probe import probe
from storage.db import database
from storage.models import MergeJob, RoFile, StaffUser, TaskRecord
from storage.values import MERGED_FILE
from tests.support.clips import clip, dominant, frame, mean_colour
from tests.support.factories import make_ro
from tests.support.files import files_env, jpeg_bytes, open_files, press_page, stored_file, submit, with_ticks
from tests.support.harness import SlackTestClient, start_app, wait_until
from tests.support.people import answer, dms_to


def _option_ids(view: dict) -> list[int]:
    return [
        int(o["value"])
        for b in view["blocks"]
        if b.get("type") == "input" and b["element"]["type"] == "checkboxes"
        for o in b["element"]["options"]
    ]


def _button(view: dict, action_id: str) -> dict | None:
    return next(
        (e for b in view["blocks"] if b.get("type") == "actions" for e in b["elements"] if e.get("action_id") == action_id), None
    )


def merge_click(view: dict, user: str = "UADVISOR") -> dict:
    """What Slack sends when "Merge videos" is pressed in the Files modal."""
    return {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "view": view,
        "container": {"type": "view", "view_id": view["id"]},
        "actions": [{"type": "button", "action_id": ids.MERGE_START, "block_id": "files_merge", "value": "merge"}],
    }


def press_merge(client: SlackTestClient, fake_slack, view: dict, user: str = "UADVISOR") -> dict:
    """Press "Merge videos" in the Files modal; the screen the modal is updated to."""
    before = len(fake_slack.calls_to("views.update"))
    response = client.action(merge_click(view, user))
    assert response.status_code == 200, response.text
    [call] = fake_slack.wait_for("views.update", before + 1)[before:]
    return call.args["view"] if isinstance(call.args["view"], dict) else json.loads(call.args["view"])


def stored_clip(app, ro, tmp_path: Path, name: str, minutes_ago: int = 0, **made) -> RoFile:
    path = clip(tmp_path, **made)
    mimetype = "video/quicktime" if path.suffix == ".mov" else "video/mp4"
    return stored_file(app, ro, path.read_bytes(), name, mimetype, minutes_ago=minutes_ago)


def finished(job_id: int, timeout: float = 60) -> MergeJob:
    """The job once its task is over (the note drawn, the requester told), not only its status."""
    wait_until(
        lambda: (record := TaskRecord.get_or_none(TaskRecord.key == f"merge:{job_id}")) and record.status in ("done", "failed"),
        timeout=timeout,
        message="the merge task",
    )
    return MergeJob.get_by_id(job_id)


def notes(fake_slack, ro) -> list[dict]:
    return [
        m
        for m in fake_slack.messages.get(ro.channel_id, [])
        if any(b.get("block_id", "").startswith("merge_note_") for b in m.get("blocks", []))
    ]


def no_temporary_files(app) -> bool:
    folder = Path(app.settings.media_dir) / "tmp"
    return not folder.exists() or not any(p.name.startswith("merge-") for p in folder.iterdir())


def test_ticked_videos_are_merged_in_recording_order_into_a_new_file_in_the_channel(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    # Shared in one order, filmed in another: the first filmed (red over blue) was shared last.
    walk = stored_clip(app, ro, tmp_path, "walkaround.mp4", minutes_ago=9, seconds=1.0, created="2026-12-03T09:02:00Z")
    tyre = stored_clip(app, ro, tmp_path, "tyre.mp4", minutes_ago=8, seconds=1.5)  # no time of its own: Slack's
    first = stored_clip(
        app, ro, tmp_path, "first.mp4", minutes_ago=1, seconds=1.2, two_colours=True, created="2026-12-03T09:00:00Z"
    )
    photo = stored_file(app, ro, jpeg_bytes(), "photo.jpg", "image/jpeg", minutes_ago=2)
    view = open_files(client, fake_slack, ro)
    assert set(_option_ids(view)) == {walk.id, tyre.id, first.id, photo.id}
    assert _button(view, ids.MERGE_START)["text"]["text"] == "🎬 Fusionner les vidéos"  # UADVISOR's Slack is in French

    screen = press_merge(client, fake_slack, with_ticks(view, [tyre.id, first.id, walk.id]))
    assert "3" in json.dumps(screen["blocks"], ensure_ascii=False) and "Fusion" in json.dumps(screen, ensure_ascii=False)
    [job] = MergeJob.select()
    job = finished(job.id)
    assert job.status == "done", job.error

    [upload] = fake_slack.uploads
    assert upload["channels"] == [ro.channel_id] and upload["filename"].startswith(f"RO-{ro.ro_number}-")
    merged = tmp_path / "downloaded.mp4"
    merged.write_bytes(upload["content"])
    described = probe(merged)
    assert described.video_codec == "h264" and described.has_audio
    assert abs(described.duration - 3.7) < 0.2
    opening = frame(merged, 0.3, tmp_path)
    assert dominant(mean_colour(opening, 0.1, 0.05, 0.9, 0.4)) == "red", "the first filmed plays first"

    result = RoFile.get_by_id(job.result_id)
    assert result.origin == MERGED_FILE and result.kind == "video" and result.slack_file_id == upload["id"]
    assert json.loads(result.derived_from) == [first.id, walk.id, tyre.id]
    assert BlobStore(app.settings.media_dir).path_for(result.sha256).read_bytes() == upload["content"]

    [note] = notes(fake_slack, ro)  # one note, updated in place
    assert "Fusion de 3 vidéos" in fake_slack.calls_to("chat.postMessage")[-1].args["text"]
    assert "✅" in note["text"] and result.name in note["text"]
    assert no_temporary_files(app)

    again = open_files(client, fake_slack, ro)
    assert result.id in _option_ids(again), "the merged video can be ticked for the customer like any file"


def test_someone_who_may_not_send_merges_with_the_modals_own_button(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    StaffUser.create(slack_user_id="UTECH", name="luc", locale="en-US", can_message_customers=False)
    clips = [stored_clip(app, ro, tmp_path, f"IMG_{n}.MOV", minutes_ago=n) for n in range(2)]
    view = open_files(client, fake_slack, ro, user="UTECH")
    assert view["submit"]["text"] == "Merge videos" and _button(view, ids.MERGE_START) is None
    assert "not allowed to send" in json.dumps(view["blocks"])
    reply = submit(client, with_ticks(view, [c.id for c in clips]), user="UTECH")
    assert reply["response_action"] == "update" and "Merging 2 videos" in json.dumps(reply["view"])
    [job] = MergeJob.select()
    assert finished(job.id).status == "done" and job.requested_by == "UTECH"
    assert len(fake_slack.uploads) == 1


def test_one_video_ticked_is_refused_in_the_modal_and_nothing_is_queued(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
    screen = press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [clips[0].id]))
    notice = next(b for b in screen["blocks"] if b.get("block_id") == "files_notice")["text"]["text"]
    assert "au moins deux vidéos" in notice
    assert MergeJob.select().count() == 0 and TaskRecord.select().where(TaskRecord.name == "merge.run").count() == 0


def test_a_photo_ticked_with_the_videos_is_named_and_escaped(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
    photo = stored_file(app, ro, jpeg_bytes(), "<!channel> & co.jpg", "image/jpeg")
    screen = press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [*(c.id for c in clips), photo.id]))
    notice = next(b for b in screen["blocks"] if b.get("block_id") == "files_notice")["text"]["text"]
    assert "&lt;!channel&gt; &amp; co.jpg" in notice and "<!channel>" not in notice
    assert MergeJob.select().count() == 0


def test_forty_clips_are_refused_with_the_limit(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    one = clip(tmp_path).read_bytes()
    files = [stored_file(app, ro, one + bytes([n]), f"c{n:02d}.mp4", "video/mp4", minutes_ago=n) for n in range(40)]
    view = open_files(client, fake_slack, ro)
    for page in range(1, 4):  # ten ticked on each of the four pages
        view = press_page(client, fake_slack, with_ticks(view, [f.id for f in files]), "files.next", str(page))
    screen = press_merge(client, fake_slack, with_ticks(view, [f.id for f in files]))
    notice = next(b for b in screen["blocks"] if b.get("block_id") == "files_notice")["text"]["text"]
    assert "40" in notice and str(app.settings.merge_max_clips) in notice
    assert MergeJob.select().count() == 0


def test_a_clip_not_yet_in_storage_is_refused_by_name(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
    view = open_files(client, fake_slack, ro)
    BlobStore(app.settings.media_dir).path_for(clips[1].sha256).unlink()  # lost after the modal was drawn
    screen = press_merge(client, fake_slack, with_ticks(view, [c.id for c in clips]))
    notice = next(b for b in screen["blocks"] if b.get("block_id") == "files_notice")["text"]["text"]
    assert "c1.mp4" in notice and "c0.mp4" not in notice
    assert MergeJob.select().count() == 0


def test_too_much_video_by_weight_is_refused_with_the_limit(fake_slack, sqlite_url, tmp_path, twilio, smtp):
    from tests.support.files import files_env
    from tests.support.harness import start_app

    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, smtp, MERGE_MAX_MB="1"))
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro = make_ro(fake_slack, members=("UTECH",))
        clips = [stored_clip(running, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
        RoFile.update(size=700_000).execute()  # as Slack reported them: 1.4 MB together
        screen = press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [c.id for c in clips]))
        notice = next(b for b in screen["blocks"] if b.get("block_id") == "files_notice")["text"]["text"]
        assert "1 Mo" in notice
        assert MergeJob.select().count() == 0
    finally:
        running.stop()


def test_a_damaged_clip_fails_the_merge_naming_it_and_the_requester_is_told(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    good = stored_clip(app, ro, tmp_path, "good.mp4", minutes_ago=3)
    whole = clip(tmp_path, seconds=2).read_bytes()
    bad = stored_file(app, ro, whole[: len(whole) // 2], "IMG_<b>_0042.MOV", "video/quicktime", minutes_ago=2)
    press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [good.id, bad.id]))
    [job] = MergeJob.select()
    job = finished(job.id)
    assert (job.status, job.failed_clip) == ("failed", bad.name)
    assert fake_slack.uploads == [] and RoFile.select().where(RoFile.origin == MERGED_FILE).count() == 0
    [note] = notes(fake_slack, ro)
    assert "❌" in note["text"] and "IMG_&lt;b&gt;_0042.MOV" in note["text"]
    told = wait_until(lambda: dms_to(fake_slack, "UADVISOR"), message="the requester's DM")
    assert "IMG_&lt;b&gt;_0042.MOV" in told[-1]["text"] and "échoué" in told[-1]["text"]
    assert no_temporary_files(app)


def test_a_clip_removed_from_storage_after_the_merge_was_queued_fails_cleanly(app, client, fake_slack, tmp_path):
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
    hold = fake_slack.hold("chat.postMessage")  # the merge waits on its first note
    press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [c.id for c in clips]))
    assert hold.arrived.wait(20)
    BlobStore(app.settings.media_dir).path_for(clips[0].sha256).unlink()
    hold.release()
    [job] = MergeJob.select()
    job = finished(job.id)
    assert (job.status, job.error, job.failed_clip) == ("failed", "missing", "c0.mp4")
    assert fake_slack.uploads == []


def test_slash_ro_answers_while_a_merge_runs_and_merges_of_one_ro_run_one_at_a_time(
    fake_slack, sqlite_url, tmp_path, twilio, smtp
):
    # Room for three merges at once and three workers: nothing but the RO's lane can keep its second merge back.
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, twilio, smtp, MERGE_CONCURRENCY="3"), workers=3)
    try:
        client = SlackTestClient(running.url, fake_slack)
        ro, other = make_ro(fake_slack, members=("UTECH",)), make_ro(fake_slack, members=("UTECH",))
        clips = [stored_clip(running, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(3)]
        others = [stored_clip(running, other, tmp_path, f"o{n}.mp4", minutes_ago=n) for n in range(2)]
        hold = fake_slack.hold("files.getUploadURLExternal", seconds=60)  # the first merge, held in its upload
        view = open_files(client, fake_slack, ro)
        press_merge(client, fake_slack, with_ticks(view, [clips[0].id, clips[1].id]))
        assert hold.arrived.wait(30), "the first merge reached its upload"
        [first] = MergeJob.select()
        assert first.status == "uploading"

        press_merge(client, fake_slack, with_ticks(view, [clips[1].id, clips[2].id]))
        second = MergeJob.get(MergeJob.id != first.id)
        # Queued after the RO's second merge, another RO's merge runs to its end while the first is
        # held: workers and slots were free for the second all along, and it has not started.
        press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, other), [c.id for c in others]))
        control = MergeJob.get(MergeJob.id.not_in([first.id, second.id]))
        assert finished(control.id).status == "done"
        assert MergeJob.get_by_id(first.id).status == "uploading" and not hold.answered.is_set()
        assert MergeJob.get_by_id(second.id).status == "queued", "the RO's other merge waits for the first"
        assert TaskRecord.get(TaskRecord.key == f"merge:{second.id}").attempts == 0, "waiting for the lane spends no attempt"
        assert not [n for n in notes(fake_slack, ro) if f"merge_note_{second.id}" in json.dumps(n)], "no note yet"

        assert client.command("/ro help", channel_id=ro.channel_id).status_code == 200
        assert "/ro" in answer(fake_slack)["text"], "/ro answers while a merge holds a worker"

        hold.release()
        assert finished(first.id).status == "done" and finished(second.id).status == "done"
        assert len(fake_slack.uploads) == 3
    finally:
        running.stop()


def test_a_double_click_on_merge_makes_one_merged_video(fake_slack, database_url, tmp_path, twilio, smtp):
    app = start_app(files_env(fake_slack, database_url, tmp_path, twilio, smtp))
    try:
        _double_click(app, SlackTestClient(app.url, fake_slack), fake_slack, tmp_path)
    finally:
        app.stop()


def _double_click(app, client, fake_slack, tmp_path) -> None:
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
    view = with_ticks(open_files(client, fake_slack, ro), [c.id for c in clips])
    before = len(fake_slack.calls_to("views.update"))
    start = threading.Barrier(2)
    answers: list = []

    def press() -> None:
        start.wait(5)
        answers.append(client.action(merge_click(view)))

    presses = [threading.Thread(target=press) for _ in range(2)]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join(30)
    assert [r.status_code for r in answers] == [200, 200]
    screens = fake_slack.wait_for("views.update", before + 2)[before:]
    assert all("Fusion de 2" in json.dumps(c.args["view"], ensure_ascii=False) for c in screens), "both presses answered"
    [job] = MergeJob.select()
    assert TaskRecord.select().where(TaskRecord.name == "merge.run").count() == 1
    assert finished(job.id).status == "done"
    app.services.tasks.wait_idle(30)
    assert len(fake_slack.uploads) == 1, "one merged video in the channel"
    assert RoFile.select().where(RoFile.origin == MERGED_FILE).count() == 1
    assert len(notes(fake_slack, ro)) == 1

    # Another choice of videos in the same modal is another merge.
    third = stored_clip(app, ro, tmp_path, "c2.mp4", minutes_ago=3)
    press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [clips[0].id, third.id]))
    assert MergeJob.select().count() == 2


def test_a_merge_whose_video_was_recorded_before_a_crash_finishes_as_done_without_a_second_upload(
    app, client, fake_slack, tmp_path
):
    """As a worker that died between recording the merged video and marking its job done leaves it."""
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
    made = stored_clip(app, ro, tmp_path, "made.mp4", seconds=2)
    name = f"RO-{ro.ro_number}-video-77.mp4"
    RoFile.update(origin=MERGED_FILE, name=name, derived_from=json.dumps([c.id for c in clips])).where(
        RoFile.id == made.id
    ).execute()
    job = MergeJob.create(
        ro=ro.id, requested_by="UADVISOR", file_ids=json.dumps([c.id for c in clips]), status="uploading", upload_name=name
    )
    app.services.tasks.enqueue("merge.run", job.id, key=f"merge:{job.id}", lane=f"merge:{ro.id}")
    job = finished(job.id)
    assert (job.status, job.result_id, job.error) == ("done", made.id, None)
    assert TaskRecord.get(TaskRecord.key == f"merge:{job.id}").status == "done"
    assert fake_slack.uploads == [], "no second video"
    assert RoFile.select().where(RoFile.origin == MERGED_FILE).count() == 1
    [note] = notes(fake_slack, ro)
    assert "✅" in note["text"] and name in note["text"] and "2 s" in note["text"]


def test_the_merged_video_and_the_jobs_done_are_written_together(app, client, fake_slack, tmp_path):
    """The job's "done" fails on the first attempt (a trigger in the database): the merged video's
    row goes with it, and the next attempt finishes the merge with the video already uploaded."""
    ro = make_ro(fake_slack, members=("UTECH",))
    clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
    database.obj.execute_sql(
        "CREATE TRIGGER done_fails_once BEFORE UPDATE OF status ON merge_job "
        "WHEN NEW.status = 'done' AND (SELECT attempts FROM task_record WHERE key = 'merge:' || NEW.id) = 1 "
        "BEGIN SELECT RAISE(ABORT, 'the database failed'); END"
    )
    redrawn = fake_slack.hold("chat.update", seconds=60)  # the next attempt's first redraw of the note
    press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [c.id for c in clips]))
    assert redrawn.arrived.wait(60), "a second attempt"
    [job] = MergeJob.select()
    assert TaskRecord.get(TaskRecord.key == f"merge:{job.id}").attempts == 2
    assert len(fake_slack.uploads) == 1, "the first attempt uploaded"
    assert RoFile.select().where(RoFile.origin == MERGED_FILE).count() == 0, "its row went with the failed 'done'"
    assert job.status != "done" and job.result_id is None
    redrawn.release()
    job = finished(job.id)
    assert job.status == "done", job.error
    assert len(fake_slack.uploads) == 1, "found in the channel, not uploaded again"
    [result] = RoFile.select().where(RoFile.origin == MERGED_FILE)
    assert job.result_id == result.id and result.slack_file_id == fake_slack.uploads[0]["id"]
    assert "✅" in notes(fake_slack, ro)[0]["text"]


def test_progress_is_reported_while_ffmpeg_works(tmp_path):
    from media.video_merge import merge, probe_clips

    seen: list[float] = []
    work = tmp_path / "work"
    work.mkdir()
    merge(probe_clips([clip(tmp_path, seconds=2), clip(tmp_path, seconds=2, fps=24)]), tmp_path / "m.mp4", work, seen.append)
    assert seen and seen == sorted(seen) and 0.5 < seen[-1] <= 1.0


@pytest.mark.parametrize("code", ["too_few", "too_many", "not_video", "missing", "too_large", "gone"])
def test_every_refusal_has_words_in_both_languages(code):
    from core.i18n import t

    values = {"count": 40, "limit": 20, "names": "x.jpg", "size": 3, "minutes": 2}
    for locale in ("en", "fr"):
        text = t(f"merge.refused.{code}", locale, **values)
        assert text and not text.startswith("merge.")


def test_merges_across_ros_wait_for_a_free_slot(app, client, fake_slack, tmp_path):
    assert app.settings.merge_concurrency == 1
    ros = [make_ro(fake_slack, members=("UTECH",)) for _ in range(2)]
    hold = fake_slack.hold("files.getUploadURLExternal", seconds=30)
    for ro in ros:
        clips = [stored_clip(app, ro, tmp_path, f"c{n}.mp4", minutes_ago=n) for n in range(2)]
        press_merge(client, fake_slack, with_ticks(open_files(client, fake_slack, ro), [c.id for c in clips]))
    assert hold.arrived.wait(30)
    running, waiting = sorted(MergeJob.select(), key=lambda job: job.status != "uploading")
    assert running.status == "uploading" and waiting.status == "queued", "one slot: the other RO's merge waits"
    hold.release()
    assert finished(running.id).status == "done" and finished(waiting.id).status == "done"
    record = TaskRecord.get(TaskRecord.key == f"merge:{waiting.id}")
    assert record.attempts == 1, "waiting for a slot spends no attempt"
