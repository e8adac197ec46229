"""The scheduler: timed jobs (DMS sync, midnight rollover, the features' jobs), run once across
however many processes are started (a lease in the database decides who)."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dms.connector import Connector
from slackapi.services import Services
from spaces.sync_flow import describe_publish, rollover_once, sync_once
from storage import leases as lease
from storage.db import with_connection

log = logging.getLogger(__name__)
SCHEDULER_LEASE_TTL = timedelta(seconds=60)
LEADER_CHECK_SECONDS = 15


@dataclass
class Job:
    name: str
    func: Callable[[], object]
    trigger: object


class Scheduler:
    """Runs jobs only while it holds the "scheduler" lease; a second instance waits its turn."""

    def __init__(self, services: Services, connector: Connector, extra_jobs: list[Job] | None = None):
        self.services = services
        self.connector = connector
        self.holder = lease.holder_id()
        self.is_leader = False
        # How many times each job came due here, run or not (this scheduler may be standing by).
        self.fired: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        tz = services.settings.shop_timezone
        self.jobs = [
            Job("dms-sync", self._sync, IntervalTrigger(minutes=services.settings.sync_interval_minutes, timezone=tz)),
            # A few seconds after midnight so "today" is already the new day in the shop's zone.
            Job("midnight-rollover", self._rollover, CronTrigger(hour=0, minute=0, second=5, timezone=tz)),
            *(extra_jobs or []),
        ]
        self._aps = BackgroundScheduler(
            timezone=tz, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
        )

    def start(self) -> None:
        now = datetime.now(self.services.settings.shop_timezone)
        self._aps.add_job(self.check_leadership, IntervalTrigger(seconds=LEADER_CHECK_SECONDS), id="leader", next_run_time=now)
        for job in self.jobs:
            # The sync also runs at start, so a fresh install shows its channels at once.
            first = now + timedelta(seconds=1) if job.name == "dms-sync" else None
            self._aps.add_job(
                self._guarded(job), job.trigger, id=job.name, name=job.name, **({"next_run_time": first} if first else {})
            )
        self._aps.start()

    def shutdown(self) -> None:
        self._aps.shutdown(wait=True)
        with_connection(lease.release)("scheduler", self.holder)

    @with_connection
    def check_leadership(self) -> bool:
        with self._lock:
            was = self.is_leader
            self.is_leader = lease.acquire("scheduler", self.holder, SCHEDULER_LEASE_TTL)
            if self.is_leader != was:
                log.info(
                    "scheduler %s: %s",
                    self.holder,
                    "now running jobs" if self.is_leader else "standing by (another scheduler holds the lease)",
                )
            return self.is_leader

    def _guarded(self, job: Job) -> Callable[[], None]:
        @with_connection
        def run() -> None:
            try:
                self._run_if_leader(job)
            finally:
                self.fired[job.name] += 1

        return run

    def _run_if_leader(self, job: Job) -> None:
        if not self.is_leader and not self.check_leadership():
            return
        try:
            job.func()
        except lease.LeaseBusy:
            log.info("%s skipped: another sync is running", job.name)
        except Exception:  # a job failure must not stop the scheduler
            log.exception("scheduled job %s failed", job.name)

    def _sync(self) -> None:
        outcome = sync_once(self.services, self.connector)
        log.info("DMS sync: %s; Slack: %s", outcome.sync.summary(), describe_publish(outcome.publish))

    def _rollover(self) -> None:
        outcome = rollover_once(self.services)
        log.info("midnight rollover: %s RO(s) now in progress", outcome.sync.status_changes)
