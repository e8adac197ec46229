"""Tables that only need their recent rows."""

from __future__ import annotations

from datetime import timedelta

from storage.models import ProcessedEvent, utcnow

# Slack retries an event for minutes, not days: older ids can go.
EVENT_ID_RETENTION = timedelta(days=2)


def prune_processed_events(retention: timedelta = EVENT_ID_RETENTION) -> int:
    return ProcessedEvent.delete().where(ProcessedEvent.received_at < utcnow() - retention).execute()
