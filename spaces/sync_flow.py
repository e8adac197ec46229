"""The DMS sync and the midnight rollover, then Slack brought up to date: one at a time across
every process (the "sync" lease)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dms.connector import Connector
from dms.sync_engine import SyncEngine, SyncReport, roll_over
from slackapi.services import Services
from spaces.publish_flow import Publisher, PublishReport
from storage import leases as lease

SYNC_LEASE_TTL = timedelta(minutes=2)


@dataclass
class SyncOutcome:
    sync: SyncReport
    publish: PublishReport | None


def sync_once(services: Services, connector: Connector, now: datetime | None = None) -> SyncOutcome:
    """Read the DMS into the database, then bring Slack up to date. Raises lease.LeaseBusy when
    another sync runs."""
    tz = services.settings.shop_timezone
    with lease.held("sync", SYNC_LEASE_TTL):
        report = SyncEngine(connector, tz, timedelta(days=services.settings.sync_lookback_days)).run(now)
        published = Publisher(services).publish_pending(now)
    return SyncOutcome(report, published)


def rollover_once(services: Services, now: datetime | None = None) -> SyncOutcome:
    tz = services.settings.shop_timezone
    now = now or datetime.now(tz)
    with lease.held("sync", SYNC_LEASE_TTL):
        moved = roll_over(tz, now)
        published = Publisher(services).publish_pending(now)
    return SyncOutcome(SyncReport(status_changes=moved), published)


def describe_publish(report: PublishReport | None) -> str:
    if report is None:
        return "not published"
    text = (
        f"{report.channels_created} channel(s) created, {report.cards_posted} card(s) posted, "
        f"{report.cards_updated} card(s) updated, {report.notes_posted} note(s)"
    )
    if report.failed:
        text += f", {len(report.failed)} failed ({', '.join(f'{n}: {r}' for n, r in report.failed[:5])})"
    if report.stopped_early:
        text += f"; stopped early ({report.stopped_early}), the next sync resumes"
    return text
