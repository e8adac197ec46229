"""Configuration: read once from the environment (and `.env`), validated, typed.

Every problem names the variable and how to fix it, so `bot.py` can print it and exit 2
without a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SAMPLE_FEED = "data/sample_feed.csv"


class ConfigError(Exception):
    """One or more configuration problems, each naming its variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str | None
    slack_signing_secret: str | None
    slack_api_url: str
    database_url: str
    media_dir: Path
    public_url: str
    port: int
    shop_timezone: ZoneInfo
    shop_name: str
    shop_phone: str | None
    dms: str
    dms_file: str
    dms_file_is_sample: bool
    tekmetric_url: str | None
    tekmetric_client_id: str | None
    tekmetric_client_secret: str | None
    tekmetric_shop_id: str | None
    sync_interval_minutes: int
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_from: str | None
    twilio_api_url: str
    smtp_url: str | None
    mail_from: str | None
    admin_slack_user_ids: tuple[str, ...]
    report_channel: str | None
    report_cron: str | None
    max_body_bytes: int
    share_ttl_days: int
    max_file_mb: int
    default_can_message_customers: bool
    secret_key: str | None
    dms_timeout_seconds: float = 15.0
    # People and finding things: batched notification DMs, the invite link given to admins.
    notify_interval_minutes: int = 5
    slack_invite_url: str | None = None
    sync_lookback_days: int = 14
    # Files and the customer: photos may also ride along as MMS (within the gateway's limits).
    send_mms: bool = True
    # Files and the customer: how long the mail server may take to answer (connect, each reply).
    smtp_timeout_seconds: float = 20.0
    # How long Twilio may take to answer a send or a lookup; a send it has not answered by then is "unsure".
    twilio_timeout_seconds: float = 20.0
    # The task queue: in the database unless REDIS_URL is set; worker threads per process.
    redis_url: str | None = None
    # Media in S3-compatible object storage (s3://bucket/prefix) instead of MEDIA_DIR; the endpoint for MinIO, R2….
    media_url: str | None = None
    s3_endpoint_url: str | None = None
    # The queue's name in Redis: shops sharing one Redis server each need their own.
    queue_name: str = "repair-orders"
    queue_workers: int = 3
    queue_poll_seconds: float = 1.0
    queue_retry_seconds: float = 2.0
    # The customer conversation: replies signed with the shop's name; the largest MMS media kept.
    sms_signature: bool = True
    mms_media_max_mb: int = 10
    # Merging videos: limits a merge must stay within, and how many run at once across all workers.
    merge_max_clips: int = 20
    merge_max_minutes: int = 15
    merge_max_mb: int = 2000
    merge_concurrency: int = 1
    # Metrics: the longest period one workbook covers.
    metrics_max_days: int = 400
    # Channels do not pile up: a completed RO's channel is archived this many days after it completed (0 = never).
    archive_after_days: int = 14
    # Socket Mode: with an app-level token the bot connects out to Slack (no public URL for Slack).
    slack_app_token: str | None = None
    # Socket Mode: a ping this often; a connection that answers none for three is opened anew.
    socket_mode_ping_seconds: float = 10.0

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def sms_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from)

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_url)

    def signing_key(self) -> bytes:
        """Key for customer links: SECRET_KEY, else derived from the Slack signing secret."""
        import hashlib

        base = self.secret_key or self.slack_signing_secret or ""
        return hashlib.sha256(b"customer-links:" + base.encode()).digest()


def _load_dotenv() -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - dependency is pinned
        return
    # Real environment wins over .env so CI and process managers can override it.
    load_dotenv(os.environ.get("DOTENV_PATH", ROOT / ".env"), override=False)


DEFAULT_REPORT_CRON = "0 7 * * 1"  # Mondays at 07:00, shop time


def _cron(r: _Reader, name: str, default: str) -> str:
    """A five-field crontab line (minute hour day month weekday; 0 and 7 are Sunday), checked."""
    value = r.str(name, default) or default
    from core.cron import crontab_trigger

    try:
        crontab_trigger(value)
    except ValueError as exc:
        r.problems.append(f"{name}={value!r} is not a crontab line ({exc}); e.g. {default!r} is Mondays at 07:00.")
    return value


def _channel_id(r: _Reader, name: str) -> str | None:
    """A channel ID (C…/G…), not a #name: names change, IDs do not, and the Web API wants the ID."""
    value = r.str(name)
    if value and not re.fullmatch(r"[CG][A-Z0-9]{6,}", value):
        r.problems.append(
            f"{name}={value!r} is not a channel ID; in Slack open the channel's details, copy the ID at the bottom (C…)."
        )
        return None
    return value


