"""The sync engine: DMS records → the RO table, idempotently, before anything talks to Slack.

An RO is keyed by (source, external id) or by one of its aliases. A record whose fingerprint
has not changed is skipped outright; a changed one updates the row, recomputes the status and
marks the RO for Slack. A status a person set holds until the DMS closes or reopens the RO or
moves its appointment to another day: a corrected phone number must not reopen a completed RO. Nothing is deleted: a row
that disappears from the feed stays as it was (only "closed" completes an RO).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.text import fold_text
from dms.connector import Connector
from dms.errors import DmsError
from dms.records import DmsRecord, Rejected, Removal
from dms.status_rules import computed_status
from storage import search_index as search
from storage.db import database
from storage.models import RepairOrder, RoAlias, StatusChange, SyncState, from_utc_naive, to_utc_naive, utcnow
from storage.values import IN_PROGRESS, UPCOMING

log = logging.getLogger(__name__)
BATCH = 500
MAX_EXTERNAL_ID = RepairOrder.external_id.max_length
MAX_RO_NUMBER = RepairOrder.ro_number.max_length


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)  # RO numbers
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    status_changes: int = 0
    old_closed: int = 0  # closed before the look-back window when first seen: no space for history
    error: str | None = None
    removed: list[str] = field(default_factory=list)  # RO numbers deleted / cancelled in the DMS
    incomplete: str | None = None  # the DMS read stopped early; the next sync goes on from there

    def summary(self) -> str:
        if self.error:
            return f"DMS not read: {self.error}. Nothing was changed; the next sync will try again."
        text = (
            f"{len(self.created)} created, {len(self.changed)} changed, {self.unchanged} unchanged, "
            f"{len(self.rejected)} skipped, {self.status_changes} status change(s)"
        )
        if self.old_closed:
            text += f", {self.old_closed} closed before the look-back window ignored"
        if self.removed:
            text += f", {len(self.removed)} deleted or cancelled in the DMS (completed)"
        if self.incomplete:
            text += f"; DMS read stopped early ({self.incomplete}), the next sync goes on from there"
        return text


def record_fields(record: DmsRecord, fingerprint: str) -> dict:
    """The RO columns a DMS record sets (times stored as naive UTC), cut to the columns' sizes."""
    name = f"{record.customer_first_name} {record.customer_last_name}"
    return _fit(
        {
            "ro_number": record.ro_number,
            "tag_number": record.tag_number,
            "dms_closed": record.closed,
            "appointment_at": to_utc_naive(record.appointment_at),
            "promised_at": to_utc_naive(record.promised_at),
            "closed_at": to_utc_naive(record.closed_at),
            "customer_first_name": record.customer_first_name,
            "customer_last_name": record.customer_last_name,
            "mobile_phone": record.mobile_phone,
            "email": record.email,
            "language": record.language,
            "vehicle_year": record.vehicle_year,
            "vehicle_make": record.vehicle_make,
            "vehicle_model": record.vehicle_model,
            "vin": record.vin,
            "advisor_email": record.advisor_email,
            "name_folded": fold_text(name).strip(),
            "phone_digits": re.sub(r"\D", "", record.mobile_phone or ""),
            "fingerprint": fingerprint,
        }
    )


def _fit(fields: dict) -> dict:
    # A DMS can send a 300-character model or a 40-character VIN; PostgreSQL refuses what does not
    # fit, which would fail the whole batch. Cut to the column instead: one odd row must not stop a sync.
    columns = RepairOrder._meta.fields
    for name, value in fields.items():
        size = getattr(columns.get(name), "max_length", None)
        if size and isinstance(value, str) and len(value) > size:
            fields[name] = value[:size]
    return fields


