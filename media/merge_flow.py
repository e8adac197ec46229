"""Merging videos, the Slack side: from the Files modal's button to the merged MP4 in the channel.

`start_merge` checks the ticked files (media.merge_rules) and queues "merge.run" before Slack gets
its answer. The task runs in the RO's own lane (one merge at a time per RO) and holds one of
MERGE_CONCURRENCY slots (a lease each) while ffmpeg works, so a shop's workers never run more
merges at once than the machine can take. It posts a note that follows the merge ("Merging 3
videos… 40 %"), joins the clips in recording order (media.video_merge), checks the result, stores
it, uploads it to the channel, and records it as a file derived from its sources. Temporary files
live in one folder per job, emptied at every start (a killed attempt leaves nothing that counts)
and removed at the end; a half-written video is never posted.

Once, whatever happens:
- a press of Merge is one job: the Files modal's view id and the ticked files make the job's
  `request_key` (a unique index), so a double click finds the first job instead of a second video;
- the merged video's file row and the job's "done" are one transaction; an attempt that finds the
  video already recorded (by a worker that died after recording it) finishes the job as done,
  without ffmpeg and without a second upload;
- the ffmpeg a dead worker left running is stopped before its slot's next merge starts (its pid,
  start time and worker are on the job; media.video_merge checks it is still that ffmpeg), so no
  more than MERGE_CONCURRENCY run: Linux kills it with its worker anyway, other systems do not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from huey.exceptions import RetryTask
from peewee import IntegrityError

from blocks import kit
from blocks import merge_view as views
from core.i18n import t
from core.processes import holder_is_dead
from media import merge_rules as rules
from media.blob_store import open_store
from media.video_merge import FfmpegRun, MergeFailed, merge, probe_clips, stop_ffmpeg
from media.video_probe import ProbeFailed, probe
from slackapi.errors import SlackError
from slackapi.services import Services
from storage import leases
from storage.db import database
from storage.models import MergeJob, RepairOrder, RoFile, utcnow
from storage.values import MERGED_FILE, VIDEO
from taskqueue.queue import task

log = logging.getLogger(__name__)
SLOT_TTL = timedelta(seconds=60)
PROGRESS_EVERY_SECONDS = 2.0


def request_key(view_id: str, file_ids: list[int]) -> str:
    """One press of Merge: this Files modal (Slack's view id, the same for the life of the modal)
    and this set of ticked files, in any order."""
    ticked = ",".join(str(i) for i in sorted({int(i) for i in file_ids}))
    return f"{view_id[:64]}:{hashlib.sha256(ticked.encode()).hexdigest()[:40]}"


def start_merge(services: Services, ro: RepairOrder, user_id: str, file_ids: list[int], view_id: str | None = None) -> MergeJob:
    """Queue a merge of the ticked videos. Raises rules.MergeRefused (nothing is queued). With the
    modal's `view_id`, the same press again (a double click, Slack's retry) returns the job the
    first one queued, checked or not, and queues nothing."""
    key = request_key(view_id, file_ids) if view_id else None
    if key is not None:
        pressed = MergeJob.get_or_none(MergeJob.request_key == key)
        if pressed is not None:
            return pressed
    files = rules.check(ro, file_ids, services.settings)
    try:
        with database.atomic():  # the job and its task together, or neither
            job = MergeJob.create(ro=ro.id, requested_by=user_id, file_ids=json.dumps([f.id for f in files]), request_key=key)
            services.tasks.enqueue("merge.run", job.id, key=f"merge:{job.id}", lane=f"merge:{ro.id}")
    except IntegrityError:
        if key is None:
            raise
        return MergeJob.get(MergeJob.request_key == key)  # the other press, in another thread, won
    return job


def _gave_up(services: Services, job_id: int, *, error: str) -> None:
    stop_orphans()  # its last attempt's worker may have died with ffmpeg running
    job = MergeJob.get_or_none(MergeJob.id == job_id)
    if job is not None and job.status not in ("done", "failed"):
        _fail(services, job, "internal", None)


@task("merge.run", max_attempts=3, claim_ttl=timedelta(minutes=2), on_give_up=_gave_up)
def run_merge(services: Services, job_id: int) -> None:
    job = MergeJob.get_or_none(MergeJob.id == job_id)
    if job is None or job.status == "failed":
        return
    ro = RepairOrder.get_by_id(job.ro_id)
    if job.status != "done" and _recorded_before(job, ro):
        job = MergeJob.get_by_id(job.id)
    if job.status == "done":  # made and recorded before a crash: only the note may be missing
        if not job.note_ts:
            job.note_ts = _posted_note(services, ro, job)
        _finish_note(services, job, ro, len(json.loads(job.file_ids)))
        return
    for slot in range(services.settings.merge_concurrency):
        try:
            with leases.held(f"merge-slot:{slot}", SLOT_TTL) as holder:
                stop_orphans()
                _run(services, job, holder)
            return
        except leases.LeaseBusy:
            continue
    raise RetryTask(delay=3)  # every slot is busy: wait for one, without spending an attempt


def stop_orphans() -> int:
    """Stop every ffmpeg whose worker died on this machine (killed, OOM) and that still runs: a
    slot taken over at once from a dead holder must not run two merges. A recorded pid that is no
    longer that ffmpeg is left alone. Returns how many records of dead workers were cleared."""
    cleared = 0
    for job in MergeJob.select().where(MergeJob.ffmpeg_pid.is_null(False)):
        if not holder_is_dead(job.ffmpeg_holder):  # alive, or on another machine (whose kernel kills it)
            continue
        if not stop_ffmpeg(FfmpegRun(job.ffmpeg_pid, job.ffmpeg_started or 0)):
            continue  # logged; the next takeover tries again
        cleared += 1
        MergeJob.update(ffmpeg_pid=None, ffmpeg_started=None, ffmpeg_holder=None).where(
            (MergeJob.id == job.id) & (MergeJob.ffmpeg_pid == job.ffmpeg_pid) & (MergeJob.ffmpeg_started == job.ffmpeg_started)
        ).execute()
    return cleared


def _recorded_before(job: MergeJob, ro: RepairOrder) -> bool:
    """The merged video of `job`, recorded by an attempt that died before it marked the job done
    (or by a version that wrote the two apart): the job is marked done with it. True if so."""
    if not job.upload_name:
        return False
    result = (
        RoFile.select()
        .where((RoFile.ro == ro.id) & (RoFile.origin == MERGED_FILE) & (RoFile.name == job.upload_name))
        .order_by(RoFile.id)
        .first()
    )
    if result is None:
        return False
    MergeJob.update(status="done", progress=100, result=result.id, finished_at=utcnow()).where(
        (MergeJob.id == job.id) & (MergeJob.status != "done")
    ).execute()
    log.info("merge %s in RO %s was recorded before a crash: done", job.id, ro.ro_number)
    return True


def _run(services: Services, job: MergeJob, holder: str) -> None:
    settings = services.settings
    ro = RepairOrder.get_by_id(job.ro_id)
    ids = json.loads(job.file_ids)
    files = {f.id: f for f in RoFile.select().where(RoFile.id.in_(ids))}
    rows = [files[i] for i in ids if i in files]
    if job.status != "queued" and not job.note_ts:  # an attempt before this one may have posted it
        job.note_ts = _posted_note(services, ro, job)
        MergeJob.update(note_ts=job.note_ts).where(MergeJob.id == job.id).execute()
    MergeJob.update(status="merging").where(MergeJob.id == job.id).execute()
    job.status = "merging"
    _draw(services, job, ro, len(rows))
    store = open_store(settings)
    work = Path(settings.media_dir) / "tmp" / f"merge-{job.id}"
    shutil.rmtree(work, ignore_errors=True)  # what a killed attempt left
    work.mkdir(parents=True)
    stack = ExitStack()  # the sources' local copies, released at the end
    try:
        if len(rows) != len(ids) or not all(store.has(r.sha256) for r in rows):
            missing = next((r.name for r in rows if not store.has(r.sha256)), None)
            _fail(services, job, "missing", missing)
            return
        try:
            # Files on this machine for ffmpeg: the blobs themselves, or downloads from the object store.
            sources = [stack.enter_context(store.local_copy(row.sha256)) for row in rows]
        except OSError:
            _fail(services, job, "storage", None)
            return
        try:
            clips = probe_clips(sources)
        except MergeFailed as failed:
            _fail(services, job, failed.code, rows[failed.clip].name if failed.clip is not None else None)
            return
        if rules.too_long(clips, settings):
            minutes = round(sum(c.duration for c in clips) / 60)
            _fail(services, job, "too_long", None, minutes=minutes, limit=settings.merge_max_minutes)
            return
        ordered = rules.recording_order(list(zip(rows, clips, strict=True)))
        last_drawn = [time.monotonic()]

        def progress(fraction: float) -> None:
            percent = int(fraction * 100)
            if percent > job.progress and time.monotonic() - last_drawn[0] >= PROGRESS_EVERY_SECONDS:
                job.progress = percent
                MergeJob.update(progress=percent).where(MergeJob.id == job.id).execute()
                _draw(services, job, ro, len(rows))
                last_drawn[0] = time.monotonic()

        def started(ffmpeg: FfmpegRun) -> None:  # for whoever takes over if this worker dies
            MergeJob.update(ffmpeg_pid=ffmpeg.pid, ffmpeg_started=ffmpeg.started_ms, ffmpeg_holder=holder).where(
                MergeJob.id == job.id
            ).execute()

        out = work / "merged.mp4"
        try:
            plan = merge([clip for _, clip in ordered], out, work, progress, on_start=started)
        except MergeFailed as failed:
            culprit = ordered[failed.clip][0].name if failed.clip is not None else None
            _fail(services, job, failed.code, culprit)
            return
        finally:
            MergeJob.update(ffmpeg_pid=None, ffmpeg_started=None, ffmpeg_holder=None).where(
                (MergeJob.id == job.id) & (MergeJob.ffmpeg_holder == holder)
            ).execute()
        try:
            sha, size = store.put_file(out)
        except OSError:
            _fail(services, job, "storage", None)
            return
        name = f"RO-{ro.ro_number}-{t('merge.file_word', ro.language)}-{job.id}.mp4"[:120]
        MergeJob.update(status="uploading", mode=plan.mode, upload_name=name).where(MergeJob.id == job.id).execute()
        uploaded = _uploaded_before(services, ro, name) or services.slack.upload(ro.channel_id, out, name)
        slack_file_id = str(uploaded.get("id") or f"merge{job.id}")[:32]
        made = dict(
            uploader_user_id=job.requested_by,
            origin=MERGED_FILE,
            derived_from=json.dumps([row.id for row, _ in ordered]),
            kind=VIDEO,
            name=name,
            mimetype="video/mp4",
            size=size,
            sha256=sha,
            copy_status="stored",
            permalink=uploaded.get("permalink") or None,
        )
        with database.atomic():  # the video's row and the job's "done": both, or neither
            try:
                with database.atomic():  # a savepoint: PostgreSQL's transaction survives the conflict
                    result = RoFile.create(ro=ro.id, slack_file_id=slack_file_id, **made)
            except IntegrityError:  # our upload, recorded already (by the intake, when files.info failed it)
                same = (RoFile.ro == ro.id) & (RoFile.slack_file_id == slack_file_id)
                RoFile.update(**made).where(same).execute()
                result = RoFile.get(same)
            MergeJob.update(status="done", progress=100, result=result.id, mode=plan.mode, finished_at=utcnow()).where(
                MergeJob.id == job.id
            ).execute()
        _finish_note(services, MergeJob.get_by_id(job.id), ro, len(rows), seconds=plan.duration)
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


def _uploaded_before(services: Services, ro: RepairOrder, name: str) -> dict | None:
    """Our upload of this merge, made before a crash and not recorded: found, not uploaded again."""
    for message in services.slack.history(ro.channel_id, limit=100):
        for file in message.get("files") or []:
            if file.get("name") == name and file.get("user") == services.slack.bot_user_id:
                return file
    return None


def _posted_note(services: Services, ro: RepairOrder, job: MergeJob) -> str | None:
    """The note an attempt killed before it could record it posted, if it did."""
    block_id = views.note_block_id(job.id)
    for message in services.slack.history(ro.channel_id, limit=100):
        if message.get("user") == services.slack.bot_user_id and any(
            b.get("block_id") == block_id for b in message.get("blocks") or []
        ):
            return message.get("ts")
    return None


def _locale(services: Services, job: MergeJob) -> str:
    return services.directory.locale(job.requested_by)


def _draw(services: Services, job: MergeJob, ro: RepairOrder, count: int, **extra: object) -> None:
    """Post the merge's note, or update it in place (best effort: the merge goes on if Slack does not)."""
    text, blocks = views.merge_note(job, count, locale=_locale(services, job), **extra)
    try:
        if job.note_ts:
            services.slack.update(ro.channel_id, job.note_ts, text, blocks)
        else:
            job.note_ts = services.slack.post(ro.channel_id, text, blocks)["ts"]
            MergeJob.update(note_ts=job.note_ts).where(MergeJob.id == job.id).execute()
    except SlackError as exc:
        log.warning("merge note in RO %s not shown: %s", ro.ro_number, exc.raw_code)


