"""What the sync engine sees of a DMS, and the factory that picks one from the settings."""

from __future__ import annotations

from typing import Protocol
from zoneinfo import ZoneInfo

from .records import FetchResult

DEFAULT_TIMEOUT_SECONDS = 15.0
DEFAULT_TIMEZONE = "America/Toronto"
DEFAULT_LOOKBACK_DAYS = 14


class Connector(Protocol):
    source: str

    def fetch(self, since: str | None) -> FetchResult:
        """Records changed since the watermark `since` (or the whole set); raises DmsError."""
        ...

    def check(self) -> str:
        """One line saying what was reached; raises DmsError when it cannot be."""
        ...


def make_connector(settings: object) -> Connector:
    """The connector named by ``settings.dms`` ("file" or "tekmetric")."""
    kind = str(getattr(settings, "dms", "file") or "file").strip().lower()
    tz = getattr(settings, "shop_timezone", None) or DEFAULT_TIMEZONE
    if not isinstance(tz, ZoneInfo):
        tz = ZoneInfo(str(tz))
    if kind == "file":
        from .file_feed import FileFeedConnector

        path = getattr(settings, "dms_file", None)
        if not path:
            raise ValueError("DMS=file needs DMS_FILE (the path of the CSV or JSON feed)")
        return FileFeedConnector(path, tz)
    if kind == "tekmetric":
        from .tekmetric import TekmetricConnector

        required = {
            "TEKMETRIC_URL": getattr(settings, "tekmetric_url", None),
            "TEKMETRIC_CLIENT_ID": getattr(settings, "tekmetric_client_id", None),
            "TEKMETRIC_CLIENT_SECRET": getattr(settings, "tekmetric_client_secret", None),
            "TEKMETRIC_SHOP_ID": getattr(settings, "tekmetric_shop_id", None),
        }
        missing = [name for name, value in required.items() if value in (None, "")]
        if missing:
            raise ValueError(f"DMS=tekmetric needs {', '.join(missing)}")
        timeout = getattr(settings, "dms_timeout_seconds", None) or DEFAULT_TIMEOUT_SECONDS
        lookback = getattr(settings, "sync_lookback_days", None)
        return TekmetricConnector(
            required["TEKMETRIC_URL"],
            required["TEKMETRIC_CLIENT_ID"],
            required["TEKMETRIC_CLIENT_SECRET"],
            required["TEKMETRIC_SHOP_ID"],
            tz,
            timeout=float(timeout),
            # The first read starts this many days back, like the sync engine's look-back window.
            lookback_days=float(lookback if lookback is not None else DEFAULT_LOOKBACK_DAYS),
        )
    raise ValueError(f"unknown DMS {kind!r}: set DMS to 'file' or 'tekmetric'")


def open_connector(settings: object) -> Connector:
    """The configured DMS; the bundled sample feed is rendered (once, dated from today) when no DMS_FILE is set."""
    if getattr(settings, "dms", "file") == "file" and getattr(settings, "dms_file_is_sample", False):
        from datetime import datetime
        from pathlib import Path

        from .sample_feed import ensure_sample_feed

        ensure_sample_feed(Path(settings.dms_file), datetime.now(settings.shop_timezone).date())
    return make_connector(settings)
