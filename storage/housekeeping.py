"""Tables that only need their recent rows."""

from __future__ import annotations

from datetime import timedelta

from storage.models import ProcessedEvent, TaskRecord, utcnow

# Slack retries an event for minutes, not days: older ids can go.
EVENT_ID_RETENTION = timedelta(days=2)
# The task journal: finished work is kept a while for `check` and for whoever investigates a
# complaint ("the customer says they never got it"), failed work longer.
DONE_TASK_RETENTION = timedelta(days=14)
FAILED_TASK_RETENTION = timedelta(days=90)


def prune_processed_events(retention: timedelta = EVENT_ID_RETENTION) -> int:
    return ProcessedEvent.delete().where(ProcessedEvent.received_at < utcnow() - retention).execute()


def prune_finished_tasks(done: timedelta = DONE_TASK_RETENTION, failed: timedelta = FAILED_TASK_RETENTION) -> int:
    """Forget finished task records; a key (the same work enqueued again) is only kept as long."""
    now = utcnow()
    old = ((TaskRecord.status == "done") & (TaskRecord.finished_at < now - done)) | (
        (TaskRecord.status == "failed") & (TaskRecord.finished_at < now - failed)
    )
    return TaskRecord.delete().where(old).execute()


def prune_old_rows() -> int:
    return prune_processed_events() + prune_finished_tasks()
