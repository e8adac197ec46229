"""Manual status changes: recorded, marked for Slack; the value holds until the DMS changes the RO."""

from __future__ import annotations

from storage.db import database
from storage.models import RepairOrder, StatusChange, utcnow


def set_status(ro: RepairOrder, status: str, actor: str) -> bool:
    """Set `status` by hand. False when the RO already had it (nothing recorded)."""
    with database.atomic():
        now = utcnow()
        changed = (
            RepairOrder.update(status=status, status_manual=True, status_changed_at=now, updated_at=now, slack_dirty=True)
            .where((RepairOrder.id == ro.id) & (RepairOrder.status != status))
            .execute()
        )
        if not changed:
            return False
        StatusChange.create(ro=ro.id, old_status=ro.status, new_status=status, source="manual", actor=actor)
    ro.status, ro.status_manual, ro.updated_at = status, True, now
    return True
