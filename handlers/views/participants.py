"""The Participants modal, the "Request an invitation" form, and the notes about what changed."""
from __future__ import annotations

from core.i18n import t
from handlers.views.ro_card import title
from handlers.views.search import escape
from people.invitations import MAX_NAME, MAX_NOTE, ROLES, InvitationForm
from people.participants import Changes
from storage.models import RepairOrder

UPDATE_CALLBACK = "participants_update"
INVITE_CALLBACK = "participants_invite_request"
USERS_BLOCK, USERS_ACTION = "participants_users", "users"
REQUEST_ACTION = "participants_request_invite"
NAME_BLOCK, EMAIL_BLOCK, ROLE_BLOCK, NOTE_BLOCK = "invite_name", "invite_email", "invite_role", "invite_note"
MAX_METADATA = 3000  # Slack's limit on a view's private_metadata
FIELD_BLOCKS = {"name": NAME_BLOCK, "email": EMAIL_BLOCK, "role": ROLE_BLOCK, "note": NOTE_BLOCK}


def _plain(text: str, limit: int = 75) -> dict:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def _ro_label(ro: RepairOrder, locale: str | None) -> str:
    return title(ro, locale)  # "RO 48213 · Jean Tremblay", "BT 48213 · …" in French


def _metadata(ro: RepairOrder, user_ids: list[str]) -> str:
    """"ro:<id>|U1,U2": the RO first (handlers.middleware reads it), then who the modal shows,
    so Update applies only what the person changed. Slack keeps 3000 characters: a list that
    does not fit is left out (Update then compares with the participants of the moment)."""
    metadata = f"ro:{ro.id}|{','.join(user_ids)}"
    return metadata if len(metadata) <= MAX_METADATA else f"ro:{ro.id}"


def shown_participants(metadata: str | None) -> list[str] | None:
    """Who the Participants modal showed, from its private_metadata; None when not recorded."""
    _, separator, users = (metadata or "").partition("|")
    if not separator:
        return None
    return [u for u in users.split(",") if u]


def participants_modal(ro: RepairOrder, user_ids: list[str], locale: str | None) -> dict:
    select: dict = {"type": "multi_users_select", "action_id": USERS_ACTION,
                    "placeholder": _plain(t("people.participants.placeholder", locale))}
    if user_ids:
        select["initial_users"] = user_ids
    owner = f"<@{ro.owner_user_id}>" if ro.owner_user_id else "—"
    return {
        "type": "modal",
        "callback_id": UPDATE_CALLBACK,
        "private_metadata": _metadata(ro, user_ids),
        "title": _plain(t("people.participants.title", locale), 24),
        "submit": _plain(t("people.participants.submit", locale), 24),
        "close": _plain(t("people.participants.close", locale), 24),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(_ro_label(ro, locale))}*"}},
            {"type": "input", "block_id": USERS_BLOCK, "optional": True,
             "label": _plain(t("people.participants.label", locale), 2000), "element": select},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": t("people.participants.owner_note", locale, owner=owner)}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": t("people.participants.not_in_workspace", locale)},
             "accessory": {"type": "button", "action_id": REQUEST_ACTION, "value": str(ro.id),
                           "text": _plain(t("people.invite.button", locale))}},
        ],
    }


def invitation_modal(ro: RepairOrder | None, locale: str | None) -> dict:
    roles = [{"text": _plain(t(f"people.invite.role.{role}", locale)), "value": role} for role in ROLES]
    return {
        "type": "modal",
        "callback_id": INVITE_CALLBACK,
        "private_metadata": f"ro:{ro.id}" if ro else "",
        "title": _plain(t("people.invite.title", locale), 24),
        "submit": _plain(t("people.invite.submit", locale), 24),
        "close": _plain(t("people.invite.back", locale), 24),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": t("people.invite.intro", locale)}},
            {"type": "input", "block_id": NAME_BLOCK, "label": _plain(t("people.invite.name", locale)),
             "element": {"type": "plain_text_input", "action_id": "value", "max_length": MAX_NAME}},
            {"type": "input", "block_id": EMAIL_BLOCK, "label": _plain(t("people.invite.email", locale)),
             "element": {"type": "email_text_input", "action_id": "value"}},
            {"type": "input", "block_id": ROLE_BLOCK, "optional": True, "label": _plain(t("people.invite.role", locale)),
             "element": {"type": "static_select", "action_id": "value", "options": roles,
                         "placeholder": _plain(t("people.invite.role_placeholder", locale))}},
            {"type": "input", "block_id": NOTE_BLOCK, "optional": True, "label": _plain(t("people.invite.note", locale)),
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": MAX_NOTE}},
        ],
    }


