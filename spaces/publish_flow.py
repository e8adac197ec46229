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
from core.i18n import t
from slackapi.errors import SlackError, SlackErrorCode
from slackapi.service import INVITE_BATCH
from slackapi.services import Services
from spaces.archive_rules import needs_unarchive
from spaces.channel_names import carries_number, channel_name
from storage import leases as lease
from storage.models import Participant, RepairOrder, StaffUser, StatusChange, to_utc_naive, utcnow
from storage.values import COMPLETED

log = logging.getLogger(__name__)
# What Slack answers a bot token's conversations.unarchive: not_in_channel (archiving removed the
# bot), channel_not_found (a private channel the bot is no longer in is invisible to it).
_CANNOT_UNARCHIVE = ("not_in_channel", "channel_not_found")
# An RO without a channel: what it had in Slack is forgotten (a new channel brings all of it back).
NO_CHANNEL = dict(channel_id=None, channel_name=None, card_ts=None, card_pinned=False, topic="", conversation_ts=None)
MAX_NAME_ATTEMPTS = 50
# One RO's Slack calls; renewed while they wait out rate limits, freed soon if the process dies.
RO_CLAIM_TTL = timedelta(seconds=60)
# Passes over one RO changed again while it was being published; beyond that, the next run's turn.
MAX_ROUNDS = 3
# conversations.create calls for one name when the answer never comes (the client leaves it to us).
CREATE_ATTEMPTS = 3
# conversations.rename answers that no later try would change.
_RENAME_REFUSALS = {
    "not_authorized",
    "restricted_action",
    "not_in_channel",
    "method_not_supported_for_channel_type",
    "invalid_name",
    "invalid_name_maxlength",
    "invalid_name_punctuation",
    "invalid_name_required",
    "invalid_name_specials",
}


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
            if exc.code is SlackErrorCode.IS_INACTIVE and ro.channel_id and self._deleted(ro.channel_id):
                exc = SlackError(exc.method, SlackErrorCode.CHANNEL_NOT_FOUND.value)
            if exc.code is SlackErrorCode.CHANNEL_NOT_FOUND and ro.channel_id:
                # Someone deleted the channel: the RO has none now (forget_channel says what follows).
                log.info("RO %s: channel %s was deleted", ro.ro_number, ro.channel_id)
                forget_channel(ro.id, ro.channel_id)
                return
            if exc.code not in (SlackErrorCode.IS_ARCHIVED, SlackErrorCode.IS_INACTIVE):
                raise
            # Archived on purpose (by staff, or by the archive job while the RO stays completed):
            # leave it archived and quiet. One the app archived is unarchived when the RO reopens.
            log.info("RO %s: channel archived, Slack left as it is", ro.ro_number)
            self._mark_clean(ro)

    def _unarchive(self, ro: RepairOrder) -> None:
        """The archive job archived the channel and the RO is open again: bring the channel back,
        or, when Slack will not let the bot (it answers a bot token not_in_channel: archiving took
        the bot out, and Slack documents that bot tokens cannot unarchive), give the RO a new
        channel that links the archived one (`_retire`, then `_carry_over`)."""
        try:
            self.slack.call("conversations.unarchive", channel=ro.channel_id)
        except SlackError as exc:
            if exc.raw_code in _CANNOT_UNARCHIVE:
                self._retire(ro)
                return
            if exc.raw_code != "not_archived":  # staff unarchived it already: nothing to do
                raise
        RepairOrder.update(channel_archived_at=None, archived_by_app=False, archive_note_ts=None).where(
            RepairOrder.id == ro.id
        ).execute()
        ro.channel_archived_at, ro.archived_by_app, ro.archive_note_ts = None, False, None
        log.info("RO %s: reopened, channel #%s unarchived", ro.ro_number, ro.channel_name)

    def _retire(self, ro: RepairOrder) -> None:
        """The archived channel stays archived; the RO has none until this publish makes one. Its
        participants stay (they are invited to the new one) and the old id is kept to link it."""
        old, now = ro.channel_id, utcnow()
        fields = dict(
            replaced_channel_id=old,
            **NO_CHANNEL,
            channel_archived_at=None,
            archived_by_app=False,
            archive_note_ts=None,
            updated_at=now,
        )
        RepairOrder.update(**fields).where((RepairOrder.id == ro.id) & (RepairOrder.channel_id == old)).execute()
        for name, value in fields.items():
            setattr(ro, name, value)
        log.info("RO %s: reopened; Slack would not unarchive %s for the bot, a new channel follows", ro.ro_number, old)

    def _carry_over(self, ro: RepairOrder, locale: str | None) -> None:
        """In the new channel of a reopened RO: its people invited back, and a note linking the
        archived channel (its messages, files and card). Done again after a crash until recorded."""
        people = [
            user_id
            for (user_id,) in Participant.select(Participant.user_id)
            .where((Participant.ro == ro.id) & (Participant.active == True))
            .order_by(Participant.id)
            .tuples()
            if user_id != self.slack.bot_user_id
        ]
        for start in range(0, len(people), INVITE_BATCH):
            # Per-person refusals (already in, deactivated since) leave the others invited.
            self.slack.invite_many(ro.channel_id, people[start : start + INVITE_BATCH])
        self.slack.post(ro.channel_id, t("archive.replaced", locale, old=f"<#{ro.replaced_channel_id}>"))
        RepairOrder.update(replaced_channel_id=None).where(RepairOrder.id == ro.id).execute()
        ro.replaced_channel_id = None

    def _deleted(self, channel_id: str) -> bool:
        """chat.update answers is_inactive for an archived channel and for a deleted one: which?"""
        try:
            self.slack.channel_info(channel_id)
        except SlackError as exc:
            return exc.code is SlackErrorCode.CHANNEL_NOT_FOUND
        return False

    def _publish(self, ro: RepairOrder, report: PublishReport) -> None:
        created = False
        if needs_unarchive(ro):
            self._unarchive(ro)  # or retired: the RO then gets a new channel below
        if not ro.channel_id:
            if ro.channel_gone_at and ro.status == COMPLETED:
                # Its channel was deleted after the work was done: no new one for a finished RO
                # (reopening it brings one back).
                self._mark_clean(ro)
                return
            created = self._ensure_channel(ro)
            report.channels_created += int(created)
            RepairOrder.update(channel_gone_at=None).where(RepairOrder.id == ro.id).execute()
        else:
            self._ensure_name(ro)
        self._ensure_owner(ro)
        locale = self._card_locale(ro)
        if ro.replaced_channel_id:
            self._carry_over(ro, locale)
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
            ro.card_pinned = False
            RepairOrder.update(card_ts=ro.card_ts, card_pinned=False).where(RepairOrder.id == ro.id).execute()
            # A fresh card already shows the current status: no note for what came before it.
            StatusChange.update(announced=True).where(StatusChange.ro == ro.id).execute()
        report.cards_updated += int(updated)
        pin_failure = self._ensure_pinned(ro)
        new_topic = ro_card.topic(ro, self.tz, locale)
        if new_topic != ro.topic:
            self.slack.set_topic(ro.channel_id, new_topic)
            RepairOrder.update(topic=new_topic).where(RepairOrder.id == ro.id).execute()
        report.notes_posted += self.announce_status_changes(ro, locale)
        if pin_failure is not None:
            raise pin_failure  # the RO stays dirty: the next sync pins it
        self._mark_clean(ro)

    def _ensure_pinned(self, ro: RepairOrder) -> SlackError | None:
        """Pin the card unless it is pinned already. A pin Slack refused does not hold up the
        topic and the notes: it is returned, recorded as not pinned, and tried at the next sync."""
        if ro.card_pinned:
            return None
        try:
            self.slack.pin(ro.channel_id, ro.card_ts)
        except SlackError as exc:
            if exc.code in (SlackErrorCode.CHANNEL_NOT_FOUND, SlackErrorCode.IS_ARCHIVED):
                raise
            log.warning("RO %s: could not pin the card (%s); the next sync tries again", ro.ro_number, exc.raw_code)
            return exc
        ro.card_pinned = True
        RepairOrder.update(card_pinned=True).where((RepairOrder.id == ro.id) & (RepairOrder.card_ts == ro.card_ts)).execute()
        return None

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
        """Create (or recover) the RO's channel. True when a channel was created now.

        Each name is remembered (`channel_name`) before Slack is asked for it. `name_taken` for a
        name an earlier, interrupted attempt asked for may be our own channel: it is looked for
        among the bot's own channels. Any other `name_taken` is someone else's channel (perhaps a
        private one we cannot see): straight to the next suffix, no listing of the workspace."""
        names = [channel_name(ro.ro_number, ro.customer_last_name, n) for n in range(1, MAX_NAME_ATTEMPTS + 1)]
        # The name an earlier, interrupted attempt asked Slack for: that channel may exist already.
        maybe_ours = {ro.channel_name} if ro.channel_name else set()
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
                channel = self._create(name, maybe_ours)
            except SlackError as exc:
                if exc.code is not SlackErrorCode.NAME_TAKEN:
                    raise
            else:
                self._record_channel(ro, channel["id"])
                return True
            existing = self._own_channel_named(name) if name in maybe_ours else None
            if (
                existing
                and self._is_ours(existing)
                and not RepairOrder.select().where(RepairOrder.channel_id == existing["id"]).exists()
            ):
                log.info("RO %s: adopting channel #%s left by an interrupted run", ro.ro_number, name)
                self._record_channel(ro, existing["id"])
                return False
        raise SlackError("conversations.create", "name_taken")

    def _create(self, name: str, maybe_ours: set[str]) -> dict:
        """conversations.create; asked again when no answer came (Slack may have created it: the
        name then counts as maybe ours, so its `name_taken` is looked into)."""
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return self.slack.create_channel(name)
            except SlackError as exc:
                if not exc.unanswered or attempt == CREATE_ATTEMPTS:
                    raise
                maybe_ours.add(name)
        raise AssertionError("unreachable")

    def _record_channel(self, ro: RepairOrder, channel_id: str) -> None:
        ro.channel_id = channel_id
        RepairOrder.update(channel_id=channel_id, channel_name=ro.channel_name).where(RepairOrder.id == ro.id).execute()

    def _own_channel_named(self, name: str) -> dict | None:
        # The bot's own live channels only (users.conversations), never the whole workspace.
        return next((c for c in self.slack.iter_member_channels() if c.get("name") == name), None)

    def _is_ours(self, channel: dict) -> bool:
        return channel.get("creator") == self.slack.bot_user_id

    def _ensure_name(self, ro: RepairOrder) -> None:
        """An appointment's space (`ro-a1234-…`) whose RO number is now written takes the RO's name."""
        if not ro.channel_name or carries_number(ro.channel_name, ro.ro_number):
            return
        current: str | None = None
        for n in range(1, MAX_NAME_ATTEMPTS + 1):
            name = channel_name(ro.ro_number, ro.customer_last_name, n)
            try:
                self.slack.rename_channel(ro.channel_id, name)
            except SlackError as exc:
                if exc.code is not SlackErrorCode.NAME_TAKEN:
                    if exc.raw_code in _RENAME_REFUSALS:
                        # Slack will not rename it (not ours, a name it refuses): the space keeps its name.
                        log.warning("RO %s: could not rename #%s: %s", ro.ro_number, ro.channel_name, exc.raw_code)
                        return
                    raise
                # Taken: by an earlier rename of ours whose answer was lost, or by someone else.
                if current is None:
                    current = self.slack.channel_info(ro.channel_id).get("name", "")
                if current != name:
                    continue
            log.info("RO %s: #%s renamed #%s", ro.ro_number, ro.channel_name, name)
            ro.channel_name = name
            RepairOrder.update(channel_name=name).where(RepairOrder.id == ro.id).execute()
            return
        log.warning("RO %s: no free name to rename #%s to", ro.ro_number, ro.channel_name)

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


def forget_channel(ro_id: int, channel_id: str) -> bool:
    """The RO's channel was deleted in Slack (`channel_deleted`, or `channel_not_found` while
    publishing): the RO is recorded as having no channel, nobody is in it any more, and the RO is
    marked for Slack. An open RO gets a new channel, card and advisor at the next publish; a
    completed one stays out of Slack until it is reopened. True when this call recorded it."""
    now = utcnow()
    forgotten = (
        RepairOrder.update(
            **NO_CHANNEL,
            channel_gone_at=now,
            slack_dirty=True,
            updated_at=now,
        )
        .where((RepairOrder.id == ro_id) & (RepairOrder.channel_id == channel_id))
        .execute()
    )
    if forgotten:
        Participant.update(active=False, removed_at=now).where((Participant.ro == ro_id) & (Participant.active == True)).execute()
    return bool(forgotten)


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