class _Reader:
    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "")
        value = value.strip()
        return value if value else default

    def int(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a whole number; set it to e.g. {default}.")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and {maximum}" if maximum is not None else ""
            self.problems.append(f"{name}={value} is out of range; use a number between {minimum}{upper}.")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name}={raw!r} must be true or false.")
        return default

    def url(self, name: str, default: str | None, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
        value = self.str(name, default)
        if value is None:
            return None
        if not re.match(rf"^({'|'.join(schemes)})://[^\s/]+", value):
            self.problems.append(
                f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)} (got a malformed value)."
            )
        return value


def _media_url(r: _Reader) -> str | None:
    """MEDIA_URL: s3://bucket or s3://bucket/prefix (a bucket name as S3 allows them)."""
    value = r.str("MEDIA_URL")
    if not value:
        return None
    if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\s]*)?", value):
        r.problems.append(
            "MEDIA_URL must look like s3://bucket or s3://bucket/prefix (a lowercase bucket name); "
            "unset it to keep media in MEDIA_DIR."
        )
        return None
    return value.rstrip("/")


def _queue_name(r: _Reader) -> str:
    value = r.str("QUEUE_NAME", "repair-orders") or "repair-orders"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        r.problems.append("QUEUE_NAME may hold letters, digits, '-', '_' and '.' (at most 64), e.g. repair-orders-store2.")
    return value


