"""Block Kit for merging videos: the channel note that follows a merge, and the Files modal's answer."""

from __future__ import annotations

from blocks import ids, kit
from core.i18n import t
from storage.models import MergeJob


def merge_note(
    job: MergeJob,
    count: int,
    *,
    locale: str | None,
    file_name: str | None = None,
    permalink: str | None = None,
    seconds: float | None = None,
    clip: str | None = None,
    error: str | None = None,
) -> tuple[str, list[dict]]:
    """The note in the RO channel: "Merging 3 videos… 40 %", then the result or what went wrong."""
    if job.status == "done":
        length = _length(seconds or 0, locale)
        name = kit.link(permalink, file_name or "") if permalink else kit.escape(file_name or "")
        text = t("merge.note.done", locale, count=count, name=name, length=length)
    elif job.status == "failed":
        text = t("merge.note.failed", locale, count=count, reason=kit.escape(error or "?"))
        if clip:
            text += " " + t("merge.note.clip", locale, clip=kit.escape(clip))
    else:
        text = t("merge.note.running", locale, count=count, requester=kit.user(job.requested_by), progress=job.progress)
    return kit.message(text, [kit.section(text, block_id=note_block_id(job.id))])


def note_block_id(job_id: int) -> str:
    """The note's block, named after its merge: a worker that took over finds the note in the channel."""
    return f"merge_note_{job_id}"


def _length(seconds: float, locale: str | None) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return (
        t("merge.length.minutes", locale, minutes=minutes, seconds=rest)
        if minutes
        else t("merge.length.seconds", locale, seconds=rest)
    )


def merging_screen(count: int, locale: str | None) -> dict:
    """What the Files modal shows once the merge is queued."""
    return kit.modal(
        ids.FILES_DONE,
        t("files.modal.title", locale),
        [kit.section(t("merge.queued", locale, count=count))],
        close=t("files.modal.close", locale),
    )
