"""The one repair-order model every connector produces and the sync engine consumes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

LANGUAGES = ("fr", "en")


@dataclass(frozen=True)
class DmsRecord:
    source: str  # "file" | "tekmetric"
    external_id: str  # stable id within source: file -> ro_number; tekmetric -> "ro:<id>" / "appointment:<id>"
    ro_number: str  # what staff call it; a Tekmetric appointment without RO is "A<id>"
    tag_number: str | None
    closed: bool  # the DMS says the RO is closed / complete
    appointment_at: datetime | None
    promised_at: datetime | None
    closed_at: datetime | None
    customer_first_name: str
    customer_last_name: str
    mobile_phone: str | None  # E.164
    email: str | None  # lower-cased
    language: str  # "fr" | "en"
    vehicle_year: int | None
    vehicle_make: str | None
    vehicle_model: str | None
    vin: str | None  # upper-cased, stripped
    advisor_email: str | None  # lower-cased
    aliases: tuple[str, ...] = ()  # other external ids that denote the same space
    # Fields the connector could not read this time (a lookup refused): the stored values stay.
    unknown: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Fail at the connector, where the cause is known, not later in the engine.
        if not self.external_id or not self.ro_number:
            raise ValueError("DmsRecord needs an external_id and a ro_number")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, not {self.language!r}")
        for name in ("appointment_at", "promised_at", "closed_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if not isinstance(self.aliases, tuple):
            object.__setattr__(self, "aliases", tuple(self.aliases))
        if not isinstance(self.unknown, tuple):
            object.__setattr__(self, "unknown", tuple(self.unknown))
        names = {f.name for f in dataclasses.fields(self)}
        if not set(self.unknown) <= names:
            raise ValueError(f"unknown names fields a DmsRecord does not have: {sorted(set(self.unknown) - names)}")

    def unknown_columns(self) -> set[str]:
        """RO columns to leave as stored: the unknown fields and what is derived from them."""
        columns = set(self.unknown)
        if columns & {"customer_first_name", "customer_last_name"}:
            columns.add("name_folded")
        if "mobile_phone" in columns:
            columns.add("phone_digits")
        return columns

    def fingerprint(self) -> str:
        """sha256 hex of every field; equal records give equal fingerprints across runs and zones."""
        payload = {f.name: _canonical(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if not self.unknown:
            del payload["unknown"]  # fingerprints stored before this field existed stay valid
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("ascii")).hexdigest()


def _canonical(value: object) -> object:
    # The same instant must hash the same whatever zone it was expressed in.
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True)
class Rejected:
    ref: str  # e.g. "row 7" / "ro:123"
    reason: str  # human-readable; never a full phone number


REMOVAL_REASONS = ("deleted", "cancelled")


@dataclass(frozen=True)
class Removal:
    """The DMS deleted an RO or cancelled an appointment: its space, if it has one, is closed."""

    source: str
    external_id: str
    ro_number: str | None
    reason: str  # "deleted" | "cancelled"
    at: datetime | None = None  # aware; when the DMS says it happened

    def __post_init__(self) -> None:
        if self.reason not in REMOVAL_REASONS:
            raise ValueError(f"reason must be one of {REMOVAL_REASONS}, not {self.reason!r}")
        if self.at is not None and self.at.utcoffset() is None:
            raise ValueError("at must be timezone-aware")

    @property
    def marker(self) -> str:
        """Stored as the RO's fingerprint: the removal is applied once."""
        return f"removed:{self.reason}"


@dataclass
class FetchResult:
    records: list[DmsRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    snapshot: bool = False  # True when records is the whole current set (file feed)
    watermark: str | None = None  # opaque; pass back as `since` next time
    removed: list[Removal] = field(default_factory=list)
    # Re-read to refresh spaces that exist (a periodic reconciliation): never creates a space.
    refresh: list[DmsRecord] = field(default_factory=list)
    # Why the read stopped before the end; the watermark marks where the next sync resumes.
    incomplete: str | None = None
    old_closed: int = 0  # closed before the look-back window, left out by the connector
