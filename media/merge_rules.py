"""What a "Merge videos" may take. No Slack, no ffmpeg here (media.video_merge joins the clips)."""

from __future__ import annotations

from datetime import datetime, timezone

from core.config import Settings
from core.refusals import Refusal
from media.blob_store import open_store
from media.video_probe import Clip
from storage.models import RepairOrder, RoFile
from storage.values import VIDEO


class MergeRefused(Refusal):
    """Nothing is merged; `reason`: gone, too_few, too_many, not_video, missing, too_large."""

    def __init__(self, reason: str, **detail: object):
        super().__init__(f"merge.refused.{reason}", **detail)


def check(ro: RepairOrder, file_ids: list[int], settings: Settings) -> list[RoFile]:
    """The RO's videos to merge, as ticked. Raises MergeRefused, before anything is queued."""
    wanted = list(dict.fromkeys(int(i) for i in file_ids))
    files = list(RoFile.select().where(RoFile.id.in_(wanted) & (RoFile.ro == ro.id))) if wanted else []
    if len(files) != len(wanted):
        raise MergeRefused("gone")
    others = [f.name for f in files if f.kind != VIDEO]
    if others:
        raise MergeRefused("not_video", names=", ".join(others[:5]))
    if len(files) < 2:
        raise MergeRefused("too_few")
    if len(files) > settings.merge_max_clips:
        raise MergeRefused("too_many", count=len(files), limit=settings.merge_max_clips)
    store = open_store(settings)
    missing = [f.name for f in files if f.copy_status != "stored" or not store.has(f.sha256)]
    if missing:
        raise MergeRefused("missing", names=", ".join(missing[:5]))
    total_mb = sum(f.size for f in files) / 1_000_000
    if total_mb > settings.merge_max_mb:
        raise MergeRefused("too_large", size=round(total_mb), limit=settings.merge_max_mb)
    return files


def recording_order(pairs: list[tuple[RoFile, Clip]]) -> list[tuple[RoFile, Clip]]:
    """Clips in the order they were filmed: the clip's own creation time where its metadata has
    one, else Slack's file time; ties keep the order they were shared in."""

    def moment(pair: tuple[RoFile, Clip]) -> tuple:
        row, clip = pair
        when = clip.created_at or row.shared_at.replace(tzinfo=timezone.utc)
        return when if isinstance(when, datetime) else datetime.min.replace(tzinfo=timezone.utc), row.shared_at, row.id

    return sorted(pairs, key=moment)


def too_long(clips: list[Clip], settings: Settings) -> bool:
    return sum(c.duration for c in clips) > settings.merge_max_minutes * 60