def load_settings(env: Mapping[str, str] | None = None, *, require_slack: bool = False, read_dotenv: bool = True) -> Settings:
    """Build Settings from `env` (default: os.environ plus `.env`). Raises ConfigError."""
    if env is None:
        if read_dotenv:
            _load_dotenv()
        env = os.environ
    r = _Reader(env)

    bot_token = r.str("SLACK_BOT_TOKEN")
    signing_secret = r.str("SLACK_SIGNING_SECRET")
    if require_slack:
        if not bot_token:
            r.problems.append(
                "SLACK_BOT_TOKEN is missing: copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth & Permissions page into .env."
            )
        if not signing_secret:
            r.problems.append(
                "SLACK_SIGNING_SECRET is missing: copy the Signing Secret from your Slack app's Basic Information page into .env."
            )
    if bot_token and not bot_token.startswith("xox"):
        r.problems.append("SLACK_BOT_TOKEN does not look like a Slack token (it should start with xoxb-).")

    app_token = r.str("SLACK_APP_TOKEN")
    if app_token and not app_token.startswith("xapp-"):
        # The value is not echoed: it may be a real token pasted in the wrong place.
        r.problems.append(
            "SLACK_APP_TOKEN is not an app-level token (it should start with xapp-): in your Slack app's "
            "Basic Information page, generate an App-Level Token with the connections:write scope."
        )

    api_url = r.url("SLACK_API_URL", "https://slack.com/api/") or "https://slack.com/api/"
    if not api_url.endswith("/"):
        api_url += "/"

    database_url = r.str("DATABASE_URL", "sqlite:///data/repair_orders.db")
    if not re.match(r"^(sqlite|postgres|postgresql)(\+pool)?://", database_url or ""):
        r.problems.append("DATABASE_URL must start with sqlite:/// or postgresql:// (e.g. sqlite:///data/repair_orders.db).")

    tz_name = r.str("SHOP_TIMEZONE", "America/Toronto")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        r.problems.append(f"SHOP_TIMEZONE={tz_name!r} is not an IANA time zone; use e.g. America/Toronto.")
        tz = ZoneInfo("America/Toronto")

    dms = (r.str("DMS", "file") or "file").lower()
    if dms not in ("file", "tekmetric"):
        r.problems.append(f"DMS={dms!r} is not supported; use file or tekmetric.")
    dms_file = r.str("DMS_FILE")
    tek = {k: r.str(f"TEKMETRIC_{k.upper()}") for k in ("url", "client_id", "client_secret", "shop_id")}
    if dms == "tekmetric":
        for key, value in tek.items():
            if not value:
                r.problems.append(f"TEKMETRIC_{key.upper()} is required when DMS=tekmetric.")
        if tek["url"]:
            r.url("TEKMETRIC_URL", None)

    twilio = {k: r.str(f"TWILIO_{k}") for k in ("ACCOUNT_SID", "AUTH_TOKEN", "FROM")}
    if any(twilio.values()) and not all(twilio.values()):
        missing = [f"TWILIO_{k}" for k, v in twilio.items() if not v]
        r.problems.append(f"SMS is half configured: set {', '.join(missing)} too (or unset all TWILIO_* to turn SMS off).")

    smtp_url = r.url("SMTP_URL", None, schemes=("smtp", "smtps"))
    admins = tuple(u.strip() for u in (r.str("ADMIN_SLACK_USER_IDS") or "").split(",") if u.strip())
    for user in admins:
        if not re.fullmatch(r"[UW][A-Z0-9]{2,}", user):
            r.problems.append(f"ADMIN_SLACK_USER_IDS contains {user!r}, which is not a Slack user ID (like U012ABCDEF).")

    settings = Settings(
        slack_bot_token=bot_token,
        slack_signing_secret=signing_secret,
        slack_api_url=api_url,
        database_url=database_url or "",
        media_dir=Path(r.str("MEDIA_DIR", "data/media") or "data/media"),
        public_url=(r.url("PUBLIC_URL", "http://localhost:3000") or "").rstrip("/"),
        port=r.int("PORT", 3000, 1, 65535),
        shop_timezone=tz,
        shop_name=r.str("SHOP_NAME", "Service") or "Service",
        shop_phone=r.str("SHOP_PHONE"),
        dms=dms,
        dms_file=dms_file or DEFAULT_SAMPLE_FEED,
        dms_file_is_sample=dms_file is None,
        tekmetric_url=tek["url"],
        tekmetric_client_id=tek["client_id"],
        tekmetric_client_secret=tek["client_secret"],
        tekmetric_shop_id=tek["shop_id"],
        sync_interval_minutes=r.int("SYNC_INTERVAL_MINUTES", 5, 1, 24 * 60),
        twilio_account_sid=twilio["ACCOUNT_SID"],
        twilio_auth_token=twilio["AUTH_TOKEN"],
        twilio_from=twilio["FROM"],
        twilio_api_url=(r.url("TWILIO_API_URL", "https://api.twilio.com") or "").rstrip("/"),
        smtp_url=smtp_url,
        mail_from=r.str("MAIL_FROM"),
        admin_slack_user_ids=admins,
        report_channel=_channel_id(r, "REPORT_CHANNEL"),
        report_cron=_cron(r, "REPORT_CRON", DEFAULT_REPORT_CRON),
        max_body_bytes=r.int("MAX_BODY_BYTES", 1_000_000, 1024),
        share_ttl_days=r.int("SHARE_TTL_DAYS", 30, 1, 3650),
        max_file_mb=r.int("MAX_FILE_MB", 500, 1),
        default_can_message_customers=r.bool("DEFAULT_CAN_MESSAGE_CUSTOMERS", True),
        secret_key=r.str("SECRET_KEY"),
        dms_timeout_seconds=float(r.int("DMS_TIMEOUT_SECONDS", 15, 1, 600)),
        notify_interval_minutes=r.int("NOTIFY_INTERVAL_MINUTES", 5, 1, 24 * 60),
        slack_invite_url=r.url("SLACK_INVITE_URL", None),
        sync_lookback_days=r.int("SYNC_LOOKBACK_DAYS", 14, 0, 3650),
        send_mms=r.bool("SEND_MMS", True),
        smtp_timeout_seconds=float(r.int("SMTP_TIMEOUT_SECONDS", 20, 1, 600)),
        twilio_timeout_seconds=r.int("TWILIO_TIMEOUT_MS", 20_000, 10, 600_000) / 1000,
        redis_url=r.url("REDIS_URL", None, schemes=("redis", "rediss", "unix")),
        media_url=_media_url(r),
        s3_endpoint_url=r.url("S3_ENDPOINT_URL", None),
        queue_name=_queue_name(r),
        queue_workers=r.int("QUEUE_WORKERS", 3, 1, 64),
        queue_poll_seconds=r.int("QUEUE_POLL_MS", 1000, 10, 60_000) / 1000,
        queue_retry_seconds=r.int("QUEUE_RETRY_MS", 2000, 10, 600_000) / 1000,
        sms_signature=r.bool("SMS_SIGNATURE", True),
        mms_media_max_mb=r.int("MMS_MEDIA_MAX_MB", 10, 1, 100),
        merge_max_clips=r.int("MERGE_MAX_CLIPS", 20, 2, 200),
        merge_max_minutes=r.int("MERGE_MAX_MINUTES", 15, 1, 240),
        merge_max_mb=r.int("MERGE_MAX_MB", 2000, 1, 100_000),
        merge_concurrency=r.int("MERGE_CONCURRENCY", 1, 1, 64),
        metrics_max_days=r.int("METRICS_MAX_DAYS", 400, 1, 3660),
        archive_after_days=r.int("ARCHIVE_AFTER_DAYS", 14, 0, 3650),
        slack_app_token=app_token,
        socket_mode_ping_seconds=float(r.int("SOCKET_MODE_PING_SECONDS", 10, 1, 300)),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings
