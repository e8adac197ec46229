"""The "Customer info" modal: everything the DMS knows about the customer and the car."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from core.i18n import t
from handlers.views.ro_card import when
from storage.models import RepairOrder


def customer_info_modal(ro: RepairOrder, tz: ZoneInfo, locale: str | None) -> dict:
    language = {"fr": "Français", "en": "English"}.get(ro.language, ro.language)
    rows = [
        ("info.name", ro.customer_name or "—"),
        ("info.mobile", ro.mobile_phone or "—"),
        ("info.email", ro.email or "—"),
        ("info.language", language),
        ("info.vehicle", ro.vehicle or "—"),
        ("info.vin", ro.vin or "—"),
        ("info.tag", ro.tag_number or "—"),
        ("info.advisor", f"<@{ro.owner_user_id}>" if ro.owner_user_id else (ro.advisor_email or "—")),
        ("info.appointment", when(ro.appointment_at, tz, locale)),
        ("info.promised", when(ro.promised_at, tz, locale)),
    ]
    return {
        "type": "modal",
        "callback_id": "ro_customer_info",
        "private_metadata": f"ro:{ro.id}",
        "title": {"type": "plain_text", "text": t("info.title", locale)[:24]},
        "close": {"type": "plain_text", "text": t("info.close", locale)},
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": t("card.title", locale, number=ro.ro_number, customer=ro.customer_name or "—")[:150]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{t(key, locale)}*\n{value}"} for key, value in rows[:10]]},
        ],
    }
