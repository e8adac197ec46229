"""Which Tekmetric appointment an RO came from.

Tekmetric's documented RO has no appointment id, only ``appointmentStartTime`` and the
vehicle; some accounts also send ``appointmentId``. The index remembers the appointments
this connector has seen (across fetches, in memory) so an RO can be matched to the
appointment space that already exists, and so that appointment is not offered again as
a space of its own once its RO exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# An RO opened from an appointment carries its start time; a wide window still matches
# when one side was written in local time and the other in UTC.
MATCH_WINDOW = timedelta(hours=14)
FORGET_AFTER = timedelta(days=45)


@dataclass(frozen=True)
class Slot:
    appointment_id: int
    vehicle_id: int | None
    customer_id: int | None
    start: datetime | None  # aware
    live: bool  # not cancelled, deleted or a no-show


class AppointmentIndex:
    def __init__(self) -> None:
        self._slots: dict[int, Slot] = {}
        self._ro_for: dict[int, str] = {}  # appointment id -> "ro:<id>" that supersedes it

    def remember(self, slots: Iterable[Slot]) -> None:
        for slot in slots:
            self._slots[slot.appointment_id] = slot

    def find(self, vehicle_id: object, customer_id: object, when: datetime, ro_external_id: str) -> int | None:
        """The live appointment of this vehicle (and customer) that starts nearest ``when``.

        One already taken by another RO is not offered again: a second RO of the same visit
        must get its own space, not be folded into the first one's.
        """
        vehicle, customer = as_id(vehicle_id), as_id(customer_id)
        candidates = [
            s
            for s in self._slots.values()
            if s.live
            and s.start is not None
            and vehicle is not None
            and s.vehicle_id == vehicle
            and (customer is None or s.customer_id in (None, customer))
            and abs(s.start - when) <= MATCH_WINDOW
            and self._ro_for.get(s.appointment_id, ro_external_id) == ro_external_id
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda s: (abs(s.start - when), s.appointment_id)).appointment_id

    def link(self, appointment_id: int, ro_external_id: str) -> None:
        self._ro_for[appointment_id] = ro_external_id

    def superseded(self, appointment_id: object) -> bool:
        return as_id(appointment_id) in self._ro_for

    def forget_before(self, moment: datetime) -> None:
        """Drop appointments long past, so the index does not grow for ever."""
        old = [i for i, s in self._slots.items() if s.start is not None and s.start < moment - FORGET_AFTER]
        for appointment_id in old:
            self._slots.pop(appointment_id, None)
            self._ro_for.pop(appointment_id, None)


def as_id(raw: object) -> int | None:
    if raw is None or raw == "" or isinstance(raw, bool):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def slot_from(appointment: Mapping[str, Any], start: datetime | None, live: bool) -> Slot | None:
    appointment_id = as_id(appointment.get("id"))
    if appointment_id is None:
        return None
    return Slot(appointment_id, as_id(appointment.get("vehicleId")), as_id(appointment.get("customerId")), start, live)
