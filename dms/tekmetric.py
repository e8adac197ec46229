"""The Tekmetric connector (``DMS=tekmetric``): repair orders and appointments over the public API.

Reads
-----
* ``POST /api/v1/oauth/token`` (HTTP Basic client_id:client_secret, ``grant_type=client_credentials``);
  the token is cached and fetched again once when a data call answers 401.
* ``GET /api/v1/shops/{id}`` first: its ``Date`` is Tekmetric's clock for this fetch.
* ``GET /api/v1/appointments?shop=&includeDeleted=true&updatedDateStart=&sort=updatedDate&sortDirection=ASC``,
  ``GET /api/v1/repair-orders?shop=&updatedDateStart=&sort=updatedDate...`` and, because Tekmetric
  leaves deleted ROs out of an ``updatedDateStart`` query (and answers *only* deleted ones when
  both filters are combined), ``GET /api/v1/repair-orders?shop=&deletedDateStart=&sort=deletedDate...``.
  Each list is read in pages of 100 always from page 0, the ``*DateStart`` filter (written
  ``YYYY-MM-DDTHH:MM:SSZ``) moving to the newest date of the page just read: a record that leaves
  the list between two reads (deleted, updated again) shifts nothing, so nothing is skipped. When
  a whole page shares one second, the next page number of that same second is read.
* ``GET /api/v1/customers/{id}``, ``/vehicles/{id}``, ``/employees/{id}``, each cached for one
  fetch, only for records that are kept (not for deleted ROs, nor ROs closed before the window).
  A 403 leaves that part unknown (the record's ``unknown`` fields: the stored values stay); a
  lookup that keeps failing (lasting 429, 5xx) holds the record and what follows for the next sync.
  Either is one log line.
* Every ``reconcile_every`` (1 h) the open ROs (status 1-3, updated within ``reconcile_days``) are
  read again as ``FetchResult.refresh``: a customer's or vehicle's edit does not change the RO's
  ``updatedDate``. A refresh updates existing spaces and never creates one.

Watermark: JSON with each list's position (UTC ``YYYY-MM-DDTHH:MM:SSZ``) and the last
reconciliation. A first read (no watermark) starts ``lookback_days`` before Tekmetric's clock,
not at the shop's whole history. A position advances after each whole page, never later than
Tekmetric's clock at the start of the fetch minus ``clock_margin`` (a record written while the
fetch was paging is read again), so a read cut short (a fault, ``max_pages``) goes on from there
at the next sync (``FetchResult.incomplete`` says why); a fetch fails only when not one page could
be kept. ``*DateStart`` is inclusive: a few records come back once more; the sync engine's
fingerprints make that free. A watermark of the first versions (one time) is still read.

Repair order -> DmsRecord
-------------------------
=====================  =====================================================================
DmsRecord              Tekmetric
=====================  =====================================================================
external_id            ``"ro:" + id``
ro_number              ``repairOrderNumber``
tag_number             ``keytag``
closed                 ``repairOrderStatus.id`` (table below)
appointment_at         ``appointmentStartTime``
promised_at            ``customerTimeOut`` (Tekmetric's "promise time")
closed_at              when closed: ``postedDate``, else ``completedDate``, else ``updatedDate``
customer_first/last    customer ``firstName`` / ``lastName`` (``customerId`` -> /customers/{id})
mobile_phone           customer ``phone[]``: type Mobile/Cell (primary first), else the primary
                       one; E.164. An invalid number keeps the RO without a mobile (logged, masked).
email                  customer ``email`` (a string, or the first valid of a list)
language               ``"en"``: Tekmetric keeps no language per customer
vehicle_year/make/...  vehicle ``year``, ``make``, ``model``, ``vin`` (``vehicleId`` -> /vehicles/{id})
advisor_email          employee ``email`` of ``serviceWriterId`` (-> /employees/{id})
aliases                ``"appointment:<id>"`` of the appointment the RO came from: ``appointmentId``
                       when Tekmetric sends it, else the live appointment of the same vehicle whose
                       ``startTime`` is nearest ``appointmentStartTime`` (within 14 h) and that no
                       other RO has taken (memory of this process; a restarted process asks
                       ``GET /api/v1/appointments?vehicleId=&start=&end=`` once per vehicle and day)
=====================  =====================================================================

=====  ====================  ===========  =================================================
id     Tekmetric status      closed       why
=====  ====================  ===========  =================================================
1      Estimate              False        the car is (or will be) in the shop
2      Work in progress      False
3      Complete              False        work done but not posted: the car still waits for
                                          its owner, photos and messages still matter
4      Saved for later       True         declined or postponed; nothing is done to the car.
                                          Reopening it in Tekmetric reopens the space
5      Posted                True
6      Accounts receivable   True         posted, awaiting payment; the car has left
7      Deleted               (removal)    ``Removal("ro:<id>", reason="deleted")``: the space is completed
                                          with a "deleted in the DMS" note
other  (unknown id)          False        keep the space open rather than lose it
=====  ====================  ===========  =================================================

Appointment -> DmsRecord (only while no RO exists for it)
---------------------------------------------------------
external_id ``"appointment:" + id``; ro_number ``"A" + id``; appointment_at ``startTime``;
promised_at ``pickupTime``; customer, vehicle and advisor resolved like an RO's;
``appointmentStatus`` NONE/ARRIVED -> open, NO_SHOW -> closed (closed_at = ``updatedDate``),
CANCELED -> ``Removal(reason="cancelled")``, ``deletedDate`` set -> ``Removal(reason="deleted")``
(the appointment's space, while it is still the appointment's, is completed with a note),
no ``customerId`` -> rejected (a calendar block), a live one that started before the look-back
window -> rejected (no space for a past appointment).
An appointment superseded by its RO is left out: the RO carries it as an alias.

Times: with an offset or ``Z`` they are kept; without one they are read as UTC (Tekmetric's own
examples echo the same instant with and without ``Z``) and then expressed in the shop's zone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import requests

from .errors import DmsAuthError, DmsBadData, DmsError, DmsUnavailable
from .normalize import parse_time
from .records import DmsRecord, FetchResult, Rejected, Removal
from .tekmetric_client import MAX_PAGES, DmsForbidden, TekmetricClient
from .tekmetric_links import AppointmentIndex, as_id, slot_from
from .tekmetric_mapping import (
    RO_STATUSES,
    SOURCE,
    UTC,
    Party,
    appointment_rejection,
    appointment_removal,
    is_live_appointment,
    map_appointment,
    map_repair_order,
    repair_order_rejection,
    repair_order_removal,
    ro_ref,
    ro_status_id,
    tek_time,
)

log = logging.getLogger(__name__)

REPAIR_ORDERS = "/api/v1/repair-orders"
APPOINTMENTS = "/api/v1/appointments"
WATERMARK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # also the format of Tekmetric's *DateStart filters
OPEN_STATUSES = tuple(sorted(i for i, (_, closed) in RO_STATUSES.items() if not closed))
MAX_PAGES_PER_FETCH = 300  # a longer read (a first read of a busy shop) goes on at the next sync


class _Stop(Exception):
    """A lookup kept failing for this item: it waits for the next sync, and so does what follows."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Cursor:
    """Where each list's read has got to (UTC); the watermark is its JSON."""

    ro: datetime
    appointments: datetime
    deleted: datetime
    reconciled: datetime | None = None

    def dump(self) -> str:
        data = {k: _stamp(getattr(self, k)) for k in ("ro", "appointments", "deleted", "reconciled")}
        return json.dumps({"v": 2, **data}, separators=(",", ":"))

    @classmethod
    def parse(cls, since: str | None) -> _Cursor | None:
        if not since:
            return None
        try:
            if since.lstrip().startswith("{"):
                data = json.loads(since)
                times = {k: _parse_stamp(data.get(k)) for k in ("ro", "appointments", "deleted", "reconciled")}
                if None in (times["ro"], times["appointments"], times["deleted"]):
                    raise ValueError("a list has no position")
                return cls(**times)
            # A watermark of the first versions: one time for every list.
            moment = _parse_stamp(since)
            if moment is None:
                raise ValueError("empty")
            return cls(moment, moment, moment)
        except (ValueError, TypeError, AttributeError):
            # Ours, so corruption: starting again at the look-back window loses nothing recent.
            log.warning("unreadable Tekmetric watermark %r; reading the look-back window again", since)
            return None


