"""The file-feed connector (``DMS=file``): a CSV or JSON export read afresh at every sync.

Keys (DESIGN.md "Contract"): ro_number, tag_number, status (open|closed), appointment_at,
promised_at, closed_at, customer_first_name, customer_last_name, mobile_phone, email,
language (fr|en), vehicle_year, vehicle_make, vehicle_model, vin, advisor_email.
Empty means unknown; extra keys are ignored; header case, spaces and hyphens do not matter.

Per-row problems (no ro_number, a date or phone that does not parse, an unknown status,
a duplicate ro_number, more or fewer fields than the header) reject that row and the rest goes
on. Problems with the file itself raise, so the caller never sees a partial snapshot. DMS exports
are often written while we read them, so a feed that changed size during the read, or whose last
line has no line end (the writer is still at it, or it was cut), is not read: nothing changes and
the next sync tries again.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from core.logsafe import mask_phone

from .errors import DmsBadData, DmsUnavailable
from .normalize import (
    clean,
    parse_email,
    parse_language,
    parse_phone,
    parse_time,
    parse_vin,
    parse_year,
)
from .records import DmsRecord, FetchResult, Rejected

log = logging.getLogger(__name__)

SOURCE = "file"
_DELIMITERS = (",", ";", "\t", "|")
_TIME_KEYS = ("appointment_at", "promised_at", "closed_at")
_FIELD_COUNT = "\x00field count"  # marks a row whose field count is wrong (no header key can hold a NUL)


class RowError(ValueError):
    """A row that cannot become a record; the message is the rejection reason."""


class FileFeedConnector:
    source = SOURCE

    def __init__(self, path: str | Path, tz: ZoneInfo, opener: Callable[[Path], BinaryIO] = lambda p: p.open("rb")) -> None:
        self.path = Path(path)
        self.tz = tz
        self.opener = opener  # how the file is opened: a test hands in a writer that is still at it

    def fetch(self, since: str | None = None) -> FetchResult:
        """The whole feed as it is now; `since` is ignored (a file has no history)."""
        rows = list(read_rows(self.path, self.opener))
        records, rejected = rows_to_records(rows, self.tz)
        return FetchResult(records=records, rejected=rejected, snapshot=True, watermark=None)

    def check(self) -> str:
        result = self.fetch(None)
        return f"file feed {self.path}: {len(result.records)} repair orders, {len(result.rejected)} rejected rows"


# --- reading the file -------------------------------------------------------


def read_rows(path: Path, opener: Callable[[Path], BinaryIO] = lambda p: p.open("rb")) -> Iterator[tuple[str, dict[str, str]]]:
    """(ref, row) pairs with normalised keys and string values; raises for an unreadable file."""
    text = _read_text(path, opener)
    if _looks_like_json(path, text):
        return _json_rows(path, text)
    return _csv_rows(path, text)


def _read_bytes(path: Path, opener: Callable[[Path], BinaryIO]) -> bytes:
    """The file's bytes, if its size and time stayed the same while we read it."""
    before = path.stat()
    with opener(path) as handle:
        data = handle.read()
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        raise DmsUnavailable(f"DMS feed {path} changed while it was read (being written?), so it was not read")
    return data


