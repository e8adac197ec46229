"""The Tekmetric connector (``DMS=tekmetric``): repair orders and appointments over the public API.

Reads
-----
* ``POST /api/v1/oauth/token`` (HTTP Basic client_id:client_secret, ``grant_type=client_credentials``);
  the token is cached and fetched again once when a data call answers 401.
* ``GET /api/v1/appointments?shop=&updatedDateStart=&includeDeleted=true`` and
  ``GET /api/v1/repair-orders?shop=&updatedDateStart=`` in Spring pages of 100.
  Tekmetric leaves deleted ROs out of an ``updatedDateStart`` query (and answers *only* deleted
  ones when both filters are combined), so an incremental read also asks
  ``GET /api/v1/repair-orders?shop=&deletedDateStart=``.
* ``GET /api/v1/customers/{id}``, ``/vehicles/{id}``, ``/employees/{id}``, each cached for one fetch.
* ``since=None`` reads everything; otherwise only what changed at or after ``since``.

Watermark: the newest ``updatedDate``/``deletedDate`` seen (UTC, ``YYYY-MM-DDTHH:MM:SSZ``),
but never later than the server's clock at the start of the fetch minus ``clock_margin``:
a record changed while the fetch was paging is then read again next time instead of being
skipped. ``updatedDateStart`` is inclusive, so the record(s) at the watermark itself come back
once more; the sync engine's fingerprints make that free.

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
7      Deleted               (rejected)   ``Rejected(ref="ro:<id>", reason="RO <n> deleted in Tekmetric")``
other  (unknown id)          False        keep the space open rather than lose it
=====  ====================  ===========  =================================================

Appointment -> DmsRecord (only while no RO exists for it)
---------------------------------------------------------
external_id ``"appointment:" + id``; ro_number ``"A" + id``; appointment_at ``startTime``;
promised_at ``pickupTime``; customer, vehicle and advisor resolved like an RO's;
``appointmentStatus`` NONE/ARRIVED -> open, NO_SHOW -> closed (closed_at = ``updatedDate``),
CANCELED -> rejected ("appointment cancelled in Tekmetric"), ``deletedDate`` set -> rejected
("appointment deleted in Tekmetric"), no ``customerId`` -> rejected (a calendar block).
An appointment superseded by its RO is left out: the RO carries it as an alias.

Times: with an offset or ``Z`` they are kept; without one they are read as UTC (Tekmetric's own
examples echo the same instant with and without ``Z``) and then expressed in the shop's zone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import requests

from .errors import DmsAuthError, DmsBadData
from .normalize import parse_time
from .records import DmsRecord, FetchResult, Rejected
from .tekmetric_client import TekmetricClient
from .tekmetric_links import AppointmentIndex, as_id, slot_from
from .tekmetric_mapping import (
    SOURCE,
    UTC,
    Party,
    appointment_rejection,
    is_live_appointment,
    map_appointment,
    map_repair_order,
    parse_updated,
    repair_order_rejection,
    ro_ref,
    tek_time,
)

log = logging.getLogger(__name__)

REPAIR_ORDERS = "/api/v1/repair-orders"
APPOINTMENTS = "/api/v1/appointments"
WATERMARK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


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
        since_at = _parse_watermark(since)
        started = datetime.now(timezone.utc)
        self.client.start_clock()
        appointments, ros = self._read_changes(since_at)
        server_start = self.client.first_server_time or started

        # After a full read every appointment is known: searching for more would be wasted calls.
        resolver = _Resolver(self.client, may_search=since_at is not None)
        self.appointments.remember(
            s for s in (slot_from(a, _safe_time(a.get("startTime")), is_live_appointment(a)) for a in appointments) if s
        )
        records: list[DmsRecord] = []
        rejected: list[Rejected] = []
        for ro in ros:
            _collect(self._repair_order(ro, resolver), records, rejected)
        for appointment in appointments:
            if not self.appointments.superseded(appointment.get("id")):
                _collect(self._appointment(appointment, resolver), records, rejected)
        self.appointments.forget_before(started)
        return FetchResult(
            records=records,
            rejected=rejected,
            snapshot=False,
            watermark=self._watermark(since_at, [*ros, *appointments], server_start),
        )

    # --- reading ------------------------------------------------------------

    def _read_changes(self, since_at: datetime | None) -> tuple[list[dict], list[dict]]:
        shop = {"shop": self.shop_id}
        window = {"updatedDateStart": since_at.strftime(WATERMARK_FORMAT)} if since_at else {}
        appointments = _by_id(self.client.iter_pages(APPOINTMENTS, {**shop, **window, "includeDeleted": "true"}))
        ros = list(self.client.iter_pages(REPAIR_ORDERS, {**shop, **window}))
        if since_at is not None:
            ros += self.client.iter_pages(REPAIR_ORDERS, {**shop, "deletedDateStart": since_at.strftime(WATERMARK_FORMAT)})
        # A deleted RO read after its updated version wins: it is the newer news.
        return appointments, _by_id(ros)

    def _repair_order(self, ro: Mapping[str, Any], resolver: _Resolver) -> DmsRecord | Rejected:
        rejection = repair_order_rejection(ro)
        if rejection is not None:
            return rejection
        appointment_id = self._appointment_of(ro, resolver)
        outcome = map_repair_order(ro, resolver.party(ro), self.tz, appointment_id)
        if isinstance(outcome, DmsRecord) and appointment_id is not None:
            self.appointments.link(appointment_id, outcome.external_id)
        return outcome

    def _appointment(self, appointment: Mapping[str, Any], resolver: _Resolver) -> DmsRecord | Rejected:
        rejection = appointment_rejection(appointment)
        if rejection is not None:
            return rejection
        return map_appointment(appointment, resolver.party(appointment), self.tz)

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

    def _watermark(self, since_at: datetime | None, items: Iterable[Mapping[str, Any]], server_start: datetime) -> str | None:
        newest = max((t for t in map(parse_updated, items) if t is not None), default=since_at)
        if newest is None:
            return None
        newest = min(newest, server_start - self.clock_margin)
        if since_at is not None:
            newest = max(newest, since_at)
        return newest.astimezone(timezone.utc).strftime(WATERMARK_FORMAT)


class _Resolver:
    """Customer / vehicle / employee lookups and appointment searches, cached for one fetch."""

    KINDS = {"customerId": "customers", "vehicleId": "vehicles", "serviceWriterId": "employees"}

    def __init__(self, client: TekmetricClient, may_search: bool = True) -> None:
        self.client = client
        self.may_search = may_search
        self._cache: dict[tuple[str, int], dict | None] = {}
        self._searched: set[tuple[int, str]] = set()

    def party(self, item: Mapping[str, Any]) -> Party:
        found = {key: self._get(kind, item.get(key)) for key, kind in self.KINDS.items()}
        return Party(customer=found["customerId"], vehicle=found["vehicleId"], advisor=found["serviceWriterId"])

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
        if key not in self._cache:
            found = self.client.get_json(f"/api/v1/{kind}/{ident}", missing_ok=True)
            if found is not None and not isinstance(found, dict):
                raise DmsBadData(f"Tekmetric answered /api/v1/{kind}/{ident} with something else than an object")
            if found is None:
                log.warning("Tekmetric has no %s %s; the record goes on without it", kind, ident)
            self._cache[key] = found
        return self._cache[key]


def _collect(outcome: DmsRecord | Rejected, records: list[DmsRecord], rejected: list[Rejected]) -> None:
    (records if isinstance(outcome, DmsRecord) else rejected).append(outcome)


def _by_id(items: Iterable[dict]) -> list[dict]:
    merged: dict[object, dict] = {}
    for item in items:
        merged.pop(item.get("id"), None)
        merged[item.get("id")] = item
    return list(merged.values())


def _safe_time(raw: object) -> datetime | None:
    try:
        return tek_time(raw, UTC)
    except ValueError:
        return None


def _parse_watermark(since: str | None) -> datetime | None:
    if not since:
        return None
    try:
        parsed = parse_time(since, UTC)
    except ValueError:
        # Ours, so corruption: a full read is slower but loses nothing.
        log.warning("unreadable Tekmetric watermark %r; reading everything", since)
        return None
    return parsed.astimezone(timezone.utc) if parsed else None
