"""Pure mapping from Tekmetric JSON objects to ``DmsRecord`` / ``Rejected``.

The field and status tables live in the ``dms.tekmetric`` module docstring.
Nothing here talks to the network: the connector resolves customers, vehicles and
employees and passes them in.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from core.logsafe import mask_phone

from .normalize import clean, parse_email, parse_phone, parse_time, parse_vin, parse_year
from .records import DmsRecord, Rejected, Removal

log = logging.getLogger(__name__)

SOURCE = "tekmetric"
UTC = ZoneInfo("UTC")

# repairOrderStatus.id -> (name, closed)
RO_STATUSES: dict[int, tuple[str, bool]] = {
    1: ("Estimate", False),
    2: ("Work in progress", False),
    3: ("Complete", False),  # work done, not yet posted: the car is still waiting for its owner
    4: ("Saved for later", True),  # declined or postponed: nothing is being done to the car
    5: ("Posted", True),
    6: ("Accounts receivable", True),
}
RO_DELETED = 7
APPOINTMENT_CANCELLED = {"CANCELED", "CANCELLED"}
APPOINTMENT_NO_SHOW = "NO_SHOW"
_MOBILE_TYPES = {"mobile", "cell", "cellular", "cell phone", "mobile phone", "cellulaire"}


@dataclass(frozen=True)
class Party:
    """What an RO or appointment needs from its customer, vehicle and advisor lookups."""

    customer: Mapping[str, Any] | None = None
    vehicle: Mapping[str, Any] | None = None
    advisor: Mapping[str, Any] | None = None
    unknown: tuple[str, ...] = ()  # "customer" / "vehicle" / "advisor": the lookup was refused


# What a refused lookup leaves unknown (DmsRecord field names).
UNKNOWN_FIELDS = {
    "customer": ("customer_first_name", "customer_last_name", "mobile_phone", "email"),
    "vehicle": ("vehicle_year", "vehicle_make", "vehicle_model", "vin"),
    "advisor": ("advisor_email",),
}


def ro_ref(ro: Mapping[str, Any]) -> str:
    return f"ro:{ro.get('id')}"


def appointment_ref(appointment: Mapping[str, Any]) -> str:
    return f"appointment:{appointment.get('id')}"


def tek_time(raw: object, tz: ZoneInfo) -> datetime | None:
    """A Tekmetric timestamp in the shop's zone.

    Tekmetric writes most times with a ``Z``; some appointment times come without
    an offset, and its own examples show those are UTC too, not shop-local.
    """
    parsed = parse_time(raw, UTC)
    return parsed.astimezone(tz) if parsed is not None else None


def ro_status_id(ro: Mapping[str, Any]) -> int | None:
    status = ro.get("repairOrderStatus")
    raw = status.get("id") if isinstance(status, dict) else ro.get("repairOrderStatusId")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def repair_order_rejection(ro: Mapping[str, Any]) -> Rejected | None:
    """Why this RO is not a space, before anything is looked up for it; None when it is one."""
    if ro.get("id") in (None, ""):
        return Rejected("ro:?", f"RO {clean(ro.get('repairOrderNumber')) or '?'} has no id")
    if ro_status_id(ro) == RO_DELETED or ro.get("deletedDate"):
        return Rejected(ro_ref(ro), f"RO {clean(ro.get('repairOrderNumber')) or '?'} deleted in Tekmetric")
    if clean(ro.get("repairOrderNumber")) is None:
        return Rejected(ro_ref(ro), "no repairOrderNumber")
    return None


def repair_order_removal(ro: Mapping[str, Any], tz: ZoneInfo) -> Removal | None:
    """A deleted RO (status 7 or a deletedDate): its space is closed, not left open."""
    if ro.get("id") in (None, "") or not (ro_status_id(ro) == RO_DELETED or ro.get("deletedDate")):
        return None
    return Removal(SOURCE, ro_ref(ro), clean(ro.get("repairOrderNumber")), "deleted", _removed_at(ro, tz))


def appointment_removal(appointment: Mapping[str, Any], tz: ZoneInfo) -> Removal | None:
    """A deleted or cancelled appointment: its space (while it is still the appointment's) is closed."""
    if appointment.get("id") in (None, ""):
        return None
    if appointment.get("deletedDate"):
        reason = "deleted"
    elif appointment_status(appointment) in APPOINTMENT_CANCELLED:
        reason = "cancelled"
    else:
        return None
    return Removal(SOURCE, appointment_ref(appointment), f"A{appointment.get('id')}", reason, _removed_at(appointment, tz))


def _removed_at(item: Mapping[str, Any], tz: ZoneInfo) -> datetime | None:
    for key in ("deletedDate", "updatedDate"):
        try:
            value = tek_time(item.get(key), tz)
        except ValueError:
            continue
        if value is not None:
            return value
    return None


def map_repair_order(
    ro: Mapping[str, Any], party: Party, tz: ZoneInfo, appointment_id: int | None = None
) -> DmsRecord | Rejected:
    rejection = repair_order_rejection(ro)
    if rejection is not None:
        return rejection
    ref, number = ro_ref(ro), str(clean(ro.get("repairOrderNumber")))
    closed = RO_STATUSES.get(ro_status_id(ro), ("unknown", False))[1]
    try:
        appointment_at = tek_time(ro.get("appointmentStartTime"), tz)
        promised_at = tek_time(ro.get("customerTimeOut"), tz)
        closed_at = _closed_at(ro, tz) if closed else None
    except ValueError as exc:
        return Rejected(ref, f"RO {number}: {exc}")
    return _record(
        external_id=ref,
        ro_number=number,
        tag_number=clean(ro.get("keytag")),
        closed=closed,
        appointment_at=appointment_at,
        promised_at=promised_at,
        closed_at=closed_at,
        party=party,
        aliases=(f"appointment:{appointment_id}",) if appointment_id is not None else (),
    )


def appointment_status(appointment: Mapping[str, Any]) -> str:
    return str(appointment.get("appointmentStatus") or appointment.get("status") or "").strip().upper()


def appointment_rejection(appointment: Mapping[str, Any]) -> Rejected | None:
    """Why this appointment is not a space, before anything is looked up for it; None when it is one."""
    ref = appointment_ref(appointment)
    if appointment.get("id") in (None, ""):
        return Rejected("appointment:?", "appointment has no id")
    if appointment.get("deletedDate"):
        return Rejected(ref, "appointment deleted in Tekmetric")
    if appointment_status(appointment) in APPOINTMENT_CANCELLED:
        return Rejected(ref, "appointment cancelled in Tekmetric")
    if appointment.get("customerId") in (None, "", 0):
        return Rejected(ref, "appointment has no customer (a calendar block?)")
    return None


def map_appointment(appointment: Mapping[str, Any], party: Party, tz: ZoneInfo) -> DmsRecord | Rejected:
    rejection = appointment_rejection(appointment)
    if rejection is not None:
        return rejection
    # A no-show never becomes an RO: complete its space rather than leave it open forever.
    no_show = appointment_status(appointment) == APPOINTMENT_NO_SHOW
    try:
        start = tek_time(appointment.get("startTime"), tz)
        promised = tek_time(appointment.get("pickupTime"), tz)
        closed_at = tek_time(appointment.get("updatedDate"), tz) if no_show else None
    except ValueError as exc:
        return Rejected(appointment_ref(appointment), f"appointment: {exc}")
    return _record(
        external_id=appointment_ref(appointment),
        ro_number=f"A{appointment.get('id')}",
        tag_number=None,
        closed=no_show,
        appointment_at=start,
        promised_at=promised,
        closed_at=closed_at,
        party=party,
        aliases=(),
    )


def is_live_appointment(appointment: Mapping[str, Any]) -> bool:
    """Could an RO still come out of this appointment?"""
    return not appointment.get("deletedDate") and appointment_status(appointment) not in APPOINTMENT_CANCELLED | {
        APPOINTMENT_NO_SHOW
    }


def pick_mobile(phones: object) -> str | None:
    """The raw number to text: a Mobile/Cell one (primary first), else the primary one."""
    if not isinstance(phones, list):
        return None
    entries = [p for p in phones if isinstance(p, dict) and clean(p.get("number"))]
    mobiles = [p for p in entries if str(p.get("type") or "").strip().lower() in _MOBILE_TYPES]
    primaries = [p for p in entries if p.get("primary") is True]
    for group in (
        [p for p in mobiles if p in primaries],
        mobiles,
        primaries,
    ):
        if group:
            return clean(group[0].get("number"))
    return None


def _closed_at(ro: Mapping[str, Any], tz: ZoneInfo) -> datetime | None:
    for key in ("postedDate", "completedDate", "updatedDate"):
        value = tek_time(ro.get(key), tz)
        if value is not None:
            return value
    return None


def _record(
    *,
    external_id: str,
    ro_number: str,
    tag_number: str | None,
    closed: bool,
    appointment_at: datetime | None,
    promised_at: datetime | None,
    closed_at: datetime | None,
    party: Party,
    aliases: tuple[str, ...],
) -> DmsRecord:
    customer = party.customer or {}
    vehicle = party.vehicle or {}
    return DmsRecord(
        source=SOURCE,
        external_id=external_id,
        ro_number=ro_number,
        tag_number=tag_number,
        closed=closed,
        appointment_at=appointment_at,
        promised_at=promised_at,
        closed_at=closed_at,
        customer_first_name=clean(customer.get("firstName")) or "",
        customer_last_name=clean(customer.get("lastName")) or "",
        mobile_phone=_customer_mobile(customer, external_id),
        email=_first_email(customer.get("email")),
        # Tekmetric keeps no language per customer.
        language="en",
        vehicle_year=parse_year(vehicle.get("year")),
        vehicle_make=clean(vehicle.get("make")),
        vehicle_model=clean(vehicle.get("model")),
        vin=parse_vin(vehicle.get("vin")),
        advisor_email=_first_email((party.advisor or {}).get("email")),
        aliases=aliases,
        unknown=tuple(name for part in party.unknown for name in UNKNOWN_FIELDS[part]),
    )


def _customer_mobile(customer: Mapping[str, Any], external_id: str) -> str | None:
    raw = pick_mobile(customer.get("phone") or customer.get("phones"))
    try:
        return parse_phone(raw)
    except ValueError:
        # The RO still deserves its space; only texting the customer is off.
        log.warning(
            "%s: customer %s has an invalid phone %s; kept without mobile", external_id, customer.get("id"), mask_phone(raw)
        )
        return None


def _first_email(raw: object) -> str | None:
    values = raw if isinstance(raw, list) else [raw]
    for value in values:
        email = parse_email(value)
        if email:
            return email
    return None


def parse_updated(item: Mapping[str, Any]) -> datetime | None:
    """The newest of updatedDate / deletedDate, in UTC; None when absent or unreadable."""
    times = []
    for key in ("updatedDate", "deletedDate"):
        try:
            value = parse_time(item.get(key), UTC)
        except ValueError:
            continue
        if value is not None:
            times.append(value.astimezone(timezone.utc))
    return max(times, default=None)
