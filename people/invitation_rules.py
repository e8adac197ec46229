""" "Request an invitation": someone who is not in the workspace should be; the admins decide.

`request_invitation` saves the request first (so nothing is lost if mail or Slack fails), then
emails each admin and sends each a DM through two small callables the listener provides (the
email goes through customers.mail_gateway and SMTP_URL, the DM through Slack: neither is known here),
records what reached whom, and says which note the requester gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dms.normalize import parse_email
from storage.models import InvitationRequest, StaffUser
from storage.values import INVITE_MAX_NAME as MAX_NAME
from storage.values import INVITE_MAX_NOTE as MAX_NOTE
from storage.values import INVITE_ROLES as ROLES


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
    return InvitationRequest.create(
        requested_by=requested_by,
        ro=ro_id,
        name=form.name.strip(),
        email=parse_email(form.email) or form.email.strip(),
        role=form.role,
        note=form.note.strip(),
    )


def admin_ids(configured: tuple[str, ...]) -> list[str]:
    """Admins: ADMIN_SLACK_USER_IDS first, then those made admin in the app."""
    flagged = [
        u.slack_user_id
        for u in StaffUser.select(StaffUser.slack_user_id)
        .where(StaffUser.is_admin & ~StaffUser.deleted)
        .order_by(StaffUser.slack_user_id)
    ]
    return list(dict.fromkeys([*configured, *flagged]))


def record_outcome(request: InvitationRequest, emailed: int, messaged: int, email_error: str | None) -> None:
    (
        InvitationRequest.update(emailed_to=emailed, messaged_to=messaged, email_error=email_error)
        .where(InvitationRequest.id == request.id)
        .execute()
    )


class NotDelivered(Exception):
    """An email or DM that did not go out; `code` says why (for the record and the logs)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


# Send the request to one admin (by Slack user id). An email sender returns False when that
# admin has no address; both raise NotDelivered when the gateway fails.
EmailAdmin = Callable[[str], bool]
MessageAdmin = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    request: InvitationRequest
    admins: int
    emailed: int
    messaged: int
    email_error: str | None
    email_enabled: bool

    @property
    def note(self) -> str:
        """What the requester is told (i18n: people.invite.<note>)."""
        if not self.admins:
            return "no_admin"
        if not (self.emailed or self.messaged):
            return "failed"
        return "sent" if self.emailed or not self.email_enabled else "sent_slack_only"


def request_invitation(
    form: InvitationForm,
    requested_by: str,
    ro_id: int | None,
    admins: list[str],
    *,
    email: EmailAdmin | None,
    message: MessageAdmin,
    on_failure: Callable[[str, str, str], None] = lambda channel, admin, code: None,
) -> Outcome:
    """Save the request, email (when `email` is given) and DM each admin, record the outcome.
    `on_failure(channel, admin id, code)` hears about each failed email ("email") or DM ("dm")."""
    request = save(form, requested_by, ro_id)
    emailed = messaged = 0
    email_error = None
    for admin_id in admins:
        if email is not None:
            try:
                emailed += bool(email(admin_id))
            except NotDelivered as exc:
                email_error = exc.code
                on_failure("email", admin_id, exc.code)
        try:
            message(admin_id)
            messaged += 1
        except NotDelivered as exc:
            on_failure("dm", admin_id, exc.code)
    record_outcome(request, emailed, messaged, email_error)
    return Outcome(request, len(admins), emailed, messaged, email_error, email is not None)