def _finish_note(services: Services, job: MergeJob, ro: RepairOrder, count: int, seconds: float | None = None) -> None:
    result = RoFile.get_or_none(RoFile.id == job.result_id)
    if result is None:  # removed from the RO since: nothing to show
        return
    if seconds is None:  # drawn again after a crash: the length is the stored video's
        try:
            with open_store(services.settings).local_copy(result.sha256) as path:
                seconds = probe(path).duration
        except (ProbeFailed, OSError, TypeError, ValueError):
            seconds = None
    _draw(services, job, ro, count, file_name=result.name, permalink=result.permalink, seconds=seconds)


def _fail(services: Services, job: MergeJob, code: str, clip: str | None, **values: object) -> None:
    """The merge cannot be made: the note says why and which clip, and the requester is told, in their language."""
    locale = _locale(services, job)
    reason = t(f"merge.error.{code}", locale, **values)
    MergeJob.update(status="failed", error=code, failed_clip=clip, finished_at=utcnow()).where(MergeJob.id == job.id).execute()
    job.status = "failed"
    ro = RepairOrder.get_by_id(job.ro_id)
    count = len(json.loads(job.file_ids))
    _draw(services, job, ro, count, error=reason, clip=clip)
    culprit = t("merge.note.clip", locale, clip=kit.escape(clip)) if clip else ""
    told = t("merge.told.failed", locale, count=count, reason=kit.escape(reason), clip=culprit)
    services.slack.tell(job.requested_by, None, told)  # a DM: the merge may end long after they looked away
    log.info("merge %s in RO %s failed: %s (clip %s)", job.id, ro.ro_number, code, clip)