def read_invitation(values: dict) -> InvitationForm:
    """The form's fields from a view_submission's state.values."""
    def value(block: str) -> str:
        state = (values.get(block) or {}).get("value") or {}
        return str(state.get("value") or (state.get("selected_option") or {}).get("value") or "")

    # One line for the name: it goes into an email subject, where a line break would be a new header.
    return InvitationForm(name=" ".join(value(NAME_BLOCK).split()), email=value(EMAIL_BLOCK).strip(),
                          role=value(ROLE_BLOCK), note=value(NOTE_BLOCK))


def invitation_errors(problems: dict[str, str], locale: str | None) -> dict[str, str]:
    return {FIELD_BLOCKS[field]: t(f"people.invite.error.{code}", locale) for field, code in problems.items()}


def _people(user_ids: list[str]) -> str:
    return ", ".join(f"<@{u}>" for u in user_ids)


def refusal_lines(refused: list[tuple[str, str]], locale: str | None, group: bool = False) -> list[str]:
    key = "people.refused.group" if group else "people.refused.user"
    mention = (lambda g: f"<!subteam^{g}>") if group else (lambda u: f"<@{u}>")
    return [t(key, locale, who=mention(who), reason=t(f"people.reason.{reason}", locale)) for who, reason in refused]


def changes_text(ro: RepairOrder, changes: Changes, locale: str | None) -> str:
    """What pressing Update did, for the person who pressed it."""
    lines = [t("people.participants.updated", locale, ro=escape(_ro_label(ro, locale)))]
    if changes.added:
        lines.append(t("people.participants.added", locale, who=_people(changes.added)))
    if changes.removed:
        lines.append(t("people.participants.removed", locale, who=_people(changes.removed)))
    if changes.kept_owner:
        lines.append(t("people.participants.kept_owner", locale, who=f"<@{changes.kept_owner}>"))
    lines += refusal_lines(changes.refused, locale)
    if len(lines) == 1:
        lines.append(t("people.participants.unchanged", locale))
    return "\n".join(lines)


def invitation_for_admin(form: InvitationForm, requester: str, ro: RepairOrder | None, invite_url: str | None,
                         locale: str | None) -> str:
    """The admin's DM (mrkdwn)."""
    lines = [t("people.invite.admin_dm", locale, requester=f"<@{requester}>",
               where=escape(_ro_label(ro, locale)) if ro else "—"),
             f"• *{escape(form.name)}* <mailto:{escape(form.email)}|{escape(form.email)}>"]
    if form.role:
        lines.append(f"• {t('people.invite.role', locale)}: {t(f'people.invite.role.{form.role}', locale)}")
    if form.note:
        lines.append(f"• {t('people.invite.note', locale)}: {escape(form.note)}")
    lines.append(t("people.invite.admin_link", locale, url=invite_url) if invite_url else t("people.invite.admin_no_link", locale))
    return "\n".join(lines)


def invitation_email(form: InvitationForm, requester_name: str, ro: RepairOrder | None, invite_url: str | None,
                     locale: str | None) -> tuple[str, str]:
    """(subject, plain-text body) of the admins' email."""
    subject = t("people.invite.email_subject", locale, name=form.name, email=form.email)
    lines = [t("people.invite.email_intro", locale, requester=requester_name, where=_ro_label(ro, locale) if ro else "—"), "",
             f"{t('people.invite.name', locale)}: {form.name}", f"{t('people.invite.email', locale)}: {form.email}"]
    if form.role:
        lines.append(f"{t('people.invite.role', locale)}: {t(f'people.invite.role.{form.role}', locale)}")
    if form.note:
        lines.append(f"{t('people.invite.note', locale)}: {form.note}")
    lines += ["", t("people.invite.email_link", locale, url=invite_url) if invite_url else t("people.invite.admin_no_link", locale)]
    return subject, "\n".join(lines)
