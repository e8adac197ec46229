"""Tables of the product. Times are stored in UTC (naive UTC datetimes, as peewee does on both
SQLite and PostgreSQL); code converts to the shop's zone at the edges.
"""

from __future__ import annotations

from datetime import UTC, datetime

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from storage.db import database


def utcnow() -> datetime:
    """Naive UTC now, the storage convention."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def from_utc_naive(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    applied_at = DateTimeField(default=utcnow)


class ProcessedEvent(BaseModel):
    """Events API ids already taken, so Slack's retries are processed once."""

    event_id = CharField(primary_key=True, max_length=64)
    received_at = DateTimeField(default=utcnow, index=True)


class StaffUser(BaseModel):
    """A Slack user as the product knows them: profile cache, permissions, notification settings."""

    slack_user_id = CharField(primary_key=True, max_length=32)
    name = CharField(default="")
    real_name = CharField(default="")
    email = CharField(null=True, index=True)
    locale = CharField(null=True, max_length=16)
    is_bot = BooleanField(default=False)
    deleted = BooleanField(default=False)
    # A Slack guest (is_restricted / is_ultra_restricted): sees only the ROs whose channels they are in.
    is_guest = BooleanField(default=False)
    # None = not decided by an admin: the configured default applies.
    can_message_customers = BooleanField(null=True)
    is_admin = BooleanField(default=False)
    notify_messages = BooleanField(default=False)
    notify_files = BooleanField(default=False)
    # A DM at once (not batched) when a customer texts one of my ROs.
    notify_customer_messages = BooleanField(default=False)
    profile_fetched_at = DateTimeField(null=True)
    # May export the metrics workbooks (admins always may).
    can_see_metrics = BooleanField(default=False)


class RepairOrder(BaseModel):
    source = CharField(max_length=32)
    external_id = CharField(max_length=128)
    ro_number = CharField(max_length=64, index=True)
    tag_number = CharField(null=True, max_length=64, index=True)
    dms_closed = BooleanField(default=False)
    appointment_at = DateTimeField(null=True, index=True)
    promised_at = DateTimeField(null=True)
    closed_at = DateTimeField(null=True)
    customer_first_name = CharField(default="")
    customer_last_name = CharField(default="")
    mobile_phone = CharField(null=True, max_length=32)
    email = CharField(null=True)
    language = CharField(default="en", max_length=8)
    vehicle_year = IntegerField(null=True)
    vehicle_make = CharField(null=True)
    vehicle_model = CharField(null=True)
    vin = CharField(null=True, max_length=32)
    advisor_email = CharField(null=True)
    # Plain search text (accent-folded name, phone digits) for ad-hoc SQL and the benchmark's naive
    # baseline. Unindexed: the app searches `ro_search_term` (storage/search.py), never these.
    name_folded = CharField(default="")
    phone_digits = CharField(default="")
    # Fingerprint of the DMS record last applied; an unchanged record costs nothing.
    fingerprint = CharField(default="", max_length=64)
    status = CharField(default="upcoming", max_length=16)  # indexed with last_activity_at (Meta)
    status_manual = BooleanField(default=False)
    status_changed_at = DateTimeField(null=True)
    owner_user_id = CharField(null=True, max_length=32)  # indexed with last_activity_at (Meta)
    channel_id = CharField(null=True, unique=True, max_length=32)
    channel_name = CharField(null=True, max_length=80)
    card_ts = CharField(null=True, max_length=32)
    card_pinned = BooleanField(default=False)  # False: the card's pin is still to do (Slack refused it)
    # The channel was deleted in Slack: an open RO gets a new one, a completed one stays out of Slack.
    channel_gone_at = DateTimeField(null=True)
    # The archive job (spaces/archive_flow.py): when it archived the channel, or found it archived
    # (or refused) and left it alone; `archived_by_app` only for channels the app archived, which
    # reopening the RO unarchives (a channel staff archived by hand stays archived); the last note
    # posted before archiving, so a pass cut short by Slack's limits does not post it twice.
    channel_archived_at = DateTimeField(null=True)
    archived_by_app = BooleanField(default=False)
    archive_note_ts = CharField(null=True, max_length=32)
    # Reopened, and Slack would not let the bot unarchive its channel (no bot token may): the old
    # channel, until the new one has linked it and its people are invited there.
    replaced_channel_id = CharField(null=True, max_length=32)
    topic = CharField(default="", max_length=250)
    # Set by every change Slack must show (card, topic, status note); cleared once Slack shows it.
    slack_dirty = BooleanField(default=True, index=True)
    conversation_ts = CharField(null=True, max_length=32)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    last_activity_at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = (
            (("source", "external_id"), True),
            # Lists newest first, read in index order: "mine" (its owner arm), with and
            # without a status, and "all" of a status (storage.search_index).
            (("owner_user_id", "last_activity_at", "id"), False),
            (("owner_user_id", "status", "last_activity_at", "id"), False),
            (("status", "last_activity_at", "id"), False),
        )

    @property
    def customer_name(self) -> str:
        return " ".join(p for p in (self.customer_first_name, self.customer_last_name) if p).strip()

    @property
    def vehicle(self) -> str:
        return " ".join(str(p) for p in (self.vehicle_year, self.vehicle_make, self.vehicle_model) if p)