@dataclass
class _Read:
    """What one fetch has read so far, page by page; only whole (consistent) pages are kept."""

    records: list[DmsRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    removed: list[Removal] = field(default_factory=list)
    refresh: list[DmsRecord] = field(default_factory=list)
    old_closed: int = 0
    pages: int = 0  # pages kept
    more: bool = False  # the page budget ran out before the end

    def add(self, outcome: DmsRecord | Rejected | Removal | None) -> None:
        if isinstance(outcome, DmsRecord):
            self.records.append(outcome)
        elif isinstance(outcome, Rejected):
            self.rejected.append(outcome)
        elif isinstance(outcome, Removal):
            self.removed.append(outcome)


class TekmetricConnector:
    source = SOURCE

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        shop_id: str | int,
        tz: ZoneInfo,
        timeout: float = 15,
        session: requests.Session | None = None,
        *,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        clock_margin: float = 60.0,
        lookback_days: float = 14,
        reconcile_every: timedelta = timedelta(hours=1),
        reconcile_days: float = 60,
        max_pages: int = MAX_PAGES_PER_FETCH,
    ) -> None:
        self.client = TekmetricClient(
            base_url,
            client_id,
            client_secret,
            timeout=timeout,
            session=session,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
        )
        self.shop_id = str(shop_id).strip()
        self.tz = tz
        self.clock_margin = timedelta(seconds=clock_margin)
        self.lookback = timedelta(days=lookback_days)
        self.reconcile_every = reconcile_every
        self.reconcile_span = max(timedelta(days=reconcile_days), self.lookback)
        self.max_pages = max_pages
        self.appointments = AppointmentIndex()

    def __repr__(self) -> str:
        return f"TekmetricConnector({self.client.base_url!r}, shop={self.shop_id})"

    def check(self) -> str:
        self.client.token()
        scope = self.client.scope
        if scope and self.shop_id not in scope:
            raise DmsAuthError(
                f"these Tekmetric credentials cover shop(s) {', '.join(scope)}, not {self.shop_id}; check TEKMETRIC_SHOP_ID"
            )
        shop = self.client.get_json(f"/api/v1/shops/{self.shop_id}", missing_ok=True)
        if not isinstance(shop, dict):
            raise DmsBadData(f"Tekmetric has no shop {self.shop_id}; check TEKMETRIC_SHOP_ID")
        return f"Tekmetric shop {shop.get('name') or '?'!s} (id {self.shop_id}) at {self.client.base_url}"

    def fetch(self, since: str | None) -> FetchResult:
        """What changed since the watermark, read page by page with a moving date filter.

        Each list is read sorted by its date and always from page 0 of ``<date>Start=<position>``,
        the position moving to the newest date of each page read: a record that leaves the list
        (deleted, or updated again) between two reads shifts nothing. The watermark records each
        list's position after the last whole page, so a read cut short (a fault, the page budget)
        goes on from there at the next sync; it only fails when not one page could be kept.
        """
        cursor = _Cursor.parse(since)
        started = datetime.now(timezone.utc)
        self.client.start_clock()
        # Tekmetric's clock (the answer's Date) places the first read's look-back window and caps
        # every list's position, whatever this machine's clock says.
        self.client.get_json(f"/api/v1/shops/{self.shop_id}", missing_ok=True)
        server_start = self.client.first_server_time or started
        if cursor is None:
            window = server_start - self.lookback
            cursor = _Cursor(window, window, window, reconciled=server_start)
        ceiling = server_start - self.clock_margin  # no position later than this: late writers are read again
        resolver = _Resolver(self.client, may_search=since is not None)
        read = _Read()
        incomplete: str | None = None
        try:
            self._read_all(cursor, read, resolver, server_start, ceiling)
        except _Stop as stop:
            incomplete = stop.reason
        except DmsError as exc:
            if read.pages == 0 and not (read.records or read.removed or read.refresh):
                raise
            incomplete = f"{type(exc).__name__}: {exc}"
        if read.more and incomplete is None:
            incomplete = f"more than {self.max_pages} pages to read"
        if incomplete:
            log.warning("Tekmetric read stopped early (%s); the next sync goes on from where it stopped", incomplete)
        resolver.log_failures()
        self.appointments.forget_before(started)
        return FetchResult(
            records=_latest(read.records),
            rejected=read.rejected,
            snapshot=False,
            watermark=cursor.dump(),
            removed=read.removed,
            refresh=_latest(read.refresh),
            incomplete=incomplete,
            old_closed=read.old_closed,
        )

    # --- reading ------------------------------------------------------------

    def _read_all(self, cursor: _Cursor, read: _Read, resolver: _Resolver, server_start: datetime, ceiling: datetime) -> None:
        window_start = server_start - self.lookback
        shop = {"shop": self.shop_id}
        # Appointments first (cheap, no lookups): an RO needs them to find the one it came from.
        appointments: list[dict] = []
        appointments_to = cursor.appointments
        for items, position in self._pages(
            APPOINTMENTS, {**shop, "includeDeleted": "true"}, "updatedDate", cursor.appointments, read, budgeted=False
        ):
            appointments.extend(items)
            appointments_to = position
        appointments = _by_id(appointments)
        self.appointments.remember(
            s for s in (slot_from(a, _safe_time(a.get("startTime")), is_live_appointment(a)) for a in appointments) if s
        )
        for items, position in self._pages(REPAIR_ORDERS, shop, "updatedDate", cursor.ro, read):
            kept = self._page_of_ros(items, resolver, window_start, read)
            cursor.ro = max(cursor.ro, min(position, ceiling, kept))
            read.pages += 1
            if kept < position:
                raise _Stop(resolver.stopped or "a lookup kept failing")
        for items, position in self._pages(REPAIR_ORDERS, shop, "deletedDate", cursor.deleted, read):
            for ro in items:
                read.add(repair_order_removal(ro, self.tz))
            cursor.deleted = max(cursor.deleted, min(position, ceiling))
            read.pages += 1
        if read.more:
            return
        page: list[DmsRecord | Rejected | Removal] = []
        for appointment in appointments:
            if self.appointments.superseded(appointment.get("id")):
                continue
            outcome = self._appointment(appointment, resolver, window_start)
            if isinstance(outcome, _Held):
                raise _Stop(resolver.stopped or "a lookup kept failing")
            page.append(outcome)
        for outcome in page:
            read.add(outcome)
        cursor.appointments = max(cursor.appointments, min(appointments_to, ceiling))
        if cursor.reconciled is None or server_start - cursor.reconciled >= self.reconcile_every:
            self._reconcile(resolver, window_start, server_start, read)
            cursor.reconciled = server_start

    def _pages(
        self, path: str, params: Mapping[str, object], key: str, start: datetime, read: _Read, *, budgeted: bool = True
    ) -> Iterator[tuple[list[dict], datetime]]:
        """Pages of a list sorted by ``key`` from ``start`` on, each with the position after it."""
        position, page = start, 0
        for _ in range(MAX_PAGES):
            if budgeted and read.pages >= self.max_pages:
                read.more = True
                return
            query = {**params, f"{key}Start": _stamp(position), "sort": key, "sortDirection": "ASC"}
            found = self.client.get_page(path, query, page)
            times = [_item_time(item, key) for item in found.content]
            known = [t for t in times if t is not None]
            if known != sorted(known):
                raise DmsBadData(f"Tekmetric did not sort {path} by {key}; a read by pages could skip records")
            newest = max([position, *known]).replace(microsecond=0)
            if found.last:
                yield found.content, newest
                return
            # The next read starts at this page's newest date (inclusive: a few come back). When the
            # whole page shares one second, the next page of that same second is read instead.
            page = 0 if newest > position else page + 1
            yield found.content, newest
            position = newest
        raise DmsBadData(f"Tekmetric kept paging {path} past {MAX_PAGES} pages")

    def _page_of_ros(self, items: list[dict], resolver: _Resolver, window_start: datetime, read: _Read) -> datetime:
        """Map one page of ROs; the position to keep (earlier than the page's end when one is held)."""
        records: list[DmsRecord | Rejected | Removal] = []
        for ro in items:
            outcome = self._repair_order(ro, resolver, window_start, read)
            if isinstance(outcome, _Held):
                for kept in records:
                    read.add(kept)
                return outcome.at
            if outcome is not None:
                records.append(outcome)
        for kept in records:
            read.add(kept)
        return datetime.max.replace(tzinfo=timezone.utc)

    def _repair_order(
        self, ro: Mapping[str, Any], resolver: _Resolver, window_start: datetime, read: _Read
    ) -> DmsRecord | Rejected | Removal | _Held | None:
        removal = repair_order_removal(ro, self.tz)
        if removal is not None:
            return removal
        rejection = repair_order_rejection(ro)
        if rejection is not None:
            return rejection
        if self._closed_before(ro, window_start):
            read.old_closed += 1  # no space for history, so nothing to look up for it
            return None
        party = resolver.party(ro)
        if party is None:
            return _Held((_item_time(ro, "updatedDate") or window_start).replace(microsecond=0))
        appointment_id = self._appointment_of(ro, resolver)
        outcome = map_repair_order(ro, party, self.tz, appointment_id)
        if isinstance(outcome, DmsRecord) and appointment_id is not None:
            self.appointments.link(appointment_id, outcome.external_id)
        return outcome

    def _appointment(
        self, appointment: Mapping[str, Any], resolver: _Resolver, window_start: datetime
    ) -> DmsRecord | Rejected | Removal | _Held:
        removal = appointment_removal(appointment, self.tz)
        if removal is not None:
            return removal
        rejection = appointment_rejection(appointment)
        if rejection is not None:
            return rejection
        start = _safe_time(appointment.get("startTime"))
        if start is not None and start < window_start and is_live_appointment(appointment):
            return Rejected(f"appointment:{appointment.get('id')}", "appointment before the look-back window")
        party = resolver.party(appointment)
        if party is None:
            return _Held(window_start)
        return map_appointment(appointment, party, self.tz)

    def _reconcile(self, resolver: _Resolver, window_start: datetime, server_start: datetime, read: _Read) -> None:
        """Re-read open ROs: a customer's or vehicle's edit does not change the RO's updatedDate."""
        params = {
            "shop": self.shop_id,
            "repairOrderStatusId": list(OPEN_STATUSES),
            "updatedDateStart": _stamp(server_start - self.reconcile_span),
            "sort": "createdDate",
            "sortDirection": "ASC",
        }
        fresh: list[DmsRecord] = []
        for ro in self.client.iter_pages(REPAIR_ORDERS, params):
            outcome = self._repair_order(ro, resolver, window_start, read)
            if isinstance(outcome, _Held):
                raise _Stop(resolver.stopped or "a lookup kept failing")
            if isinstance(outcome, DmsRecord):
                fresh.append(outcome)
        read.refresh.extend(fresh)

    def _closed_before(self, ro: Mapping[str, Any], window_start: datetime) -> bool:
        if not RO_STATUSES.get(ro_status_id(ro), ("", False))[1]:
            return False
        for key in ("postedDate", "completedDate", "updatedDate"):
            moment = _safe_time(ro.get(key))
            if moment is not None:
                return moment < window_start
        return False

    def _appointment_of(self, ro: Mapping[str, Any], resolver: _Resolver) -> int | None:
        explicit = as_id(ro.get("appointmentId"))
        if explicit is not None:
            return explicit
        when = _safe_time(ro.get("appointmentStartTime"))
        vehicle, customer, ref = ro.get("vehicleId"), ro.get("customerId"), ro_ref(ro)
        if when is None or as_id(vehicle) is None:
            return None
        found = self.appointments.find(vehicle, customer, when, ref)
        if found is None and resolver.search_appointments(self.shop_id, vehicle, when, self.appointments):
            found = self.appointments.find(vehicle, customer, when, ref)
        return found


