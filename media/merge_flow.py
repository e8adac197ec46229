"""Merging videos, the Slack side: from the Files modal's button to the merged MP4 in the channel.

`start_merge` checks the ticked files (media.merge_rules) and queues "merge.run" before Slack gets
its answer. The task runs in the RO's own lane (one merge at a time per RO) and holds one of
MERGE_CONCURRENCY slots (a lease each) while ffmpeg works, so a shop's workers never run more
merges at once than the machine can take. It posts a note that follows the merge ("Merging 3
videos… 40 %"), joins the clips in recording order (media.video_merge), checks the result, stores
it, uploads it to the channel, and records it as a file derived from its sources. Temporary files
live in one folder per job, emptied at every start (a killed attempt leaves nothing that counts)
and removed at the end; a half-written video is never posted.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path

from huey.exceptions import RetryTask

from blocks import kit
from blocks import merge_view as views
from core.i18n import t
from media import merge_rules as rules
from media.blob_store import BlobStore
from media.video_merge import MergeFailed, merge, probe_clips
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


def start_merge(services: Services, ro: RepairOrder, user_id: str, file_ids: list[int]) -> MergeJob:
    """Queue a merge of the ticked videos. Raises rules.MergeRefused (nothing is queued)."""
    files = rules.check(ro, file_ids, services.settings)
    with database.atomic():  # the job and its task together, or neither
        job = MergeJob.create(ro=ro.id, requested_by=user_id, file_ids=json.dumps([f.id for f in files]))
        services.tasks.enqueue("merge.run", job.id, key=f"merge:{job.id}", lane=f"merge:{ro.id}")
    return job


def _gave_up(services: Services, job_id: int, *, error: str) -> None:
    job = MergeJob.get_or_none(MergeJob.id == job_id)
    if job is not None and job.status not in ("done", "failed"):
        _fail(services, job, "internal", None)


@task("merge.run", max_attempts=3, claim_ttl=timedelta(minutes=2), on_give_up=_gave_up)
def run_merge(services: Services, job_id: int) -> None:
    job = MergeJob.get_or_none(MergeJob.id == job_id)
    if job is None or job.status in ("done", "failed"):
        return
    for slot in range(services.settings.merge_concurrency):
        try:
            with leases.held(f"merge-slot:{slot}", SLOT_TTL):
                _run(services, job)
            return
        except leases.LeaseBusy:
            continue
    raise RetryTask(delay=3)  # every slot is busy: wait for one, without spending an attempt


def _run(services: Services, job: MergeJob) -> None:
    settings = services.settings
    ro = RepairOrder.get_by_id(job.ro_id)
    ids = json.loads(job.file_ids)
    files = {f.id: f for f in RoFile.select().where(RoFile.id.in_(ids))}
    rows = [files[i] for i in ids if i in files]
    if job.result_id:  # made and recorded before a crash: only the note may be missing
        _finish_note(services, job, ro, len(rows))
        return
    if job.status != "queued" and not job.note_ts:  # an attempt before this one may have posted it
        job.note_ts = _posted_note(services, ro, job)
        MergeJob.update(note_ts=job.note_ts).where(MergeJob.id == job.id).execute()
    MergeJob.update(status="merging").where(MergeJob.id == job.id).execute()
    job.status = "merging"
    _draw(services, job, ro, len(rows))
    store = BlobStore(settings.media_dir)
    work = Path(settings.media_dir) / "tmp" / f"merge-{job.id}"
    shutil.rmtree(work, ignore_errors=True)  # what a killed attempt left
    work.mkdir(parents=True)
    try:
        if len(rows) != len(ids) or not all(store.has(r.sha256) for r in rows):
            missing = next((r.name for r in rows if not store.has(r.sha256)), None)
            _fail(services, job, "missing", missing)
            return
        try:
            clips = probe_clips([store.path_for(row.sha256) for row in rows])
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

        out = work / "merged.mp4"
        try:
            plan = merge([clip for _, clip in ordered], out, work, progress)
        except MergeFailed as failed:
            culprit = ordered[failed.clip][0].name if failed.clip is not None else None
            _fail(services, job, failed.code, culprit)
            return
        try:
            sha, size = store.put_file(out)
        except OSError:
            _fail(services, job, "storage", None)
            return
        name = f"RO-{ro.ro_number}-{t('merge.file_word', ro.language)}-{job.id}.mp4"[:120]
        MergeJob.update(status="uploading", mode=plan.mode, upload_name=name).where(MergeJob.id == job.id).execute()
        uploaded = _uploaded_before(services, ro, name) or services.slack.upload(ro.channel_id, out, name)
        result = RoFile.create(
            ro=ro.id,
            slack_file_id=str(uploaded.get("id") or f"merge{job.id}")[:32],
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
        MergeJob.update(status="done", progress=100, result=result.id, mode=plan.mode, finished_at=utcnow()).where(
            MergeJob.id == job.id
        ).execute()
        _finish_note(services, MergeJob.get_by_id(job.id), ro, len(rows), seconds=plan.duration)
    finally:
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
    result = RoFile.get_by_id(job.result_id)
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
