"""The Participants modal, the "Request an invitation" form, and the notes about what changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks import ids, kit
from blocks.codec import InviteState, ParticipantsState
from blocks.ro_card_view import title, title_mrkdwn
from core.i18n import t
from storage.models import RepairOrder
from storage.values import INVITE_MAX_NAME, INVITE_MAX_NOTE, INVITE_ROLES

if TYPE_CHECKING:  # type names only (erased at run time): the view reads their attributes
    from people.invitation_rules import InvitationForm
    from people.participant_rules import Changes

USERS_BLOCK = "participants_users"
NAME_BLOCK, EMAIL_BLOCK, ROLE_BLOCK, NOTE_BLOCK = "invite_name", "invite_email", "invite_role", "invite_note"
FIELD_BLOCKS = {"name": NAME_BLOCK, "email": EMAIL_BLOCK, "role": ROLE_BLOCK, "note": NOTE_BLOCK}
INPUT_ACTION = "value"  # the action id of each form field (read from state.values, never dispatched)


def participants_modal(ro: RepairOrder, user_ids: list[str], locale: str | None) -> dict:
    select: dict = {
        "type": "multi_users_select",
        "action_id": ids.PARTICIPANTS_USERS,
        "placeholder": kit.plain(t("people.participants.placeholder", locale), kit.PLACEHOLDER_TEXT),
    }
    if user_ids:
        select["initial_users"] = user_ids
    owner = kit.user(ro.owner_user_id) if ro.owner_user_id else "—"
    request = kit.button(t("people.invite.button", locale), ids.PARTICIPANTS_REQUEST_INVITE, InviteState(ro.id).encode())
    blocks = [
        kit.section(f"*{title_mrkdwn(ro, locale)}*"),
        {
            "type": "input",
            "block_id": USERS_BLOCK,
            "optional": True,
            "label": kit.plain(t("people.participants.label", locale), kit.LABEL_TEXT),
            "element": select,
        },
        kit.context(t("people.participants.owner_note", locale, owner=owner)),
        kit.section(t("people.participants.not_in_workspace", locale), accessory=request),
    ]
    return kit.modal(
        ids.PARTICIPANTS_MODAL,
        t("people.participants.title", locale),
        blocks,
        close=t("people.participants.close", locale),
        submit=t("people.participants.submit", locale),
        metadata=ParticipantsState(ro.id, tuple(user_ids)).encode(),
    )


def invitation_modal(ro: RepairOrder | None, locale: str | None) -> dict:
    roles = [kit.option(t(f"people.invite.role.{role}", locale), role) for role in INVITE_ROLES]

    def field(block_id: str, label: str, element: dict, optional: bool = False) -> dict:
        return {
            "type": "input",
            "block_id": block_id,
            "optional": optional,
            "label": kit.plain(label, kit.LABEL_TEXT),
            "element": {"action_id": INPUT_ACTION, **element},
        }

    blocks = [
        kit.section(t("people.invite.intro", locale)),
        field(NAME_BLOCK, t("people.invite.name", locale), {"type": "plain_text_input", "max_length": INVITE_MAX_NAME}),
        field(EMAIL_BLOCK, t("people.invite.email", locale), {"type": "email_text_input"}),
        field(
            ROLE_BLOCK,
            t("people.invite.role", locale),
            {"type": "static_select", "options": roles, "placeholder": kit.plain(t("people.invite.role_placeholder", locale))},
            optional=True,
        ),
        field(
            NOTE_BLOCK,
            t("people.invite.note", locale),
            {"type": "plain_text_input", "multiline": True, "max_length": INVITE_MAX_NOTE},
            optional=True,
        ),
    ]
    return kit.modal(
        ids.PARTICIPANTS_INVITE_MODAL,
        t("people.invite.title", locale),
        blocks,
        close=t("people.invite.back", locale),
        submit=t("people.invite.submit", locale),
        metadata=InviteState(ro.id if ro else None).encode(),
    )


def invitation_errors(problems: dict[str, str], locale: str | None) -> dict[str, str]:
    return {FIELD_BLOCKS[field]: t(f"people.invite.error.{code}", locale) for field, code in problems.items()}


def _people(user_ids: list[str]) -> str:
    return ", ".join(kit.user(u) for u in user_ids)


def refusal_lines(refused: list[tuple[str, str]], locale: str | None, group: bool = False) -> list[str]:
    key = "people.refused.group" if group else "people.refused.user"
    mention = kit.group if group else kit.user
    return [t(key, locale, who=mention(who), reason=t(f"people.reason.{reason}", locale)) for who, reason in refused]


def changes_text(ro: RepairOrder, changes: Changes, locale: str | None) -> str:
    """What pressing Update did, for the person who pressed it."""
    lines = [t("people.participants.updated", locale, ro=title_mrkdwn(ro, locale))]
    if changes.added:
        lines.append(t("people.participants.added", locale, who=_people(changes.added)))
    if changes.removed:
        lines.append(t("people.participants.removed", locale, who=_people(changes.removed)))
    if changes.kept_owner:
        lines.append(t("people.participants.kept_owner", locale, who=kit.user(changes.kept_owner)))
    lines += refusal_lines(changes.refused, locale)
    if len(lines) == 1:
        lines.append(t("people.participants.unchanged", locale))
    return "\n".join(lines)


def invitation_for_admin(
    form: InvitationForm, requester: str, ro: RepairOrder | None, invite_url: str | None, locale: str | None
) -> str:
    """The admin's DM (mrkdwn)."""
    lines = [
        t("people.invite.admin_dm", locale, requester=kit.user(requester), where=title_mrkdwn(ro, locale) if ro else "—"),
        f"• *{kit.escape(form.name)}* {kit.link('mailto:' + form.email, form.email)}",
    ]
    if form.role:
        lines.append(f"• {t('people.invite.role', locale)}: {t(f'people.invite.role.{form.role}', locale)}")
    if form.note:
        lines.append(f"• {t('people.invite.note', locale)}: {kit.escape(form.note)}")
    lines.append(
        t("people.invite.admin_link", locale, url=kit.safe_url(invite_url))
        if invite_url
        else t("people.invite.admin_no_link", locale)
    )
    return "\n".join(lines)


def invitation_email(
    form: InvitationForm, requester_name: str, ro: RepairOrder | None, invite_url: str | None, locale: str | None
) -> tuple[str, str]:
    """(subject, plain-text body) of the admins' email: plain text, nothing escaped."""
    subject = t("people.invite.email_subject", locale, name=form.name, email=form.email)
    lines = [
        t("people.invite.email_intro", locale, requester=requester_name, where=title(ro, locale) if ro else "—"),
        "",
        f"{t('people.invite.name', locale)}: {form.name}",
        f"{t('people.invite.email', locale)}: {form.email}",
    ]
    if form.role:
        lines.append(f"{t('people.invite.role', locale)}: {t(f'people.invite.role.{form.role}', locale)}")
    if form.note:
        lines.append(f"{t('people.invite.note', locale)}: {form.note}")
    lines += [
        "",
        t("people.invite.email_link", locale, url=invite_url) if invite_url else t("people.invite.admin_no_link", locale),
    ]
    return subject, "\n".join(lines)