class RoAlias(BaseModel):
    """Other DMS ids for the same space (an appointment that later became an RO)."""

    source = CharField(max_length=32)
    alias = CharField(max_length=128)
    ro = ForeignKeyField(RepairOrder, backref="aliases", on_delete="CASCADE")

    class Meta:
        indexes = ((("source", "alias"), True),)


class Participant(BaseModel):
    ro = ForeignKeyField(RepairOrder, backref="participants", on_delete="CASCADE")
    user_id = CharField(max_length=32)
    role = CharField(default="participant", max_length=16)  # owner | participant
    active = BooleanField(default=True)
    added_by = CharField(null=True, max_length=32)
    added_at = DateTimeField(default=utcnow)
    removed_at = DateTimeField(null=True)
    # Slack's event_ts (in microseconds) of the membership fact this row shows: a member_joined /
    # member_left event older than it is stale (Slack does not deliver events in order) and is ignored.
    membership_us = BigIntegerField(null=True)
    # A copy of the RO's last_activity_at (kept by storage.search_index), so "the ROs I take part in,
    # newest first" is read in index order; None until first copied.
    activity = DateTimeField(null=True)

    class Meta:
        indexes = ((("ro", "user_id"), True), (("user_id", "active", "activity", "ro"), False))


class StatusChange(BaseModel):
    ro = ForeignKeyField(RepairOrder, backref="status_changes", on_delete="CASCADE")
    old_status = CharField(null=True, max_length=16)
    new_status = CharField(max_length=16)
    source = CharField(max_length=16)  # dms | schedule | manual
    actor = CharField(null=True, max_length=64)
    at = DateTimeField(default=utcnow)
    # Claimed atomically by whoever posts the one-line note, so it is posted once.
    announced = BooleanField(default=False, index=True)


class RoFile(BaseModel):
    ro = ForeignKeyField(RepairOrder, backref="files", on_delete="CASCADE")
    # Once per RO: the same Slack file shared into two RO channels has a row in each (same sha256).
    slack_file_id = CharField(max_length=32, index=True)
    uploader_user_id = CharField(max_length=32, index=True)
    # Who made it: staff (shared in Slack), customer (came by MMS), merged (made by the app from other files).
    origin = CharField(default="staff", max_length=16)
    # For files the app brought in itself (a customer's MMS media): what they are, once ("<MessageSid>:<n>").
    origin_ref = CharField(null=True, unique=True, max_length=80)
    # A merged video: the ids of the RO files it was made from, in playing order (JSON).
    derived_from = TextField(null=True)
    kind = CharField(max_length=16)  # picture | video | document
    name = CharField(default="")
    mimetype = CharField(default="application/octet-stream")
    size = BigIntegerField(default=0)
    shared_at = DateTimeField(default=utcnow, index=True)
    permalink = CharField(null=True, max_length=512)
    sha256 = CharField(null=True, max_length=64, index=True)
    # pending (recorded, no attempt yet) | copying (an attempt holds the claim) | stored | too_large | failed
    copy_status = CharField(default="pending", max_length=16)
    copy_attempts = IntegerField(default=0)
    # When we recorded it (shared_at is Slack's own time, maybe hours earlier): a "pending" row
    # older than media.intake_flow.STUCK_AFTER lost its copy job.
    recorded_at = DateTimeField(default=utcnow)
    # When the last copy attempt claimed the row. While "copying", only that attempt may write the
    # outcome, and a claim older than media.intake_flow.STUCK_AFTER is taken as interrupted.
    copy_claimed_at = DateTimeField(null=True)
    last_error = CharField(null=True)
    # Files and the customer: ts of the message that shared it (notes about the file go in its thread).
    share_ts = CharField(null=True, max_length=32)

    class Meta:
        indexes = ((("ro", "slack_file_id"), True),)


