"""Write file-feed CSVs for tests, in the contract's columns."""

from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = [
    "ro_number",
    "tag_number",
    "status",
    "appointment_at",
    "promised_at",
    "closed_at",
    "customer_first_name",
    "customer_last_name",
    "mobile_phone",
    "email",
    "language",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "vin",
    "advisor_email",
]


def row(ro_number: str, appointment_at: str = "2026-11-29T09:00", **fields: str) -> dict:
    base = {
        "ro_number": ro_number,
        "tag_number": f"T{ro_number[-3:]}",
        "status": "open",
        "appointment_at": appointment_at,
        "customer_first_name": "Jean",
        "customer_last_name": "Tremblay",
        "mobile_phone": "514 555-0142",
        "email": "jean@example.com",
        "language": "fr",
        "vehicle_year": "2021",
        "vehicle_make": "Honda",
        "vehicle_model": "Civic",
        "vin": "2HGFC2F59MH512345",
        "advisor_email": "marie.roy@dealer.example",
    }
    base.update(fields)
    return base


def write_feed(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for item in rows:
            writer.writerow({k: item.get(k, "") for k in COLUMNS})
    return path
