"""Test data: repair orders with a real channel in the fake Slack."""

from __future__ import annotations

import itertools
from datetime import timedelta

from storage.models import Participant, RepairOrder, utcnow

_numbers = itertools.count(48000)


def make_ro(fake_slack=None, *, members: tuple[str, ...] = (), owner: str | None = None, **fields) -> RepairOrder:
    """An RO row; with `fake_slack`, also its channel (bot + `members`) as the sync would have made it."""
    number = str(fields.pop("ro_number", next(_numbers)))
    defaults = dict(
        source="file",
        external_id=number,
        ro_number=number,
        customer_first_name="Jean",
        customer_last_name="Tremblay",
        mobile_phone="+15145550142",
        email="jean@example.com",
        language="fr",
        vehicle_year=2021,
        vehicle_make="Honda",
        vehicle_model="Civic",
        vin="2HGFC2F59MH512345",
        tag_number="T" + number[-3:],
        advisor_email="marie.roy@dealer.example",
        status="in_progress",
        appointment_at=utcnow() + timedelta(hours=1),
        name_folded="jean tremblay",
        phone_digits="15145550142",
        slack_dirty=False,
    )
    defaults.update(fields)
    ro = RepairOrder.create(**defaults)
    if fake_slack is not None:
        channel = fake_slack.add_channel(
            f"ro-{number}-{defaults['customer_last_name'].lower()}",
            members=(fake_slack.bot_user_id, *members, *((owner,) if owner else ())),
            creator=fake_slack.bot_user_id,
        )
        ro.channel_id = channel["id"]
        ro.channel_name = channel["name"]
        ro.save()
    if owner:
        ro.owner_user_id = owner
        ro.save()
        Participant.create(ro=ro, user_id=owner, role="owner")
    for member in members:
        Participant.create(ro=ro, user_id=member, role="participant")
    return ro