class CustomerSend(BaseModel):
    ro = ForeignKeyField(RepairOrder, backref="sends", on_delete="CASCADE")
    sent_by = CharField(max_length=32, index=True)
    method = CharField(max_length=8)  # sms | mms | email
    destination = CharField()
    token_id = CharField(unique=True, max_length=64)
    expires_at = DateTimeField()
    revoked_at = DateTimeField(null=True)
    status = CharField(default="queued", max_length=16)  # queued | sent | delivered | failed | opted_out
    provider_id = CharField(null=True)
    error = CharField(null=True)
    note_ts = CharField(null=True, max_length=32)
    created_at = DateTimeField(default=utcnow, index=True)
    # Files and the customer: who revoked the link, and when the status last changed.
    revoked_by = CharField(null=True, max_length=32)
    status_at = DateTimeField(null=True)
    # When an attempt began that ended without knowing whether Twilio took the text (the queue
    # gave up on it): a Retry asks Twilio before texting again.
    unsure_since = DateTimeField(null=True)


class CustomerSendFile(BaseModel):
    send = ForeignKeyField(CustomerSend, backref="items", on_delete="CASCADE")
    file = ForeignKeyField(RoFile, backref="sends", on_delete="CASCADE")


class Activity(BaseModel):
    """A message or file in an RO channel: unread counts, notifications and metrics read this."""

    ro = ForeignKeyField(RepairOrder, backref="activity", on_delete="CASCADE")
    user_id = CharField(max_length=32, index=True)
    kind = CharField(max_length=16)  # message | file
    ts = CharField(max_length=32)
    at = DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("ro", "ts", "kind"), True),)


class ReadMark(BaseModel):
    ro = ForeignKeyField(RepairOrder, on_delete="CASCADE")
    user_id = CharField(max_length=32)
    last_read_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("ro", "user_id"), True),)


class Lease(BaseModel):
    """Who runs the scheduler: one holder at a time, renewed while alive."""

    name = CharField(primary_key=True, max_length=64)
    holder = CharField(max_length=128)
    expires_at = DateTimeField()


class SyncState(BaseModel):
    source = CharField(primary_key=True, max_length=32)
    watermark = CharField(null=True)
    last_success_at = DateTimeField(null=True)
    last_error = TextField(null=True)
    last_error_at = DateTimeField(null=True)


ALL_MODELS = [
    SchemaVersion,
    ProcessedEvent,
    StaffUser,
    RepairOrder,
    RoAlias,
    Participant,
    StatusChange,
    RoFile,
    CustomerSend,
    CustomerSendFile,
    Activity,
    ReadMark,
    Lease,
    SyncState,
]


# --- People and finding things (search index, notifications, invitation requests) ---------------


class BytewiseCharField(CharField):
    """Text compared byte by byte on both databases (PostgreSQL: COLLATE "C"), so the range
    `term >= 'bel' AND term < 'bem'` is exactly "starts with bel" and is served by a plain index,
    whatever the server's default collation."""

    def ddl_datatype(self, ctx):
        from peewee import SQL

        from storage.db import is_postgres

        base = super().ddl_datatype(ctx)
        return SQL(f'{base.sql} COLLATE "C"') if is_postgres() else base


class RoSearchTerm(BaseModel):
    """One search key of an RO: a folded name word (n), its phone digits reversed (p, so "last 4
    digits" is a prefix), its RO number (r) or tag number (t), with a copy of the RO's
    last_activity_at. Every query shape is a prefix range on the (kind, term, activity, ro) index,
    which alone answers "the newest matches". Kept by storage.search_index."""

    ro = ForeignKeyField(RepairOrder, backref="search_terms", on_delete="CASCADE")
    kind = CharField(max_length=1)
    term = BytewiseCharField(max_length=64)
    activity = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("kind", "term", "activity", "ro"), False),)


class NotifyCursor(BaseModel):
    """Per user and kind: notifications only consider activity after these Activity ids (each set
    when its setting is turned on)."""

    user_id = CharField(primary_key=True, max_length=32)
    since_message_id = BigIntegerField(default=0)
    since_file_id = BigIntegerField(default=0)


class NotifyMark(BaseModel):
    """Last notification DM sent to a user about an RO, and the newest activity it covered."""

    user_id = CharField(max_length=32)
    ro = ForeignKeyField(RepairOrder, on_delete="CASCADE")
    last_activity_id = BigIntegerField(default=0)
    sent_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("user_id", "ro"), True),)


