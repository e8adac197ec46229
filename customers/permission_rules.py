"""Who may message customers and who administers that: the rules, enforced on the server.

- Admins: StaffUser.is_admin, or listed in ADMIN_SLACK_USER_IDS (the first admins; always admins).
- May message customers: admins; otherwise StaffUser.can_message_customers, and when an admin
  never decided (None) the configured default (DEFAULT_CAN_MESSAGE_CUSTOMERS).
- May see metrics (export the workbooks): admins, and people an admin allowed (StaffUser.can_see_metrics).

An admin's own "may message customers" value is kept while they are admin (admins may anyway)
and applies again once they are not: making someone admin, then not, gives them back what they had.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import IntegrityError, fn

from core.config import Settings
from core.refusals import Refusal
from storage.models import StaffUser


class NotAllowed(Refusal):
    """`reason`: not_admin | self_demotion | admin_may_message | admin_sees_metrics | no_metrics
    (its text: admin.refused.<reason>)."""

    def __init__(self, reason: str):
        super().__init__(f"admin.refused.{reason}")


def is_admin(user_id: str | None, settings: Settings) -> bool:
    if not user_id:
        return False
    if user_id in settings.admin_slack_user_ids:
        return True
    user = StaffUser.get_or_none(StaffUser.slack_user_id == user_id)
    return bool(user and user.is_admin and not user.deleted)


def can_message_customers(user_id: str | None, settings: Settings) -> bool:
    if not user_id:
        return False
    if is_admin(user_id, settings):
        return True
    user = StaffUser.get_or_none(StaffUser.slack_user_id == user_id)
    if user is None or user.can_message_customers is None:
        return settings.default_can_message_customers and not (user and (user.deleted or user.is_bot))
    return bool(user.can_message_customers) and not user.deleted


def can_see_metrics(user_id: str | None, settings: Settings) -> bool:
    if not user_id:
        return False
    if is_admin(user_id, settings):
        return True
    user = StaffUser.get_or_none(StaffUser.slack_user_id == user_id)
    return bool(user and user.can_see_metrics and not user.deleted)


@dataclass(frozen=True)
class StaffPermissions:
    user_id: str
    name: str
    can_message_customers: bool
    is_admin: bool
    admin_from_config: bool
    can_see_metrics: bool = False


def permissions_of(user: StaffUser, settings: Settings) -> StaffPermissions:
    from_config = user.slack_user_id in settings.admin_slack_user_ids
    admin = from_config or bool(user.is_admin)
    can = admin or (
        settings.default_can_message_customers if user.can_message_customers is None else bool(user.can_message_customers)
    )
    metrics = admin or bool(user.can_see_metrics)
    name = user.real_name or user.name or user.slack_user_id
    return StaffPermissions(user.slack_user_id, name, can, admin, from_config, metrics)


def staff_page(settings: Settings, page: int, per_page: int) -> tuple[list[StaffPermissions], int]:
    """People (not bots, not deactivated) sorted by name, one page of them, and the page count."""
    query = StaffUser.select().where((StaffUser.is_bot == False) & (StaffUser.deleted == False))
    total = query.count()
    pages = max(1, -(-total // per_page))
    page = min(max(page, 0), pages - 1)
    rows = (
        query.order_by(fn.LOWER(fn.COALESCE(StaffUser.real_name, "")), StaffUser.name, StaffUser.slack_user_id)
        .offset(page * per_page)
        .limit(per_page)
    )
    return [permissions_of(user, settings) for user in rows], pages


def set_permissions(
    actor_id: str,
    target_id: str,
    *,
    can_message: bool | None = None,
    admin: bool | None = None,
    metrics: bool | None = None,
    settings: Settings,
) -> StaffPermissions:
    """An admin changes a person's permissions; None leaves one as it is. Raises NotAllowed.

    An admin cannot take their own admin right away (so the last admin can't lock everyone out);
    admins from ADMIN_SLACK_USER_IDS stay admins whatever is stored; taking "may message
    customers" from someone who is (or becomes) an admin is refused, since admins may anyway.
    """
    if not is_admin(actor_id, settings):
        raise NotAllowed("not_admin")
    if actor_id == target_id and admin is False:
        raise NotAllowed("self_demotion")
    target_admin = admin if admin is not None else is_admin(target_id, settings)
    if can_message is False and target_admin:
        raise NotAllowed("admin_may_message")
    if metrics is False and target_admin:
        raise NotAllowed("admin_sees_metrics")
    pairs = (("can_message_customers", can_message), ("is_admin", admin), ("can_see_metrics", metrics))
    fields = {k: v for k, v in pairs if v is not None}
    if fields:
        updated = StaffUser.update(**fields).where(StaffUser.slack_user_id == target_id).execute()
        if not updated:
            try:
                StaffUser.create(slack_user_id=target_id, **fields)
            except IntegrityError:
                StaffUser.update(**fields).where(StaffUser.slack_user_id == target_id).execute()
    return permissions_for(target_id, settings)


def permissions_for(user_id: str, settings: Settings) -> StaffPermissions:
    """A person's effective permissions, also for someone not recorded yet (the defaults)."""
    user = StaffUser.get_or_none(StaffUser.slack_user_id == user_id) or StaffUser(slack_user_id=user_id)
    return permissions_of(user, settings)
