"""The RO card (pinned in every RO channel), its topic line and the status-change note.

The one place that builds them; the publisher and `/ro info` both render through here.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from core.i18n import language_of, t
from dms.status import STATUSES
from storage.models import RepairOrder, from_utc_naive

CARD_BLOCK = "ro_card"
STATUS_ACTION = "ro_status_select"
INFO_ACTION = "ro_customer_info"
PARTICIPANTS_ACTION = "ro_participants"
FILES_ACTION = "ro_files"
CONVERSATION_ACTION = "ro_conversation"
# Not 🔵: App Home uses the blue dot for unread activity, as the reference product does.
STATUS_EMOJI = {"in_progress": "🟢", "upcoming": "📅", "completed": "✅"}

_DAYS = {"en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "fr": ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."]}
_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "fr": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."],
}


def when(value: datetime | None, tz: ZoneInfo, locale: str | None) -> str:
    """A stored UTC time as the shop reads it: "Mon Nov 30, 09:15" / "lun. 30 nov., 09 h 15"."""
    if value is None:
        return "—"
    local = from_utc_naive(value).astimezone(tz)
    lang = language_of(locale)
    day, month = _DAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    if lang == "fr":
        return f"{day} {local.day} {month}, {local.hour:02d} h {local.minute:02d}"
    return f"{day} {month} {local.day}, {local.hour:02d}:{local.minute:02d}"


def status_label(status: str, locale: str | None) -> str:
    return t(f"status.{status}", locale)


def _phone(value: str | None) -> str:
    if not value:
        return "—"
    if value.startswith("+1") and len(value) == 12:
        return f"({value[2:5]}) {value[5:8]}-{value[8:]}"
    return value


def title(ro: RepairOrder, locale: str | None) -> str:
    return t("card.title", locale, number=ro.ro_number, customer=ro.customer_name or "—")


def topic(ro: RepairOrder, tz: ZoneInfo, locale: str | None) -> str:
    parts = [f"RO {ro.ro_number}", ro.customer_name, ro.vehicle, f"{t('card.tag', locale)} {ro.tag_number}" if ro.tag_number else "",
             f"{STATUS_EMOJI.get(ro.status, '')} {status_label(ro.status, locale)}", when(ro.appointment_at, tz, locale) if ro.appointment_at else ""]
    return " · ".join(p for p in parts if p)[:250]


def card(ro: RepairOrder, tz: ZoneInfo, locale: str | None, conversation_url: str | None = None) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of the card."""
    owner = f"<@{ro.owner_user_id}>" if ro.owner_user_id else (ro.advisor_email or "—")
    fields = [
        ("card.customer", ro.customer_name or "—"),
        ("card.mobile", _phone(ro.mobile_phone)),
        ("card.vehicle", ro.vehicle or "—"),
        ("card.vin", ro.vin or "—"),
        ("card.tag", ro.tag_number or "—"),
        ("card.advisor", owner),
        ("card.appointment", when(ro.appointment_at, tz, locale)),
        ("card.promised", when(ro.promised_at, tz, locale)),
    ]
    options = [_option(status, locale) for status in STATUSES]
    buttons = [
        {"type": "button", "action_id": INFO_ACTION, "text": _plain(t("card.button.info", locale)), "value": str(ro.id)},
        {"type": "button", "action_id": PARTICIPANTS_ACTION, "text": _plain(t("card.button.participants", locale)), "value": str(ro.id)},
        {"type": "button", "action_id": FILES_ACTION, "text": _plain(t("card.button.files", locale)), "value": str(ro.id)},
    ]
    if conversation_url:
        buttons.append({"type": "button", "action_id": CONVERSATION_ACTION, "text": _plain(t("card.button.conversation", locale)), "url": conversation_url})
    blocks = [
        {"type": "header", "block_id": CARD_BLOCK, "text": _plain(title(ro, locale)[:150])},
        {"type": "section", "block_id": "ro_card_fields",
         "fields": [{"type": "mrkdwn", "text": f"*{t(key, locale)}*\n{value}"} for key, value in fields]},
        {"type": "section", "block_id": "ro_card_status",
         "text": {"type": "mrkdwn", "text": f"*{t('card.status', locale)}* {STATUS_EMOJI.get(ro.status, '')} {status_label(ro.status, locale)}"},
         "accessory": {"type": "static_select", "action_id": STATUS_ACTION, "options": options,
                       "initial_option": _option(ro.status, locale),
                       "placeholder": _plain(t("card.status.placeholder", locale))}},
        {"type": "actions", "block_id": "ro_card_actions", "elements": buttons},
    ]
    text = f"{title(ro, locale)} · {status_label(ro.status, locale)}"
    return text, blocks


def status_note(old: str | None, new: str, source: str, actor: str | None, locale: str | None) -> str:
    who = f"<@{actor}>" if source == "manual" and actor else t(f"status.by.{source}", locale)
    if old is None:
        return t("status.note.initial", locale, new=status_label(new, locale), who=who)
    return t("status.note", locale, old=status_label(old, locale), new=status_label(new, locale), who=who)


def _option(status: str, locale: str | None) -> dict:
    return {"text": _plain(f"{STATUS_EMOJI.get(status, '')} {status_label(status, locale)}"), "value": status}


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}