class InvitationRequest(BaseModel):
    """A staff member asked the admins to invite someone who is not in the workspace."""

    requested_by = CharField(max_length=32, index=True)
    ro = ForeignKeyField(RepairOrder, null=True, on_delete="SET NULL")
    name = CharField()
    email = CharField()
    role = CharField(default="", max_length=32)
    note = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    emailed_to = IntegerField(default=0)
    messaged_to = IntegerField(default=0)
    email_error = CharField(null=True)


ALL_MODELS += [RoSearchTerm, NotifyCursor, NotifyMark, InvitationRequest]


# --- Files and the customer (SMS opt-outs, customer-ready copies of files) ------------------------


class SmsOptOut(BaseModel):
    """A mobile number that opted out of texts (a STOP/ARRET keyword, or the gateway answered
    21610): no text goes to it until the customer opts back in (START, DEBUT…)."""

    phone = CharField(primary_key=True, max_length=32)  # E.164
    opted_out_at = DateTimeField(default=utcnow)
    source = CharField(default="twilio", max_length=16)


class MediaRendition(BaseModel):
    """The customer-ready copy of a stored blob (HEIC → JPEG, HEVC/MOV → H.264 MP4), made once per
    content at send time and stored content-addressed like the originals."""

    source_sha256 = CharField(unique=True, max_length=64)
    sha256 = CharField(max_length=64)
    mimetype = CharField(max_length=64)
    size = BigIntegerField(default=0)
    created_at = DateTimeField(default=utcnow)


class CustomerSendAttempt(BaseModel):
    """A send's delivery history, appended to and never rewritten: every delivery attempt (the
    first one and each Retry) and every delivery report from the gateway, failures included."""

    send = ForeignKeyField(CustomerSend, backref="attempts", on_delete="CASCADE")
    at = DateTimeField(default=utcnow)
    kind = CharField(max_length=8)  # attempt | report
    method = CharField(max_length=8)  # sms | mms | email
    destination = CharField(default="")
    status = CharField(max_length=16)
    error = CharField(null=True)
    provider_id = CharField(null=True)
    # A report that arrived late (e.g. "failed" after "delivered") is kept but changes nothing.
    applied = BooleanField(default=True)


ALL_MODELS += [SmsOptOut, MediaRendition, CustomerSendAttempt]


# --- Ground: the durable task queue's journal --------------------------------------------------


class TaskRecord(BaseModel):
    """One piece of background work, stored before Slack gets its ack (taskqueue.queue).

    huey carries a message naming the record; this row is what makes the work durable and run
    once: a worker claims it (status "running", claimed_by, claim_until renewed while it runs),
    and a sweep hands it to another worker when its holder died (pid gone, or the claim expired).
    """

    name = CharField(max_length=64)
    args = TextField(default="[]")  # JSON
    # Same key, same work: enqueueing it again returns the first record (retried events, double clicks).
    key = CharField(null=True, unique=True, max_length=191)
    # Records of one lane run one at a time (a send's note redraws, one merge per RO).
    lane = CharField(null=True, max_length=64)
    status = CharField(default="queued", max_length=16)  # queued | waiting (for its lane) | running | done | failed
    attempts = IntegerField(default=0)
    max_attempts = IntegerField(default=5)
    run_after = DateTimeField(default=utcnow)
    claimed_by = CharField(null=True, max_length=128)
    claim_until = DateTimeField(null=True)
    last_error = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("status", "run_after"), False),)


ALL_MODELS += [TaskRecord]


# --- The customer conversation: SMS in and out of an RO's "Customer conversation" thread -----------


class SmsMessage(BaseModel):
    """One text with a customer: in (from their mobile, via Twilio's webhook) or out (a staff reply
    in the RO's conversation thread). Unmatched inbound texts (ro None) wait for an admin."""

    direction = CharField(max_length=3)  # in | out
    ro = ForeignKeyField(RepairOrder, null=True, backref="sms", on_delete="SET NULL")
    phone = CharField(max_length=32, index=True)  # the customer's number, E.164
    body = TextField(default="")
    provider_sid = CharField(null=True, unique=True, max_length=64)  # Twilio's MessageSid
    slack_ts = CharField(null=True, max_length=32)  # in: our post in the thread; out: the staff member's reply
    note_ts = CharField(null=True, max_length=32)  # out: our delivery note under the reply
    author_user_id = CharField(null=True, max_length=32)  # out: who replied
    # in: received | posted | unmatched | dismissed; out: queued | sending | sent | delivered | failed | refused
    status = CharField(max_length=16)
    error = CharField(null=True)
    keyword = CharField(null=True, max_length=16)  # opt_out | opt_in | help: what the text asked, if anything
    encoding = CharField(null=True, max_length=8)  # out: GSM-7 | UCS-2
    segments = IntegerField(default=0)
    media_count = IntegerField(default=0)
    media = TextField(default="[]")  # in: JSON [[url, content type], …] as Twilio listed them
    created_at = DateTimeField(default=utcnow)
    status_at = DateTimeField(default=utcnow)
    handled_by = CharField(null=True, max_length=32)  # unmatched: the admin who attached or dismissed it
    # out: an attempt that may or may not have reached Twilio (a time-out, a worker killed on the
    # way) began then; the next attempt, automatic or Retry, asks Twilio before texting again.
    unsure_since = DateTimeField(null=True)
    earlier_sids = TextField(default="")  # out: the sids of this reply's earlier attempts, space-separated

    class Meta:
        indexes = ((("ro", "slack_ts"), True), (("status", "created_at"), False), (("ro", "created_at"), False))