class SyncEngine:
    def __init__(self, connector: Connector, tz: ZoneInfo, lookback: timedelta = timedelta(days=14)):
        self.connector = connector
        self.tz = tz
        # A first read of a DMS returns years of closed ROs; they must not each become a channel.
        self.lookback = lookback

    def run(self, now: datetime | None = None) -> SyncReport:
        """One sync. A DMS that fails changes nothing: the error is recorded and reported."""
        now = now or datetime.now(self.tz)
        report = SyncReport()
        source = self.connector.source
        state, _ = SyncState.get_or_create(source=source)
        try:
            result = self.connector.fetch(state.watermark)
        except DmsError as exc:
            report.error = _printable(f"{type(exc).__name__}: {exc}")
            SyncState.update(last_error=report.error, last_error_at=utcnow()).where(SyncState.source == source).execute()
            log.warning("DMS sync failed, nothing changed: %s", report.error)
            return report
        report.rejected = list(result.rejected)
        report.old_closed += result.old_closed
        report.incomplete = result.incomplete
        for reject in result.rejected:
            log.info("DMS record %s skipped: %s", reject.ref, reject.reason)
        # One query for every fingerprint we hold: an unchanged record then costs a dict lookup.
        known = dict(
            RepairOrder.select(RepairOrder.external_id, RepairOrder.fingerprint).where(RepairOrder.source == source).tuples()
        )
        # A refresh (the connector re-reading what it may have missed) updates spaces, never creates one.
        items = [*((r, True) for r in result.records), *((r, False) for r in result.refresh)]
        for start in range(0, len(items), BATCH):
            with database.atomic():
                touched: list[int] = []
                for record, may_create in items[start : start + BATCH]:
                    fingerprint = record.fingerprint()
                    if known.get(record.external_id) == fingerprint:
                        report.unchanged += 1
                        continue
                    ro_id = self._apply(record, fingerprint, now, report, may_create)
                    if ro_id is not None:
                        touched.append(ro_id)
                # Search keys follow the RO in the same transaction: a found RO is a current one.
                search.index_many(RepairOrder.select().where(RepairOrder.id.in_(touched)))
        with database.atomic():
            touched = [ro_id for ro_id in (self._remove(r, now, report) for r in result.removed) if ro_id is not None]
            search.index_many(RepairOrder.select().where(RepairOrder.id.in_(touched)))
        report.status_changes += roll_over(self.tz, now)
        SyncState.update(watermark=result.watermark or state.watermark, last_success_at=utcnow(), last_error=None).where(
            SyncState.source == source
        ).execute()
        return report

    def _apply(
        self, record: DmsRecord, fingerprint: str, now: datetime, report: SyncReport, may_create: bool = True
    ) -> int | None:
        """Create or update the record's RO; its id when something was written."""
        if len(record.external_id) > MAX_EXTERNAL_ID or len(record.ro_number) > MAX_RO_NUMBER:
            # An id cannot be cut like a model name: a cut id would not find its RO next time.
            report.rejected.append(Rejected(record.external_id[:40] + "…", f"RO number longer than {MAX_RO_NUMBER} characters"))
            return None
        ro = self._find(record)
        fields = record_fields(record, fingerprint)
        status = computed_status(record.closed, record.appointment_at, now, self.tz)
        if ro is None and record.closed and self._before_lookback(record, now):
            report.old_closed += 1
            return None
        if ro is None and not may_create:
            return None
        if ro is None:
            ro = RepairOrder.create(
                source=record.source,
                external_id=record.external_id,
                status=status,
                status_changed_at=utcnow(),
                slack_dirty=True,
                **fields,
            )
            StatusChange.create(ro=ro, old_status=None, new_status=status, source="dms", announced=True)
            report.created.append(record.ro_number)
        elif ro.fingerprint == fields["fingerprint"]:
            report.unchanged += 1
            return None
        else:
            changes = {**fields, "updated_at": utcnow(), "slack_dirty": True}
            for column in record.unknown_columns():
                changes.pop(column, None)  # the connector could not read it this time: the stored value stays
            if ro.status_manual and not self._moves_status(ro, record):
                status = ro.status  # the person's choice holds
            else:
                changes["status_manual"] = False
            if ro.external_id != record.external_id:
                if ro.external_id not in record.aliases:
                    # An older identity of a space that has moved on (the appointment after its RO
                    # took over): it must not pull the space back.
                    report.unchanged += 1
                    return None
                # An appointment space that became an RO: the RO's id from now on, the old one kept.
                RoAlias.insert(source=ro.source, alias=ro.external_id, ro=ro.id).on_conflict_ignore().execute()
                changes["external_id"] = record.external_id
            if status != ro.status:
                changes.update(status=status, status_changed_at=utcnow())
                StatusChange.create(ro=ro, old_status=ro.status, new_status=status, source="dms")
                report.status_changes += 1
            RepairOrder.update(**changes).where(RepairOrder.id == ro.id).execute()
            report.changed.append(record.ro_number)
        for alias in record.aliases:
            RoAlias.insert(source=record.source, alias=alias, ro=ro.id).on_conflict_ignore().execute()
        return ro.id

    def _remove(self, removal: Removal, now: datetime, report: SyncReport) -> int | None:
        """An RO deleted (or an appointment cancelled) in the DMS: its space is completed, with a
        note saying why, once. Only the space that is still that record's: an appointment's space
        taken over by its RO follows the RO, not the cancelled appointment."""
        ro = RepairOrder.get_or_none((RepairOrder.source == removal.source) & (RepairOrder.external_id == removal.external_id))
        if ro is None or ro.fingerprint == removal.marker:
            return None
        status = computed_status(True, None, now, self.tz, removed=True)
        at = utcnow()
        RepairOrder.update(
            dms_closed=True,
            closed_at=to_utc_naive(removal.at) or at,
            fingerprint=removal.marker,
            status=status,
            status_manual=False,
            status_changed_at=at,
            updated_at=at,
            slack_dirty=True,
        ).where(RepairOrder.id == ro.id).execute()
        # The note says why even when the status was already completed (old status None: "Status: Completed").
        old = ro.status if ro.status != status else None
        StatusChange.create(ro=ro, old_status=old, new_status=status, source=f"dms_{removal.reason}")
        report.status_changes += int(old is not None)
        report.removed.append(ro.ro_number)
        return ro.id

    def _moves_status(self, ro: RepairOrder, record: DmsRecord) -> bool:
        """Does this DMS change say something about the RO's status: closed or reopened, or the
        appointment moved to another day (in the shop's time zone)?"""
        if bool(ro.dms_closed) != record.closed:
            return True
        return self._local_day(from_utc_naive(ro.appointment_at)) != self._local_day(record.appointment_at)

    def _local_day(self, moment: datetime | None):
        return moment.astimezone(self.tz).date() if moment is not None else None

    def _before_lookback(self, record: DmsRecord, now: datetime) -> bool:
        last = record.closed_at or record.promised_at or record.appointment_at
        return last is not None and last < now - self.lookback

    def _find(self, record: DmsRecord) -> RepairOrder | None:
        ro = RepairOrder.get_or_none((RepairOrder.source == record.source) & (RepairOrder.external_id == record.external_id))
        if ro is not None:
            return ro
        # This record is an older identity of a space that moved on (an appointment after its RO).
        alias = RoAlias.get_or_none((RoAlias.source == record.source) & (RoAlias.alias == record.external_id))
        if alias is not None:
            return alias.ro
        # An RO taking over its appointment's space, if that space is still the appointment's.
        # (If another RO already took it over, this RO is a second visit: it gets its own space.)
        if record.aliases:
            return RepairOrder.get_or_none((RepairOrder.source == record.source) & (RepairOrder.external_id.in_(record.aliases)))
        return None


def _printable(text: str, limit: int = 500) -> str:
    # A garbage feed can put NULs and control bytes in the message; PostgreSQL refuses NULs.
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:limit]


def roll_over(tz: ZoneInfo, now: datetime) -> int:
    """Upcoming → in progress once the appointment's day has come (the midnight job, and every sync)."""
    tomorrow = datetime.combine(now.astimezone(tz).date() + timedelta(days=1), time(0), tz)
    due = list(
        RepairOrder.select().where(
            (RepairOrder.status == UPCOMING)
            & (RepairOrder.status_manual == False)
            & (RepairOrder.dms_closed == False)
            & (RepairOrder.appointment_at < to_utc_naive(tomorrow))
        )
    )
    moved = 0
    for ro in due:
        with database.atomic():
            if (
                RepairOrder.update(status=IN_PROGRESS, status_changed_at=utcnow(), updated_at=utcnow(), slack_dirty=True)
                .where((RepairOrder.id == ro.id) & (RepairOrder.status == UPCOMING))
                .execute()
            ):
                StatusChange.create(ro=ro, old_status=UPCOMING, new_status=IN_PROGRESS, source="schedule")
                moved += 1
    return moved
