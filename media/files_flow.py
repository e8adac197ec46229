"""The Files view of an RO (card button, `/ro files`): its files newest first, paged by 10, with
where a send would go and whether this person may send."""

from __future__ import annotations

from blocks import files_view as views
from blocks import kit
from blocks.codec import FilesState
from core.i18n import t
from customers import send_rules
from customers.permission_rules import can_message_customers
from customers.send_rules import SendRefused
from slackapi.services import Services
from storage.models import RepairOrder, RoFile, StaffUser
from storage.values import CUSTOMER


def files_modal(
    services: Services, ro: RepairOrder, state: FilesState, user_id: str, locale: str, notice: str | None = None
) -> dict:
    settings = services.settings
    files = list(RoFile.select().where(RoFile.ro == ro).order_by(RoFile.shared_at.desc(), RoFile.id.desc()))
    uploaders = list({f.uploader_user_id for f in files})
    names = {
        u.slack_user_id: u.real_name or u.name
        for u in StaffUser.select().where(StaffUser.slack_user_id.in_(uploaders))
        if u.real_name or u.name
    }
    names[CUSTOMER] = t("files.by_customer", locale)
    try:
        plan = send_rules.plan_delivery(ro, settings)
        destination = kit.phone(plan.destination) if plan.method == "sms" else kit.escape(plan.destination)
        how, can_send = t(f"files.how.{plan.method}", locale, destination=destination), True
    except SendRefused as refused:
        how, can_send = "⚠️ " + kit.refusal_text(refused, locale), False
    return views.files_modal(
        ro,
        files,
        state,
        locale=locale,
        tz=settings.shop_timezone,
        names=names,
        how=how,
        can_send=can_send,
        may_send=can_message_customers(user_id, settings),
        notice=notice,
    )


def open_files(services: Services, trigger_id: str, ro: RepairOrder, user_id: str, locale: str) -> None:
    """Open the Files modal on its first page. Raises SlackError (an expired trigger: press again)."""
    services.slack.open_view(trigger_id, files_modal(services, ro, FilesState(ro.id), user_id, locale))


def show_page(services: Services, view_id: str, ro: RepairOrder, state: FilesState, user_id: str, locale: str) -> None:
    services.slack.update_view(view_id, files_modal(services, ro, state, user_id, locale))