ALL_MODELS += [SmsMessage]


# --- Merging videos ------------------------------------------------------------------------------


class MergeJob(BaseModel):
    """One "Merge videos" asked from the Files view: its clips, where it stands, what it made."""

    ro = ForeignKeyField(RepairOrder, backref="merges", on_delete="CASCADE")
    requested_by = CharField(max_length=32)
    file_ids = TextField()  # JSON: the RO files ticked (the merge orders them by recording time)
    # queued | merging | uploading | done | failed
    status = CharField(default="queued", max_length=16)
    mode = CharField(null=True, max_length=8)  # copy | encode
    progress = IntegerField(default=0)  # percent
    note_ts = CharField(null=True, max_length=32)
    error = TextField(null=True)
    failed_clip = CharField(null=True)  # the name of the clip that caused a failure
    result = ForeignKeyField(RoFile, null=True, on_delete="SET NULL")
    upload_name = CharField(null=True)
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    # One press of Merge: the Files modal (its view id) and the ticked files. A second press of the
    # same (a double click) finds this job instead of making another merged video.
    request_key = CharField(null=True, unique=True, max_length=191)
    # The ffmpeg working on it: pid, start time (ms, tells it from a process that got the pid
    # later) and the holder id of the worker that started it. Whoever takes over from a dead
    # worker stops it (media.merge_flow), so no more than MERGE_CONCURRENCY ever run.
    ffmpeg_pid = IntegerField(null=True)
    ffmpeg_started = BigIntegerField(null=True)
    ffmpeg_holder = CharField(null=True, max_length=128)


ALL_MODELS += [MergeJob]


class MetricEvent(BaseModel):
    """One thing that happened in an RO space, as the metrics count it: written where the event is
    already handled (no extra Slack call), never deleted with the Slack message or file it was.

    kind: picture | video (a staff member's file in an RO channel) | message (posted in an RO
    channel) | reply (a conversation reply that went out to the customer) | send (a Files send
    that went out; `amount` = its files) | view (a send's page opened by the customer, once per
    send; `user_id` = the sender) | customer_text (a customer's text in an RO; `user_id` None).
    `ref` names what it was (a Slack file id, channel:ts, a send or text id): unique with `kind`,
    so a retried event is recorded once."""

    kind = CharField(max_length=16)
    at = DateTimeField(default=utcnow)  # naive UTC, like every time column
    user_id = CharField(null=True, max_length=32)
    ro = ForeignKeyField(RepairOrder, backref="metric_events", on_delete="CASCADE", null=True)
    ref = CharField(max_length=96)
    amount = IntegerField(default=1)

    class Meta:
        # The metrics read a period's rows from these two alone (reports.metrics_rules): counts by
        # person, day and RO from the first, each RO's conversation in time order from the second.
        # Kind first: every query names its kinds, and SQLite (never ANALYZEd) then prefers it to
        # the unique (kind, ref), which covers nothing (a year's count went through 1M table reads).
        indexes = (
            (("kind", "ref"), True),
            (("kind", "at", "user_id", "ro", "amount"), False),
            (("ro", "at", "kind", "user_id"), False),
        )


ALL_MODELS += [MetricEvent]


class WeeklyReport(BaseModel):
    """The last week queued for REPORT_CHANNEL (reports.metrics_flow.weekly_report): the ticks queue
    the weeks after it, so weeks missed while no scheduler ran are caught up and none is posted twice.
    One row per channel: a channel newly set starts with last week only."""

    channel = CharField(primary_key=True, max_length=64)
    last_week = CharField(max_length=10)  # the Monday starting it, YYYY-MM-DD (ISO text sorts as dates do)
    updated_at = DateTimeField(default=utcnow)


ALL_MODELS += [WeeklyReport]