@dataclass(frozen=True)
class _Held:
    """An item left for the next sync (a lookup kept failing); the list's position stays before ``at``."""

    at: datetime


class _Resolver:
    """Customer / vehicle / employee lookups and appointment searches, cached for one fetch.

    A lookup Tekmetric refuses (HTTP 403: this app may not read that employee) leaves that part
    unknown and the record goes on; one that keeps failing for a while (a lasting 429, a 5xx, a
    time-out) holds the record for the next sync. Either is said in one log line per fetch.
    """

    KINDS = {
        "customerId": ("customers", "customer"),
        "vehicleId": ("vehicles", "vehicle"),
        "serviceWriterId": ("employees", "advisor"),
    }

    def __init__(self, client: TekmetricClient, may_search: bool = True) -> None:
        self.client = client
        self.may_search = may_search
        self._cache: dict[tuple[str, int], dict | None] = {}
        self._refused: dict[tuple[str, int], str] = {}
        self._searched: set[tuple[int, str]] = set()
        self.unknown_records = 0
        self.stopped: str | None = None  # why lookups stopped for this fetch

    def party(self, item: Mapping[str, Any]) -> Party | None:
        """The item's customer, vehicle and advisor; None when the item must wait for the next sync."""
        if self.stopped:
            return None
        found: dict[str, dict | None] = {}
        unknown: list[str] = []
        for key, (kind, part) in self.KINDS.items():
            try:
                found[key] = self._get(kind, item.get(key))
            except DmsForbidden:
                found[key] = None
                unknown.append(part)
            except DmsUnavailable as exc:
                self.stopped = f"a {kind[:-1]} lookup failed ({exc})"
                return None
        self.unknown_records += bool(unknown)
        return Party(
            customer=found["customerId"], vehicle=found["vehicleId"], advisor=found["serviceWriterId"], unknown=tuple(unknown)
        )

    def log_failures(self) -> None:
        if not self._refused:
            return
        kinds: dict[str, int] = {}
        for kind, _ in self._refused:
            kinds[kind] = kinds.get(kind, 0) + 1
        log.warning(
            "Tekmetric refused %s (HTTP 403); %d record(s) kept with those fields unknown (stored values kept)",
            ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())),
            self.unknown_records,
        )

    def search_appointments(self, shop_id: str, vehicle_id: object, when: datetime, index: AppointmentIndex) -> bool:
        """Ask Tekmetric for the vehicle's appointments around ``when``; True if a new search ran."""
        vehicle = as_id(vehicle_id)
        key = (vehicle, when.date().isoformat())
        if not self.may_search or vehicle is None or key in self._searched:
            return False
        self._searched.add(key)
        params = {
            "shop": shop_id,
            "vehicleId": vehicle,
            "includeDeleted": "false",
            "start": (when - timedelta(days=1)).date().isoformat(),
            "end": (when + timedelta(days=1)).date().isoformat(),
        }
        found = self.client.iter_pages(APPOINTMENTS, params)
        index.remember(s for s in (slot_from(a, _safe_time(a.get("startTime")), is_live_appointment(a)) for a in found) if s)
        return True

    def _get(self, kind: str, raw_id: object) -> dict | None:
        ident = as_id(raw_id)
        if ident is None:
            return None
        key = (kind, ident)
        if key in self._refused:
            raise DmsForbidden(self._refused[key])
        if key not in self._cache:
            try:
                found = self.client.get_json(f"/api/v1/{kind}/{ident}", missing_ok=True)
            except DmsForbidden as exc:
                self._refused[key] = str(exc)
                raise
            if found is not None and not isinstance(found, dict):
                raise DmsBadData(f"Tekmetric answered /api/v1/{kind}/{ident} with something else than an object")
            if found is None:
                log.warning("Tekmetric has no %s %s; the record goes on without it", kind, ident)
            self._cache[key] = found
        return self._cache[key]


def _by_id(items: Iterable[dict]) -> list[dict]:
    merged: dict[object, dict] = {}
    for item in items:
        merged.pop(item.get("id"), None)
        merged[item.get("id")] = item
    return list(merged.values())


def _latest(records: list[DmsRecord]) -> list[DmsRecord]:
    """One record per external id, the last read (a page starts at the previous one's last date)."""
    return list({r.external_id: r for r in records}.values())


def _safe_time(raw: object) -> datetime | None:
    try:
        return tek_time(raw, UTC)
    except ValueError:
        return None


def _item_time(item: Mapping[str, Any], key: str) -> datetime | None:
    moment = _safe_time(item.get(key))
    return moment.astimezone(timezone.utc) if moment is not None else None


def _stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime(WATERMARK_FORMAT) if moment is not None else None


def _parse_stamp(raw: object) -> datetime | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ValueError("not a time")
    parsed = parse_time(raw, UTC)
    return parsed.astimezone(timezone.utc) if parsed else None
