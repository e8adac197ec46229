""""Request an invitation": someone who is not in the workspace should be; the admins decide.

The request is validated and saved here (so nothing is lost if mail or Slack fails); the
listener then emails each admin (customers.mailer, SMTP_URL) and DMs them in Slack.
"""
from __future__ import annotations

from dataclasses import dataclass

from dms.normalize import parse_email
from storage.models import InvitationRequest, StaffUser

MAX_NAME, MAX_NOTE = 100, 1000
ROLES = ("advisor", "technician", "parts", "manager", "other")


@dataclass(frozen=True)
class InvitationForm:
    name: str
    email: str
    role: str = ""
    note: str = ""


def validate(form: InvitationForm) -> dict[str, str]:
    """{field: problem code} (i18n: people.invite.error.<code>); empty when the form is good."""
    problems: dict[str, str] = {}
    name = form.name.strip()
    if not name:
        problems["name"] = "name_missing"
    elif len(name) > MAX_NAME:
        problems["name"] = "name_long"
    if not parse_email(form.email):
        problems["email"] = "email_invalid"
    if form.role and form.role not in ROLES:
        problems["role"] = "role_unknown"
    if len(form.note) > MAX_NOTE:
        problems["note"] = "note_long"
    return problems


def save(form: InvitationForm, requested_by: str, ro_id: int | None) -> InvitationRequest:
    return InvitationRequest.create(requested_by=requested_by, ro=ro_id, name=form.name.strip(),
                                    email=parse_email(form.email) or form.email.strip(), role=form.role,
                                    note=form.note.strip())


def admin_ids(configured: tuple[str, ...]) -> list[str]:
    """Admins: ADMIN_SLACK_USER_IDS first, then those made admin in the app."""
    flagged = [u.slack_user_id for u in StaffUser.select(StaffUser.slack_user_id).where(
        StaffUser.is_admin & ~StaffUser.deleted).order_by(StaffUser.slack_user_id)]
    return list(dict.fromkeys([*configured, *flagged]))


def record_outcome(request: InvitationRequest, emailed: int, messaged: int, email_error: str | None) -> None:
    (InvitationRequest.update(emailed_to=emailed, messaged_to=messaged, email_error=email_error)
     .where(InvitationRequest.id == request.id).execute())
