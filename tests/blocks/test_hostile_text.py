"""Text from outside (DMS fields, customer SMS, file names, what users typed) never comes alive as
Slack markup: every view builder is fed hostile values, and every `<…>` in what it builds must be
markup we wrote ourselves (a mention of an id we hold, a channel, a link we built)."""

from __future__ import annotations

import inspect
import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from blocks import (
    admin_view,
    conversation_view,
    customer_info_view,
    files_view,
    home_view,
    kit,
    merge_view,
    metrics_view,
    notice_view,
    participants_view,
    ro_card_view,
    search_view,
)
from blocks.codec import FilesState, HomeState
from core.refusals import Refusal
from customers.permission_rules import StaffPermissions
from customers.send_rules import SendRefused
from people.invitation_rules import InvitationForm
from people.notification_rules import Digest, Preferences
from people.participant_rules import Changes
from reports.metrics_rules import Counts, Metrics, Period, UserLine
from storage.models import CustomerSend, MergeJob, RepairOrder, RoFile, SmsMessage
from storage.search_index import Page

TZ = ZoneInfo("America/Toronto")
HOSTILE = "<!channel> Roy & Fils <https://evil.example|Cliquez ici> <@U0EVIL> <#C0EVIL> <!subteam^S0EVIL> <!everyone> *bold* `x`"
USERS = {"UADVISOR", "UTECH"}  # the ids we pass in: mentions of them are ours
CHANNEL = "C0REAL001"
PERMALINK = "https://dealer.slack.com/files/UTECH/F1/photo.jpg"
INVITE = "https://dealer.slack.com/admin/invites"
OURS = [
    re.compile(p)
    for p in (
        r"^@(" + "|".join(USERS) + r")$",
        r"^#" + CHANNEL + r"$",
        r"^https://slack\.com/app_redirect\?channel=" + CHANNEL + r"$",
        r"^" + re.escape(PERMALINK.replace(" ", "%20")) + r"\|[^<>|]*$",
        r"^mailto:[^<>|]*\|[^<>|]*$",
    )
]
TOKEN = re.compile(r"<([^<>]*)>")


# Not rendered as markup: ids, state, URLs, and what Slack shows as plain text (a typed search box,
# input errors). plain_text objects are skipped below: Slack never parses them.
_NOT_MARKUP = (
    "action_id",
    "block_id",
    "callback_id",
    "private_metadata",
    "value",
    "url",
    "type",
    "initial_users",
    "initial_value",
    "errors",
)


