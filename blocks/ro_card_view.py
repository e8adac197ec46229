"""The RO card (pinned in every RO channel), its topic line and the status-change note.

The one place that builds them; the publisher and `/ro info` both render through here. Every
DMS value is shown as text (escaped): a customer named `<!channel>` pings nobody.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from blocks import ids, kit
from blocks.codec import RoRef
from core.formats import when
from core.i18n import t
from storage.models import RepairOrder
from storage.values import STATUSES

# The card's first block: how an interrupted sync recognises a card it posted but did not record.
CARD_BLOCK = "ro_card"
# Not 🔵: App Home uses the blue dot for unread activity, as the reference product does.
STATUS_EMOJI = {"in_progress": "🟢", "upcoming": "📅", "completed": "✅"}


def status_label(status: str, locale: str | None) -> str:
    return t(f"status.{status}", locale)


def title(ro: RepairOrder, locale: str | None) -> str:
    """ "RO 48213 · Jean Tremblay" as plain text (headers, modal titles): not escaped."""
    return t("card.title", locale, number=ro.ro_number, customer=ro.customer_name or "—")


def title_mrkdwn(ro: RepairOrder, locale: str | None) -> str:
    """The same title for mrkdwn and `text` fallbacks: escaped."""
    return t("card.title", locale, number=kit.escape(ro.ro_number), customer=kit.escape(ro.customer_name or "—"))


def owner_text(ro: RepairOrder) -> str:
    return kit.user(ro.owner_user_id) if ro.owner_user_id else kit.escape(ro.advisor_email or "—")


def topic(ro: RepairOrder, tz: ZoneInfo, locale: str | None) -> str:
    """The channel topic. Slack shows topics as text but parses `<…>` in them (a `<!channel>` or a link
    would come alive): angle brackets from the DMS become look-alikes, and `&` stays readable."""
    parts = [
        f"RO {ro.ro_number}",
        ro.customer_name,
        ro.vehicle,
        f"{t('card.tag', locale)} {ro.tag_number}" if ro.tag_number else "",
        f"{STATUS_EMOJI.get(ro.status, '')} {status_label(ro.status, locale)}",
        when(ro.appointment_at, tz, locale) if ro.appointment_at else "",
    ]
    return kit.cut(" · ".join(p for p in parts if p).replace("<", "‹").replace(">", "›"), 250)


def card(ro: RepairOrder, tz: ZoneInfo, locale: str | None, conversation_url: str | None = None) -> tuple[str, list[dict]]:
    """(fallback text, blocks) of the card."""
    values = [
        ("card.customer", kit.escape(ro.customer_name or "—")),
        ("card.mobile", kit.phone(ro.mobile_phone)),
        ("card.vehicle", kit.escape(ro.vehicle or "—")),
        ("card.vin", kit.escape(ro.vin or "—")),
        ("card.tag", kit.escape(ro.tag_number or "—")),
        ("card.advisor", owner_text(ro)),
        ("card.appointment", when(ro.appointment_at, tz, locale)),
        ("card.promised", when(ro.promised_at, tz, locale)),
    ]
    ref = RoRef(ro.id).encode()
    buttons = [
        kit.button(t("card.button.info", locale), ids.RO_INFO, ref),
        kit.button(t("card.button.participants", locale), ids.PARTICIPANTS_OPEN, ref),
        kit.button(t("card.button.files", locale), ids.FILES_OPEN, ref),
    ]
    if conversation_url:
        buttons.append(kit.button(t("card.button.conversation", locale), ids.RO_CONVERSATION, ref, url=conversation_url))
    options = [_option(status, locale) for status in STATUSES]
    status_text = f"*{t('card.status', locale)}* {STATUS_EMOJI.get(ro.status, '')} {status_label(ro.status, locale)}"
    blocks = [
        {"type": "header", "block_id": CARD_BLOCK, "text": kit.plain(title(ro, locale), kit.HEADER_TEXT)},
        kit.fields([(t(key, locale), value) for key, value in values], block_id="ro_card_fields"),
        kit.section(
            status_text,
            block_id="ro_card_status",
            accessory=kit.static_select(ids.RO_STATUS, options, ro.status, t("card.status.placeholder", locale)),
        ),
        *kit.actions(buttons, block_id="ro_card_actions"),
    ]
    return kit.message(f"{title_mrkdwn(ro, locale)} · {status_label(ro.status, locale)}", blocks)


def status_note(old: str | None, new: str, source: str, actor: str | None, locale: str | None) -> str:
    who = kit.user(actor) if source == "manual" and actor else t(f"status.by.{source}", locale)
    if old is None:
        return t("status.note.initial", locale, new=status_label(new, locale), who=who)
    return t("status.note", locale, old=status_label(old, locale), new=status_label(new, locale), who=who)


def _option(status: str, locale: str | None) -> dict:
    return kit.option(f"{STATUS_EMOJI.get(status, '')} {status_label(status, locale)}", status)
