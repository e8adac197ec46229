"""people.invitation_rules.request_invitation on its own: the admins are reached through two plain
callables (email, DM), so every outcome is checked without Slack or SMTP, on both databases."""

from __future__ import annotations

import pytest

from people.invitation_rules import InvitationForm, NotDelivered, request_invitation
from storage.models import InvitationRequest

FORM = InvitationForm(name="Nadia Roy", email="Nadia@Dealer.example", role="technician", note="Starts Monday")


def failing(code: str):
    def send(admin_id: str):
        raise NotDelivered(code)

    return send


def test_each_admin_gets_an_email_and_a_dm_and_the_request_is_saved(db):
    emailed, messaged = [], []
    outcome = request_invitation(
        FORM, "UTECH", None, ["UADMIN", "UBOSS"], email=lambda a: emailed.append(a) or True, message=messaged.append
    )
    assert (emailed, messaged, outcome.note) == (["UADMIN", "UBOSS"], ["UADMIN", "UBOSS"], "sent")
    saved = InvitationRequest.get()
    assert (saved.email, saved.requested_by, saved.emailed_to, saved.messaged_to, saved.email_error) == (
        "nadia@dealer.example",
        "UTECH",
        2,
        2,
        None,
    )


def test_an_admin_without_an_address_is_not_an_email_failure(db):
    outcome = request_invitation(FORM, "UTECH", None, ["UADMIN"], email=lambda a: False, message=lambda a: None)
    assert (outcome.emailed, outcome.messaged, outcome.email_error, outcome.note) == (0, 1, None, "sent_slack_only")


@pytest.mark.parametrize(
    "email,message,note,record,failures",
    [
        (
            failing("unreachable"),
            lambda a: None,
            "sent_slack_only",
            (0, 2, "unreachable"),
            [("email", "UADMIN"), ("email", "UBOSS")],
        ),
        (None, lambda a: None, "sent", (0, 2, None), []),  # no SMTP_URL: Slack is the way, and that is fine
        (
            failing("auth"),
            failing("channel_not_found"),
            "failed",
            (0, 0, "auth"),
            [("email", "UADMIN"), ("dm", "UADMIN"), ("email", "UBOSS"), ("dm", "UBOSS")],
        ),
        (lambda a: True, failing("ratelimited"), "sent", (2, 0, None), [("dm", "UADMIN"), ("dm", "UBOSS")]),
    ],
)
def test_what_failed_is_recorded_and_decides_the_note(db, email, message, note, record, failures):
    heard = []
    outcome = request_invitation(
        FORM,
        "UTECH",
        None,
        ["UADMIN", "UBOSS"],
        email=email,
        message=message,
        on_failure=lambda channel, admin, code: heard.append((channel, admin)),
    )
    saved = InvitationRequest.get()
    assert outcome.note == note and (saved.emailed_to, saved.messaged_to, saved.email_error) == record
    assert heard == failures


def test_without_admins_the_request_is_kept_and_nobody_is_contacted(db):
    outcome = request_invitation(FORM, "UTECH", None, [], email=failing("x"), message=failing("x"))
    assert outcome.note == "no_admin" and InvitationRequest.select().count() == 1
