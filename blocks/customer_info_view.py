"""The "Customer info" modal: everything the DMS knows about the customer and the car."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from blocks import ids, kit
from blocks.codec import RoRef
from blocks.ro_card_view import owner_text, title
from core.formats import when
from core.i18n import t
from storage.models import RepairOrder

LANGUAGES = {"fr": "Français", "en": "English"}


def customer_info_modal(
    ro: RepairOrder, tz: ZoneInfo, locale: str | None, *, opted_out: bool = False, conversation_url: str | None = None
) -> dict:
    rows = [
        ("info.name", kit.escape(ro.customer_name or "—")),
        ("info.mobile", kit.phone(ro.mobile_phone)),
        ("info.email", kit.escape(ro.email or "—")),
        ("info.language", LANGUAGES.get(ro.language, kit.escape(ro.language))),
        ("info.vehicle", kit.escape(ro.vehicle or "—")),
        ("info.vin", kit.escape(ro.vin or "—")),
        ("info.tag", kit.escape(ro.tag_number or "—")),
        ("info.advisor", owner_text(ro)),
        ("info.appointment", when(ro.appointment_at, tz, locale)),
        ("info.promised", when(ro.promised_at, tz, locale)),
    ]
    conversation = (
        kit.link(conversation_url, t("conversation.open_thread", locale))
        if conversation_url
        else t("info.conversation.none", locale)
    )
    more = [
        ("info.consent", t("info.consent.no" if opted_out else "info.consent.yes", locale)),
        ("info.conversation", conversation),
    ]
    blocks = [
        kit.header(title(ro, locale)),
        kit.fields([(t(key, locale), value) for key, value in rows]),
        kit.fields([(t(key, locale), value) for key, value in more], block_id="info_conversation"),
    ]
    return kit.modal(
        ids.RO_INFO_MODAL, t("info.title", locale), blocks, close=t("info.close", locale), metadata=RoRef(ro.id).encode()
    )


def conversation_fields(ro: RepairOrder, locale: str | None, *, opted_out: bool, conversation_url: str | None) -> dict:
    """Texts accepted or not, the customer's language, the link to the conversation: the modal and `/ro info`."""
    conversation = (
        kit.link(conversation_url, t("conversation.open_thread", locale))
        if conversation_url
        else t("info.conversation.none", locale)
    )
    pairs = [
        (t("info.consent", locale), t("info.consent.no" if opted_out else "info.consent.yes", locale)),
        (t("info.language", locale), LANGUAGES.get(ro.language, kit.escape(ro.language))),
        (t("info.conversation", locale), conversation),
    ]
    return kit.fields(pairs, block_id="info_conversation")