def _read_text(path: Path, opener: Callable[[Path], BinaryIO]) -> str:
    try:
        data = _read_bytes(path, opener)
    except FileNotFoundError:
        raise DmsUnavailable(f"DMS feed file {path} does not exist (yet); check DMS_FILE") from None
    except IsADirectoryError:
        raise DmsBadData(f"DMS feed {path} is a directory, not a file; check DMS_FILE") from None
    except OSError as exc:
        # Often transient: the exporter holds a lock or is replacing the file.
        raise DmsUnavailable(f"cannot read DMS feed file {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # Spreadsheet exports on Windows are often cp1252; accents survive that decoding.
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise DmsBadData(f"DMS feed {path} is not UTF-8 text") from None
    log.warning("DMS feed %s is not UTF-8; read it as Windows-1252", path)
    return text


def _looks_like_json(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return True
    if suffix == ".csv":
        return False
    return text.lstrip()[:1] in ("[", "{")


def _json_rows(path: Path, text: str) -> Iterator[tuple[str, dict[str, str]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DmsBadData(f"DMS feed {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise DmsBadData(f"DMS feed {path} must be a JSON array of objects")
    if data and not any("ro_number" in _normalise_keys(item) for item in data):
        raise DmsBadData(f"DMS feed {path} has no ro_number key")
    return ((f"item {i}", _normalise_keys(item)) for i, item in enumerate(data, start=1))


def _csv_rows(path: Path, text: str) -> Iterator[tuple[str, dict[str, str]]]:
    header_line = text.lstrip("\r\n").split("\n", 1)[0]
    if not header_line.strip():
        raise DmsBadData(f"DMS feed {path} is empty: expected a header row")
    delimiter = max(_DELIMITERS, key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [_normalise_key(name) for name in next((r for r in reader if r), [])]
        if "ro_number" not in header:
            raise DmsBadData(f"DMS feed {path} has no ro_number column (columns: {', '.join(header)})")
        if not text.endswith(("\n", "\r")):
            raise DmsUnavailable(
                f"DMS feed {path} ends in the middle of a line (no line end after the last row): "
                "it is being written or was cut, so it was not read"
            )
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                # A row cut short (or with a stray delimiter) would blank or shift its RO's fields.
                rows.append((f"row {reader.line_num}", {_FIELD_COUNT: f"{len(values)} fields, the header has {len(header)}"}))
                continue
            rows.append((f"row {reader.line_num}", {k: v for k, v in zip(header, values) if k}))
    except csv.Error as exc:
        raise DmsBadData(f"DMS feed {path} is not a readable CSV: {exc}") from None
    return iter(rows)


def _normalise_key(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _normalise_keys(item: Mapping[object, object]) -> dict[str, str]:
    return {_normalise_key(k): _value_text(v) for k, v in item.items()}


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


# --- rows to records --------------------------------------------------------


def rows_to_records(
    rows: list[tuple[str, dict[str, str]]],
    tz: ZoneInfo,
) -> tuple[list[DmsRecord], list[Rejected]]:
    """Records for the good rows, rejections for the others; a repeated ro_number keeps the last."""
    by_number: dict[str, tuple[str, DmsRecord]] = {}
    rejected: list[Rejected] = []
    for ref, row in rows:
        try:
            record = row_to_record(row, tz)
        except RowError as exc:
            rejected.append(Rejected(ref=ref, reason=str(exc)))
            continue
        earlier = by_number.pop(record.ro_number, None)
        if earlier is not None:
            rejected.append(
                Rejected(ref=earlier[0], reason=f"duplicate ro_number {record.ro_number}: replaced by {ref} further down")
            )
        by_number[record.ro_number] = (ref, record)
    return [record for _, record in by_number.values()], rejected


def row_to_record(row: Mapping[str, str], tz: ZoneInfo) -> DmsRecord:
    if _FIELD_COUNT in row:
        raise RowError(row[_FIELD_COUNT])
    ro_number = clean(row.get("ro_number"))
    if ro_number is None:
        raise RowError("missing ro_number")
    times = {key: _row_time(row, key, tz) for key in _TIME_KEYS}
    return DmsRecord(
        source=SOURCE,
        external_id=ro_number,
        ro_number=ro_number,
        tag_number=clean(row.get("tag_number")),
        closed=_row_status(row),
        appointment_at=times["appointment_at"],
        promised_at=times["promised_at"],
        closed_at=times["closed_at"],
        customer_first_name=clean(row.get("customer_first_name")) or "",
        customer_last_name=clean(row.get("customer_last_name")) or "",
        mobile_phone=_row_phone(row),
        email=parse_email(row.get("email")),
        language=parse_language(row.get("language")),
        vehicle_year=parse_year(row.get("vehicle_year")),
        vehicle_make=clean(row.get("vehicle_make")),
        vehicle_model=clean(row.get("vehicle_model")),
        vin=parse_vin(row.get("vin")),
        advisor_email=parse_email(row.get("advisor_email")),
    )


def _row_status(row: Mapping[str, str]) -> bool:
    status = (row.get("status") or "").strip().lower()
    if status in ("", "open"):
        return False
    if status == "closed":
        return True
    raise RowError(f"unknown status {status!r} (expected open, closed or empty)")


def _row_time(row: Mapping[str, str], key: str, tz: ZoneInfo) -> datetime | None:
    try:
        return parse_time(row.get(key), tz)
    except ValueError:
        raise RowError(f"{key} {row.get(key, '').strip()!r} is not an ISO 8601 date/time") from None


def _row_phone(row: Mapping[str, str]) -> str | None:
    raw = row.get("mobile_phone")
    try:
        return parse_phone(raw)
    except ValueError:
        raise RowError(f"mobile_phone {mask_phone(raw)} is not a valid phone number") from None
