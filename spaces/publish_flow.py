"""Make Slack show each RO as the database has it: channel, pinned card, topic, advisor, status notes.

Only ROs marked `slack_dirty` are touched, so an unchanged RO costs no Slack call. Every step is
recorded as soon as Slack confirms it, and every step can be redone safely, so an interruption at
any point (even between creating a channel and storing its id) is repaired by the next run
without a second channel or a second card.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from blocks import ro_card_view as ro_card
from slackapi.errors import SlackError, SlackErrorCode
from slackapi.services import Services
from spaces.channel_names import channel_name
from storage import leases as lease
from storage.models import Participant, RepairOrder, StaffUser, StatusChange, to_utc_naive, utcnow

log = logging.getLogger(__name__)
MAX_NAME_ATTEMPTS = 50
# One RO's Slack calls; renewed while they wait out rate limits, freed soon if the process dies.
RO_CLAIM_TTL = timedelta(seconds=60)
# Passes over one RO changed again while it was being published; beyond that, the next run's turn.
MAX_ROUNDS = 3


@dataclass
class PublishReport:
    channels_created: int = 0
    cards_posted: int = 0
    cards_updated: int = 0
    notes_posted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (ro number, reason)
    stopped_early: str | None = None


class Publisher:
    def __init__(self, services: Services):
        self.slack = services.slack
        self.directory = services.directory
        self.tz = services.settings.shop_timezone
        self._channels_by_name: dict[str, dict] | None = None

    def publish_pending(self, now: datetime | None = None, limit: int | None = None) -> PublishReport:
        """Publish every dirty RO: today's and coming appointments first, soonest first (they are
        what staff open at 7:00), then the ones in the past, most recent first."""
        report = PublishReport()
        today = datetime.combine((now or datetime.now(self.tz)).astimezone(self.tz).date(), time(0), self.tz)
        dirty = RepairOrder.slack_dirty == True
        coming = RepairOrder.appointment_at >= to_utc_naive(today)
        queries = [
            RepairOrder.select().where(dirty & coming).order_by(RepairOrder.appointment_at, RepairOrder.id),
            RepairOrder.select().where(dirty & ~coming).order_by(RepairOrder.appointment_at.desc(), RepairOrder.id),
            RepairOrder.select().where(dirty & RepairOrder.appointment_at.is_null()).order_by(RepairOrder.id),
        ]
        done = 0
        for query in queries:
            # Ids first, then each RO fresh: on SQLite a SELECT still being read while we write
            # keeps an old snapshot, and any other writer (the lease renewer, the web process)
            # would then make our next write fail with "database is locked".
            for ro_id in [ro.id for ro in query.select(RepairOrder.id)]:
                if limit is not None and done >= limit:
                    return report
                ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
                if ro is None or not ro.slack_dirty:
                    continue
                done += 1
                try:
                    self.publish(ro, report)
                except SlackError as exc:
                    report.failed.append((ro.ro_number, exc.raw_code))
                    log.warning("RO %s: Slack %s failed: %s", ro.ro_number, exc.method, exc.raw_code)
                    if exc.code in (SlackErrorCode.RATELIMITED, SlackErrorCode.INVALID_AUTH, SlackErrorCode.NOT_AUTHED):
                        # Still limited after the client's own waits, or no access: the next run resumes.
                        report.stopped_early = exc.raw_code
                        return report
        return report

    def publish(self, ro: RepairOrder, report: PublishReport | None = None) -> None:
        """Make Slack show the RO, if it is dirty. The scheduler's pass and a manual status change
        can publish the same RO at once: an older card landing last would hide the newer status, and
        two publishers without a card would post two. So one publisher at a time per RO; one that
        finds the RO claimed leaves it dirty and returns, and the holder looks again once it lets go."""
        report = report or PublishReport()
        for _ in range(MAX_ROUNDS):
            try:
                with lease.held(f"ro-{ro.id}", RO_CLAIM_TTL):
                    self._publish_current(ro.id, report)
            except lease.LeaseBusy:
                return
            # Checked after letting go: a publisher turned away while we held the claim counts on it.
            if not RepairOrder.select().where((RepairOrder.id == ro.id) & (RepairOrder.slack_dirty == True)).exists():
                return

    def _publish_current(self, ro_id: int, report: PublishReport) -> None:
        # Read under the claim: a copy read before may predate a change another publisher has shown.
        ro = RepairOrder.get_or_none(RepairOrder.id == ro_id)
        if ro is None or not ro.slack_dirty:
            return
        try:
            self._publish(ro, report)
        except SlackError as exc:
            if exc.code not in (SlackErrorCode.IS_ARCHIVED, SlackErrorCode.IS_INACTIVE):
                raise
            # Staff archived the channel on purpose: leave it archived and quiet.
            log.info("RO %s: channel archived, Slack left as it is", ro.ro_number)
            self._mark_clean(ro)

    def _publish(self, ro: RepairOrder, report: PublishReport) -> None:
        created = False
        if not ro.channel_id:
            created = self._ensure_channel(ro)
            report.channels_created += int(created)
        self._ensure_owner(ro)
        locale = self._card_locale(ro)
        text, blocks = ro_card.card(ro, self.tz, locale, self._conversation_url(ro))
        updated = False
        if ro.card_ts:
            try:
                self.slack.update(ro.channel_id, ro.card_ts, text, blocks)
                updated = True
            except SlackError as exc:
                if exc.code is not SlackErrorCode.MESSAGE_NOT_FOUND:
                    raise
                ro.card_ts = None  # someone deleted the card: the RO gets a new one
        if not ro.card_ts:
            existing = None if created else self._find_card(ro)
            if existing:
                ro.card_ts = existing
                self.slack.update(ro.channel_id, ro.card_ts, text, blocks)
            else:
                ro.card_ts = self.slack.post(ro.channel_id, text, blocks)["ts"]
                report.cards_posted += 1
            RepairOrder.update(card_ts=ro.card_ts).where(RepairOrder.id == ro.id).execute()
            self.slack.pin(ro.channel_id, ro.card_ts)
            # A fresh card already shows the current status: no note for what came before it.
            StatusChange.update(announced=True).where(StatusChange.ro == ro.id).execute()
        report.cards_updated += int(updated)
        new_topic = ro_card.topic(ro, self.tz, locale)
        if new_topic != ro.topic:
            self.slack.set_topic(ro.channel_id, new_topic)
            RepairOrder.update(topic=new_topic).where(RepairOrder.id == ro.id).execute()
        report.notes_posted += self.announce_status_changes(ro, locale)
        self._mark_clean(ro)

    def _mark_clean(self, ro: RepairOrder) -> None:
        # Only if nothing changed the RO while we were talking to Slack.
        RepairOrder.update(slack_dirty=False).where(
            (RepairOrder.id == ro.id) & (RepairOrder.updated_at == ro.updated_at)
        ).execute()

    def announce_status_changes(self, ro: RepairOrder, locale: str | None) -> int:
        posted = 0
        pending = list(
            StatusChange.select().where((StatusChange.ro == ro.id) & (StatusChange.announced == False)).order_by(StatusChange.id)
        )
        for change in pending:
            claimed = (
                StatusChange.update(announced=True)
                .where((StatusChange.id == change.id) & (StatusChange.announced == False))
                .execute()
            )
            if not claimed:
                continue  # another process posted it
            try:
                self.slack.post(
                    ro.channel_id, ro_card.status_note(change.old_status, change.new_status, change.source, change.actor, locale)
                )
            except SlackError:
                StatusChange.update(announced=False).where(StatusChange.id == change.id).execute()
                raise
            posted += 1
        return posted

    # -- channel -----------------------------------------------------------------------------
    def _ensure_channel(self, ro: RepairOrder) -> bool:
        """Create (or recover) the RO's channel. True when a channel was created now."""
        names = [channel_name(ro.ro_number, ro.customer_last_name, n) for n in range(1, MAX_NAME_ATTEMPTS + 1)]
        # Resume from the name an earlier, interrupted run chose: that channel may exist already.
        if ro.channel_name in names:
            names = names[names.index(ro.channel_name) :]
        elif ro.channel_name:
            names.insert(0, ro.channel_name)
        for name in names:
            # Remember the name before asking Slack, so a crash right after Slack creates the channel
            # leaves a trace that lets the next run adopt that channel instead of making another.
            RepairOrder.update(channel_name=name).where(RepairOrder.id == ro.id).execute()
            ro.channel_name = name
            try:
                channel = self.slack.create_channel(name)
                self._record_channel(ro, channel["id"])
                return True
            except SlackError as exc:
                if exc.code is not SlackErrorCode.NAME_TAKEN:
                    raise
            existing = self._channel_named(name)
            if (
                existing
                and self._is_ours(existing)
                and not RepairOrder.select().where(RepairOrder.channel_id == existing["id"]).exists()
            ):
                log.info("RO %s: adopting channel #%s left by an interrupted run", ro.ro_number, name)
                if existing.get("is_archived"):
                    self.slack.call("conversations.unarchive", channel=existing["id"])
                self._record_channel(ro, existing["id"])
                return False
        raise SlackError("conversations.create", "name_taken")

    def _record_channel(self, ro: RepairOrder, channel_id: str) -> None:
        ro.channel_id = channel_id
        RepairOrder.update(channel_id=channel_id, channel_name=ro.channel_name).where(RepairOrder.id == ro.id).execute()

    def _channel_named(self, name: str) -> dict | None:
        if self._channels_by_name is None or name not in self._channels_by_name:
            # One listing per run, refreshed only when a name is missing from it.
            self._channels_by_name = {c["name"]: c for c in self.slack.iter_channels()}
        return self._channels_by_name.get(name)

    def _is_ours(self, channel: dict) -> bool:
        return channel.get("creator") == self.slack.bot_user_id

    def _find_card(self, ro: RepairOrder) -> str | None:
        """A card a previous, interrupted run posted but did not record. A failed look raises (the
        RO stays dirty for the next pass): taking it for "no card" would post a second one."""
        history = self.slack.call("conversations.history", channel=ro.channel_id, limit=50)
        for message in history.get("messages", []):
            blocks = message.get("blocks") or []
            if message.get("user") == self.slack.bot_user_id and blocks and blocks[0].get("block_id") == ro_card.CARD_BLOCK:
                return message["ts"]
        return None

    # -- people ------------------------------------------------------------------------------
    def _ensure_owner(self, ro: RepairOrder) -> None:
        if not ro.advisor_email:
            return
        owner = StaffUser.get_or_none(StaffUser.email == ro.advisor_email)
        if owner is None:
            profile = self.slack.lookup_by_email(ro.advisor_email)
            if profile is None:
                log.info("RO %s: advisor %s has no Slack account", ro.ro_number, ro.advisor_email)
                return
            owner = self.directory.remember(profile)
        if (
            owner.slack_user_id != ro.owner_user_id
            or not Participant.select()
            .where((Participant.ro == ro.id) & (Participant.user_id == owner.slack_user_id) & (Participant.active == True))
            .exists()
        ):
            try:
                self.slack.invite(ro.channel_id, [owner.slack_user_id])
            except SlackError as exc:
                if exc.code is not SlackErrorCode.ALREADY_IN_CHANNEL:
                    log.warning("RO %s: could not invite the advisor: %s", ro.ro_number, exc.raw_code)
                    return
            record_owner(ro, owner.slack_user_id)

    def _card_locale(self, ro: RepairOrder) -> str | None:
        # The card speaks the advisor's language: in a Quebec shop the advisor's Slack is in French.
        return self.directory.locale(ro.owner_user_id) if ro.owner_user_id else None

    def _conversation_url(self, ro: RepairOrder) -> str | None:
        if ro.channel_id and ro.conversation_ts:
            return self.slack.permalink(ro.channel_id, ro.conversation_ts)
        return None


def record_owner(ro: RepairOrder, user_id: str) -> None:
    """The advisor owns the RO and is one of its participants."""
    ro.owner_user_id = user_id
    RepairOrder.update(owner_user_id=user_id).where(RepairOrder.id == ro.id).execute()
    row = Participant.get_or_none((Participant.ro == ro.id) & (Participant.user_id == user_id))
    if row is None:
        Participant.insert(
            ro=ro.id, user_id=user_id, role="owner", added_by="dms", added_at=utcnow()
        ).on_conflict_ignore().execute()
    else:
        Participant.update(role="owner", active=True, removed_at=None).where(Participant.id == row.id).execute()
