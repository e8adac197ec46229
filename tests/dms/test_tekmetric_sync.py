"""Tekmetric through the sync engine into the database: deleted ROs and cancelled appointments
leave the in-progress lists, a first sync makes no space for stale history, and a lookup
Tekmetric refuses never blanks what a space knows. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dms.sync_engine import SyncEngine, roll_over
from storage.db import database, open_database
from storage.migrations import migrate
from storage.models import RepairOrder, StatusChange
from tests.fakes.fake_tekmetric import FakeTekmetric, stamp
from tests.support.tekmetric import tekmetric_connector

TZ = ZoneInfo("America/Toronto")
MOBILE = [{"number": "(438) 555-0142", "type": "Mobile", "primary": True}]


@pytest.fixture
def db(database_url):
    open_database(database_url)
    migrate()
    with database.connection_context():
        yield


@pytest.fixture
def engine(fake_tekmetric, db):
    return SyncEngine(tekmetric_connector(fake_tekmetric, TZ), TZ)


def now_of(fake: FakeTekmetric) -> datetime:
    return fake.now.astimezone(TZ)


def sync(engine: SyncEngine, fake: FakeTekmetric):
    fake.advance(600)  # past the watermark's safety margin
    report = engine.run(now_of(fake))
    assert report.error is None, report.error
    return report


def owner(fake: FakeTekmetric, last_name: str = "Bélanger"):
    customer = fake.add_customer("Luc", last_name, phones=MOBILE)
    return customer, fake.add_vehicle(customer)


# --- item 3: deleted / cancelled in the DMS ------------------------------------------------------


def test_a_deleted_ro_leaves_in_progress_with_a_note_and_is_never_rolled_over(fake_tekmetric, engine):
    customer, vehicle = owner(fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(customer, vehicle, number=1104)
    sync(engine, fake_tekmetric)
    space = RepairOrder.get(RepairOrder.external_id == f"ro:{ro}")
    assert space.status == "in_progress"
    RepairOrder.update(slack_dirty=False).execute()

    fake_tekmetric.delete_repair_order(ro)
    report = sync(engine, fake_tekmetric)

    space = RepairOrder.get_by_id(space.id)
    assert (space.status, space.dms_closed, space.slack_dirty) == ("completed", True, True)
    assert report.removed == ["1104"]
    note = StatusChange.select().where(StatusChange.ro == space.id).order_by(StatusChange.id.desc()).first()
    assert (note.old_status, note.new_status, note.source, note.announced) == ("in_progress", "completed", "dms_deleted", False)
    assert not RepairOrder.select().where(RepairOrder.status == "in_progress").exists()
    # Seen again (the deleted list's overlap, a later sync): nothing more is written or said.
    notes = StatusChange.select().count()
    sync(engine, fake_tekmetric)
    assert StatusChange.select().count() == notes
    roll_over(TZ, now_of(fake_tekmetric) + timedelta(days=2))
    assert RepairOrder.get_by_id(space.id).status == "completed"


def test_a_cancelled_future_appointment_is_completed_not_moved_to_in_progress_at_midnight(fake_tekmetric, engine):
    customer, vehicle = owner(fake_tekmetric)
    appointment = fake_tekmetric.add_appointment(customer, vehicle, start=fake_tekmetric.now + timedelta(days=3))
    sync(engine, fake_tekmetric)
    space = RepairOrder.get(RepairOrder.external_id == f"appointment:{appointment}")
    assert space.status == "upcoming"

    fake_tekmetric.update_appointment(appointment, appointmentStatus="CANCELED")
    sync(engine, fake_tekmetric)

    space = RepairOrder.get_by_id(space.id)
    assert (space.status, space.dms_closed) == ("completed", True)
    note = StatusChange.select().where(StatusChange.ro == space.id).order_by(StatusChange.id.desc()).first()
    assert (note.old_status, note.new_status, note.source) == ("upcoming", "completed", "dms_cancelled")
    roll_over(TZ, now_of(fake_tekmetric) + timedelta(days=4))  # the appointment's day comes
    assert RepairOrder.get_by_id(space.id).status == "completed"


def test_cancelling_an_appointment_its_ro_took_over_leaves_the_ro_alone(fake_tekmetric, engine):
    customer, vehicle = owner(fake_tekmetric)
    appointment = fake_tekmetric.add_appointment(customer, vehicle)
    sync(engine, fake_tekmetric)
    ro = fake_tekmetric.add_repair_order(customer, vehicle, appointmentId=appointment)
    sync(engine, fake_tekmetric)
    fake_tekmetric.update_appointment(appointment, appointmentStatus="CANCELED")
    sync(engine, fake_tekmetric)
    space = RepairOrder.get()
    assert space.external_id == f"ro:{ro}" and space.status != "completed"


# --- item 6: no space for stale history on a first sync ------------------------------------------


def test_a_first_sync_makes_no_space_for_old_estimates_unposted_ros_or_past_appointments(fake_tekmetric, engine):
    fake_tekmetric.advance(-90 * 86400)
    old_customer, old_vehicle = owner(fake_tekmetric, "Ancien")
    fake_tekmetric.add_repair_order(old_customer, old_vehicle, status_id=1)  # an estimate never closed
    fake_tekmetric.add_repair_order(old_customer, old_vehicle, status_id=3)  # "Complete", never posted
    fake_tekmetric.add_appointment(old_customer, old_vehicle, start=fake_tekmetric.now + timedelta(days=1))
    fake_tekmetric.advance(90 * 86400)
    customer, vehicle = owner(fake_tekmetric)
    current = fake_tekmetric.add_repair_order(customer, vehicle, number=48213)
    report = sync(engine, fake_tekmetric)
    assert report.created == ["48213"]
    assert [ro.external_id for ro in RepairOrder.select()] == [f"ro:{current}"]


# --- item 2: a refused lookup does not blank a space ---------------------------------------------


def test_a_refused_lookup_keeps_what_the_space_knows(fake_tekmetric, engine):
    customer, vehicle = owner(fake_tekmetric)
    advisor = fake_tekmetric.add_employee("Marie", "Roy", email="marie@dealer.example")
    ro = fake_tekmetric.add_repair_order(customer, vehicle, service_writer_id=advisor)
    sync(engine, fake_tekmetric)
    assert RepairOrder.get().advisor_email == "marie@dealer.example"
    fake_tekmetric.fail(times=100, status=403, when=lambda path, query: path.startswith("/api/v1/employees/"))
    fake_tekmetric.update_repair_order(ro, keytag="T-9", customerTimeOut=stamp(fake_tekmetric.now + timedelta(hours=5)))
    report = sync(engine, fake_tekmetric)
    space = RepairOrder.get()
    assert report.changed and space.tag_number == "T-9"
    assert space.advisor_email == "marie@dealer.example"