def strings(value) -> list[str]:
    """Every string a Slack client would render as mrkdwn from a view, a message or a text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return []
        return [s for k, v in value.items() if k not in _NOT_MARKUP for s in strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in strings(v)]
    return []


def live_markup(output) -> list[str]:
    """Markup in `output` that we did not put there."""
    found = []
    for text in strings(output):
        found += [token for token in TOKEN.findall(text) if not any(p.match(token) for p in OURS)]
        if "<!" in text.replace("&lt;!", ""):
            found.append(text)
    return found


def hostile_ro(**fields) -> RepairOrder:
    values = dict(
        id=7,
        source="file",
        external_id="7",
        ro_number="48213<!here>",
        tag_number=HOSTILE,
        customer_first_name=HOSTILE,
        customer_last_name="<https://evil.example|Tremblay>",
        mobile_phone="+15145550142",
        email=f"a@b.c{HOSTILE}",
        language="fr",
        vehicle_year=2021,
        vehicle_make="<!everyone>",
        vehicle_model=HOSTILE,
        vin=HOSTILE,
        advisor_email=HOSTILE,
        status="in_progress",
        appointment_at=datetime(2026, 12, 3, 14),
        channel_id=CHANNEL,
        owner_user_id=None,
        last_activity_at=datetime(2026, 12, 3, 14),
    )
    values.update(fields)
    return RepairOrder(**values)


def hostile_file(n: int = 1, **fields) -> RoFile:
    values = dict(
        id=100 + n,
        ro=7,
        slack_file_id=f"F{n}",
        uploader_user_id="UTECH",
        kind="picture",
        name=f"{HOSTILE}{n}.jpg",
        mimetype="image/jpeg",
        size=2048,
        shared_at=datetime(2026, 12, 3, 13),
        permalink=PERMALINK,
        copy_status="stored",
    )
    values.update(fields)
    return RoFile(**values)


def hostile_send(**fields) -> CustomerSend:
    values = dict(
        id=9,
        ro=7,
        sent_by="UADVISOR",
        method="email",
        destination=f"x@y.z{HOSTILE}",
        token_id="ab" * 16,
        expires_at=datetime(2026, 12, 30),
        status="failed",
        error=f"email_rejected:{HOSTILE}",
        revoked_by=None,
    )
    values.update(fields)
    return CustomerSend(**values)


def hostile_sms(**fields) -> SmsMessage:
    values = dict(
        id=11,
        direction="in",
        ro=7,
        phone="+15145550142",
        body=f"{HOSTILE}\nsecond line",
        provider_sid="SM" + "1" * 32,
        status="received",
        media_count=2,
        created_at=datetime(2026, 12, 3, 14),
        segments=2,
        encoding="UCS-2",
    )
    values.update(fields)
    return SmsMessage(**values)


FORM = InvitationForm(name=HOSTILE, email=f"nadia{HOSTILE}@dealer.example", role="technician", note=HOSTILE)
REFUSAL = SendRefused("file_unavailable", names=HOSTILE)
PAGE = Page([hostile_ro(), hostile_ro(id=8, channel_id=None)], has_more=True, offset=0)
NAMES = {"UTECH": HOSTILE}
METRICS = Metrics(
    Period(datetime(2026, 11, 1).date(), datetime(2026, 11, 30).date()),
    [UserLine(f"U{n}", f"{HOSTILE} {n}", Counts(pictures=n, videos=1, messages=2)) for n in range(8)],
    [],
    Counts(pictures=28, videos=8, messages=16, ros=3),
)

# Every public builder of the Block Kit package, fed hostile values (a new builder must be added here).
BUILDERS = {
    "ro_card_view.card": lambda: ro_card_view.card(hostile_ro(owner_user_id="UADVISOR"), TZ, "fr-CA", conversation_url=PERMALINK),
    "ro_card_view.card (no owner)": lambda: ro_card_view.card(hostile_ro(), TZ, "en-US"),
    "ro_card_view.topic": lambda: ro_card_view.topic(hostile_ro(), TZ, "fr-CA"),
    "ro_card_view.title_mrkdwn": lambda: ro_card_view.title_mrkdwn(hostile_ro(), "en-US"),
    "ro_card_view.owner_text": lambda: ro_card_view.owner_text(hostile_ro()),
    "ro_card_view.status_note": lambda: ro_card_view.status_note("upcoming", "completed", "manual", "UTECH", "fr-CA"),
    "customer_info_view.customer_info_modal": lambda: customer_info_view.customer_info_modal(hostile_ro(), TZ, "fr-CA"),
    "search_view.ro_line": lambda: search_view.ro_line(hostile_ro(), "en-US", unread=3),
    "search_view.ro_number": lambda: search_view.ro_number(hostile_ro(), "fr-CA"),
    "search_view.ro_list": lambda: search_view.ro_list(
        search_view.search_title(HOSTILE, "en-US"), PAGE, "en-US", "people.search.more", kit.escape(HOSTILE)
    ),
    "search_view.search_title": lambda: search_view.search_title(HOSTILE, "fr-CA"),
    "search_view.list_title": lambda: search_view.list_title(True, "completed", "en-US"),
    "home_view.home_view": lambda: home_view.home_view(
        HomeState(query=HOSTILE[:100]), PAGE, {7: 2}, Preferences(True, False), "fr-CA"
    ),
    "home_view.home_view (nothing found)": lambda: home_view.home_view(
        HomeState(query=HOSTILE[:100]), Page([], False, 0), {}, Preferences(False, False), "en-US"
    ),
    "home_view.notification_text": lambda: home_view.notification_text(
        Digest("UADVISOR", 7, 2, 1, ("UTECH",), 5), hostile_ro(), "fr-CA"
    ),
    "home_view.counted": lambda: home_view.counted("people.notify.messages", 2, "en-US"),
    "files_view.files_modal": lambda: files_view.files_modal(
        hostile_ro(),
        [hostile_file(n) for n in range(12)],
        FilesState(7, selected=frozenset({101})),
        locale="fr-CA",
        tz=TZ,
        names=NAMES,
        how=kit.escape(HOSTILE),
        can_send=True,
        may_send=True,
    ),
    "files_view.sending_view": lambda: files_view.sending_view(hostile_ro(), hostile_send(status="queued"), "1 photo", "en-US"),
    "files_view.refusal (errors)": lambda: files_view.refusal(
        {"blocks": [{"type": "input", "block_id": "files_p0"}]}, REFUSAL, "fr-CA"
    ),
    "files_view.refusal (screen)": lambda: files_view.refusal({"blocks": []}, REFUSAL, "en-US"),
    "files_view.file_note": lambda: files_view.file_note(
        "too_large", HOSTILE, 10**9, "en-US", limit_bytes=500 * 10**6, attempts=5
    ),
    "files_view.counts_text": lambda: files_view.counts_text({"picture": 2, "video": 1}, "fr-CA"),
    "files_view.error_text": lambda: files_view.error_text(f"sms_rejected:{HOSTILE}", "en-US"),
    "files_view.send_note": lambda: files_view.send_note(
        hostile_send(), hostile_ro(), {"picture": 1}, locale="en-US", tz=TZ, can_retry=True
    ),
    "files_view.send_note (revoked)": lambda: files_view.send_note(
        hostile_send(revoked_at=datetime(2026, 12, 4), revoked_by="UTECH"),
        hostile_ro(),
        {"video": 1},
        locale="fr-CA",
        tz=TZ,
        can_retry=False,
    ),
    "participants_view.participants_modal": lambda: participants_view.participants_modal(
        hostile_ro(owner_user_id="UADVISOR"), ["UTECH"], "fr-CA"
    ),
    "participants_view.invitation_modal": lambda: participants_view.invitation_modal(hostile_ro(), "en-US"),
    "participants_view.invitation_errors": lambda: participants_view.invitation_errors({"name": "name_missing"}, "en-US"),
    "participants_view.refusal_lines": lambda: participants_view.refusal_lines([("UTECH", "bot"), (HOSTILE, "refused")], "en-US"),
    "participants_view.refusal_lines (groups)": lambda: participants_view.refusal_lines(
        [(HOSTILE, "refused")], "en-US", group=True
    ),
    "participants_view.changes_text": lambda: participants_view.changes_text(
        hostile_ro(), Changes(added=["UTECH"], removed=["UADVISOR"], refused=[(HOSTILE, "bot")], kept_owner="UADVISOR"), "fr-CA"
    ),
    "participants_view.invitation_for_admin": lambda: participants_view.invitation_for_admin(
        FORM, "UTECH", hostile_ro(), INVITE, "en-US"
    ),
    "admin_view.admin_modal": lambda: admin_view.admin_modal(
        [StaffPermissions("UTECH", HOSTILE, True, False, False)],
        0,
        1,
        default_can_message=True,
        locale="fr-CA",
        notice=kit.escape(HOSTILE),
    ),
    "notice_view.notice_modal": lambda: notice_view.notice_modal(kit.refusal_text(REFUSAL, "en-US"), "en-US"),
    "kit.refusal_text": lambda: kit.refusal_text(Refusal("people.search.none", query=HOSTILE), "fr-CA"),
    "conversation_view.thread_root": lambda: conversation_view.thread_root(hostile_ro(), "fr-CA"),
    "conversation_view.inbound": lambda: conversation_view.inbound(
        hostile_sms(), hostile_ro(), [hostile_ro(id=8)], locale="en-US", tz=TZ, consent="opted_out"
    ),
    "conversation_view.customer_label": lambda: conversation_view.customer_label(hostile_ro(), "+15145550142"),
    "conversation_view.media_note": lambda: conversation_view.media_note(HOSTILE, HOSTILE, "fr-CA"),
    "conversation_view.consent_note": lambda: conversation_view.consent_note("opted_in", "en-US"),
    "conversation_view.reply_note": lambda: conversation_view.reply_note(
        hostile_sms(direction="out", status="failed", error=f"sms_rejected:{HOSTILE}"), hostile_ro(), "fr-CA", can_retry=True
    ),
    "conversation_view.customer_message_dm": lambda: conversation_view.customer_message_dm(
        hostile_ro(), hostile_sms(), PERMALINK, "en-US"
    ),
    "conversation_view.unmatched_section": lambda: conversation_view.unmatched_section(
        [hostile_sms(ro=None)], 0, 2, locale="fr-CA", tz=TZ
    ),
    "conversation_view.unmatched_section (not posted)": lambda: conversation_view.unmatched_section(
        [hostile_sms(ro=hostile_ro(), handled_by="UADVISOR", error=HOSTILE)], 0, 1, locale="en-US", tz=TZ
    ),
    "conversation_view.attach_modal": lambda: conversation_view.attach_modal(hostile_sms(ro=None), "en-US"),
    "conversation_view.attached_note": lambda: conversation_view.attached_note(hostile_ro(), "fr-CA"),
    "merge_view.merge_note": lambda: merge_view.merge_note(
        MergeJob(id=3, ro=7, requested_by="UTECH", status="failed", progress=40, file_ids="[1,2]"),
        2,
        locale="fr-CA",
        error=HOSTILE,
        clip=HOSTILE,
    ),
    "merge_view.merge_note (done)": lambda: merge_view.merge_note(
        MergeJob(id=3, ro=7, requested_by="UTECH", status="done", progress=100, file_ids="[1,2]"),
        2,
        locale="en-US",
        file_name=HOSTILE,
        permalink=PERMALINK,
        seconds=75,
    ),
    "merge_view.merge_note (running)": lambda: merge_view.merge_note(
        MergeJob(id=3, ro=7, requested_by="UTECH", status="merging", progress=40, file_ids="[1,2]"), 2, locale="en-US"
    ),
    "merge_view.merging_screen": lambda: merge_view.merging_screen(3, "fr-CA"),
    "metrics_view.summary_text": lambda: metrics_view.summary_text(METRICS, "fr-CA"),
    "metrics_view.summary_text (weekly)": lambda: metrics_view.summary_text(METRICS, "en-US", weekly=True),
    "metrics_view.top_lines": lambda: metrics_view.top_lines(METRICS, "en-US"),
    "metrics_view.preparing_text": lambda: metrics_view.preparing_text(METRICS.period, "fr-CA"),
    "metrics_view.home_section": lambda: metrics_view.home_section(METRICS, "en-US"),
    "customer_info_view.conversation_fields": lambda: customer_info_view.conversation_fields(
        hostile_ro(), "en-US", opted_out=True, conversation_url=PERMALINK
    ),
}


def _public_builders() -> set[str]:
    """Every public function of every blocks/*_view.py module (a new view module is found too)."""
    import importlib
    import pkgutil

    import blocks

    names = set()
    for info in pkgutil.iter_modules(blocks.__path__):
        if not info.name.endswith("_view"):
            continue
        module = importlib.import_module(f"blocks.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                names.add(f"{info.name}.{name}")
    return names


# Not Slack markup at all: ids, labels of our own, and the invitation email (plain text, checked
# by test_an_invitation_email_is_plain_text_with_the_values_as_typed).
PLAIN_HELPERS = {
    "participants_view.invitation_email",
    "merge_view.note_block_id",
    "files_view.page_block_id",
    "ro_card_view.status_label",
    "ro_card_view.title",
    "search_view.channel_url",
    "conversation_view.inbound_block_id",
    "metrics_view.busiest",  # picks and orders lines (data, no text)
}


def test_every_builder_is_fed_hostile_text():
    covered = {name.split(" (")[0] for name in BUILDERS}
    assert _public_builders() - PLAIN_HELPERS - covered == set()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_no_markup_from_outside_comes_alive(name):
    output = BUILDERS[name]()
    assert live_markup(output) == [], json.dumps(output, ensure_ascii=False)[:2000]


def test_the_check_sees_live_markup():
    """A test of the test: unescaped hostile text is caught, our own markup is not."""
    assert live_markup({"text": HOSTILE})
    assert live_markup({"type": "mrkdwn", "text": "hi <@U0EVIL>"}) == ["@U0EVIL"]
    assert live_markup([f"<@UTECH> in <#{CHANNEL}>", kit.link(PERMALINK, HOSTILE), kit.escape(HOSTILE)]) == []


def test_plain_text_titles_show_the_name_as_typed():
    """A header is plain_text: Slack never parses it, so it carries the name as the DMS has it."""
    _, blocks = ro_card_view.card(hostile_ro(), TZ, "en-US")
    assert (
        blocks[0]["text"]["type"] == "plain_text"
        and "<!channel> Roy & Fils <https://evil.example|Cliquez ici>" in blocks[0]["text"]["text"]
    )


def test_topic_lines_lose_their_angle_brackets():
    assert "<" not in ro_card_view.topic(hostile_ro(), TZ, "en-US") and "‹!channel›" in ro_card_view.topic(
        hostile_ro(), TZ, "en-US"
    )


def test_an_invitation_email_is_plain_text_with_the_values_as_typed():
    subject, body = participants_view.invitation_email(FORM, "Luc", hostile_ro(), INVITE, "en-US")
    assert HOSTILE in body and "&lt;" not in body


def _elements(value):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _elements(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _elements(v)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_middleware_reads_back_every_value_and_metadata_the_views_write(name):
    """Each button value and each modal's metadata we write is listed, with its record type, in the
    middleware's tables: what a view sends out, the middleware can read when Slack sends it back."""
    from blocks.codec import decode, kind_of
    from handlers.request_middleware import METADATA, VALUES

    for element in _elements(BUILDERS[name]()):
        if element.get("type") == "button" and kind_of(element.get("value")):
            assert element["action_id"] in VALUES, element["action_id"]
            decode(element["value"], VALUES[element["action_id"]])
        if element.get("type") == "modal":
            assert element["callback_id"] in METADATA, element["callback_id"]
            if element.get("private_metadata"):
                decode(element["private_metadata"], METADATA[element["callback_id"]])


def _plain_texts(value) -> list[str]:
    if isinstance(value, dict):
        found = [value["text"]] if value.get("type") == "plain_text" and isinstance(value.get("text"), str) else []
        return found + [t for v in value.values() for t in _plain_texts(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _plain_texts(v)]
    return []


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_plain_text_shows_outside_text_as_typed_not_escaped_twice(name):
    """Slack shows plain_text literally: "&amp;" there is what the user would read."""
    escaped = [text for text in _plain_texts(BUILDERS[name]()) if re.search(r"&(amp|lt|gt);", text)]
    assert escaped == []
