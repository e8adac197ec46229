"""Known activity for the metrics tests, as the metrics' record holds it (MetricEvent rows written
with storage.metric_events.record, the one way the app writes them), and the workbook read back."""

from __future__ import annotations

import io
import itertools
from datetime import datetime
from pathlib import Path

from openpyxl import load_workbook

from storage import metric_events as events
from storage.models import RepairOrder, StaffUser
from storage.values import COMPLETED, CUSTOMER
from tests.support.factories import make_ro

_refs = itertools.count(1)
# A display name anyone can give themselves in Slack; in a workbook it must stay text, not a formula.
FORMULA_NAME = '=HYPERLINK("https://evil.example","Cliquez")'
# The count columns' headers of a French workbook (Users and By day sheets).
FR_COUNTS = [
    "Photos internes",
    "Vidéos internes",
    "Messages",
    "Textos aux clients",
    "Fichiers envoyés aux clients",
    "Vues par les clients",
    "Première réponse médiane (min)",
    "RO avec participation",
]


def at(text: str) -> datetime:
    """A naive UTC time as the database stores it: at("2026-11-03 14:00")."""
    return datetime.fromisoformat(text)


def staff(user_id: str, real_name: str, **fields) -> StaffUser:
    return StaffUser.create(slack_user_id=user_id, name=real_name.split()[0].lower(), real_name=real_name, **fields)


def event(kind: str, ro: RepairOrder | None, user: str | None, when: str, *, ref: str | None = None, amount: int = 1) -> str:
    """One recorded event; returns its ref."""
    ref = ref or f"{kind}-{next(_refs)}"
    assert events.record(kind, ref, at=at(when), user_id=user, ro_id=ro.id if ro else None, amount=amount)
    return ref


def picture(ro: RepairOrder, user: str, when: str, *, kind: str = events.PICTURE, slack_file_id: str | None = None) -> str:
    return event(kind, ro, user, when, ref=slack_file_id)


def message(ro: RepairOrder, user: str, when: str, ts: str | None = None) -> str:
    return event(events.MESSAGE, ro, user, when, ref=f"{ro.id}:{ts}" if ts else None)


def reply(ro: RepairOrder, user: str, when: str) -> str:
    return event(events.REPLY, ro, user, when)


def customer_text(ro: RepairOrder, when: str) -> str:
    return event(events.CUSTOMER_TEXT, ro, None, when)


def send(ro: RepairOrder, user: str, when: str, files: int) -> str:
    return event(events.SEND, ro, user, when, amount=files)


def view(ro: RepairOrder, sender: str, when: str, send_ref: str) -> str:
    return event(events.VIEW, ro, sender, when, ref=send_ref)


def november(fake_slack=None) -> dict:
    """November 2026 in Toronto (EDT until 1 Nov 06:00 UTC, EST after), four people, three ROs.

    Expected, 2026-11-01..2026-11-30 (Users row: pictures, videos, messages, texts, files sent,
    customer views, median first response in minutes, ROs):
      Marie Roy (UADVISOR)  3 1 2 4 5 1 30.0 2   responses 960 (from a text before the month), 20, 30
      Luc Martin (UTECH)    2 2 1 2 0 0 12.5 2   responses 10, 15 (an even count)
      the formula name      0 0 1 0 0 0 -    1
      Paul Ancien (UGONE)   1 0 0 1 0 0 45.0 2   left the workspace since
    Not counted: activity just outside the month in shop time, the customer pseudo-user's message,
    a reply with no customer text since the previous one (a text, no response time).
    """
    staff("UADVISOR", "Marie Roy", locale="fr-CA")
    staff("UTECH", "Luc Martin", locale="en-US")
    staff("UPARTS", FORMULA_NAME)
    staff("UGONE", "Paul Ancien", deleted=True)
    staff("UQUIET", "Quiet Person")  # no activity: no row
    staff("UBOT", "Bot", is_bot=True)
    a = make_ro(fake_slack, ro_number="48213", owner="UADVISOR", created_at=at("2026-10-28 13:00"))
    b = make_ro(
        fake_slack,
        ro_number="48214",
        customer_last_name="Gagnon",
        advisor_email="sylvie.roy@dealer.example",
        status=COMPLETED,
        created_at=at("2026-11-01 12:00"),
        closed_at=at("2026-11-20 21:00"),
        status_changed_at=at("2026-11-20 21:05"),
    )
    c = make_ro(  # completed by hand: no DMS closing time
        fake_slack,
        ro_number="48215",
        customer_last_name="Côté",
        owner="UGONE",
        status=COMPLETED,
        created_at=at("2026-11-02 14:00"),
        status_changed_at=at("2026-11-25 15:00"),
    )
    quiet = make_ro(fake_slack, ro_number="48100", created_at=at("2026-10-01 12:00"))
    # Marie. 00:30 on 1 Nov (04:30 UTC, still EDT) is November; 23:30 on 31 Oct (03:30 UTC) is not.
    picture(a, "UADVISOR", "2026-11-01 04:30")
    picture(a, "UADVISOR", "2026-11-01 03:30")
    picture(a, "UADVISOR", "2026-11-02 04:30")  # 23:30 EST on 1 Nov
    picture(b, "UADVISOR", "2026-11-15 15:00")
    picture(a, "UADVISOR", "2026-11-15 15:05", kind=events.VIDEO)
    message(a, "UADVISOR", "2026-11-03 14:00")
    message(b, "UADVISOR", "2026-12-01 04:30")  # 23:30 EST on 30 Nov
    message(b, "UADVISOR", "2026-12-01 05:30")  # 00:30 on 1 Dec: not November
    sent = send(a, "UADVISOR", "2026-11-04 12:00", 2)
    view(a, "UADVISOR", "2026-11-04 13:00", sent)
    send(b, "UADVISOR", "2026-11-16 12:00", 3)  # never opened
    # Luc
    picture(a, "UTECH", "2026-11-03 13:00")
    picture(a, "UTECH", "2026-11-03 13:01")
    picture(a, "UTECH", "2026-11-10 09:00", kind=events.VIDEO)
    picture(a, "UTECH", "2026-11-10 09:02", kind=events.VIDEO)
    message(a, "UTECH", "2026-11-03 13:05")
    # The formula name, and Paul (who left)
    message(b, "UPARTS", "2026-11-15 16:00")
    picture(a, "UGONE", "2026-11-05 15:00")
    message(a, CUSTOMER, "2026-11-03 14:33")  # the customer pseudo-user: nobody's message
    # The conversations. RO a: October's exchange is answered in October.
    customer_text(a, "2026-10-30 12:00")
    reply(a, "UADVISOR", "2026-10-30 12:10")
    customer_text(a, "2026-10-31 20:00")
    customer_text(a, "2026-11-01 00:00")
    reply(a, "UADVISOR", "2026-11-01 12:00")  # 16 h after the first unanswered text: 960 min
    reply(a, "UADVISOR", "2026-11-01 12:05")  # nothing new from the customer: no response time
    customer_text(a, "2026-11-03 14:30")
    reply(a, "UTECH", "2026-11-03 14:40")  # 10 min
    customer_text(a, "2026-11-03 15:00")
    customer_text(a, "2026-11-03 15:10")
    reply(a, "UADVISOR", "2026-11-03 15:20")  # 20 min, from the first of the two
    customer_text(a, "2026-11-06 13:00")
    reply(a, "UADVISOR", "2026-11-06 13:30")  # 30 min
    customer_text(a, "2026-12-01 05:00")
    reply(a, "UADVISOR", "2026-12-01 05:10")  # December
    # RO b, then c (a text nobody answered: the RO is active, with no response time)
    customer_text(b, "2026-11-16 14:00")
    reply(b, "UTECH", "2026-11-16 14:15")  # 15 min
    customer_text(b, "2026-11-17 14:00")
    reply(b, "UGONE", "2026-11-17 14:45")  # 45 min
    customer_text(c, "2026-11-25 16:00")
    # An RO busy in October only: not in November's sheet
    message(quiet, "UTECH", "2026-10-15 14:00")
    return {"a": a, "b": b, "c": c}


NOVEMBER = {
    "Marie Roy": [3, 1, 2, 4, 5, 1, 30.0, 2],
    "Luc Martin": [2, 2, 1, 2, 0, 0, 12.5, 2],
    FORMULA_NAME: [0, 0, 1, 0, 0, 0, None, 1],
    "Paul Ancien": [1, 0, 0, 1, 0, 0, 45.0, 2],
}
# Responses 10, 15, 20, 30, 45, 960: the median is (20 + 30) / 2.
NOVEMBER_TOTAL = [6, 3, 4, 7, 5, 1, 25.0, 2]
# The Repair orders sheet: number, customer, advisor, status (English), opened, completed (shop
# time), pictures, videos, messages, files sent, views, median first response.
_SHOP_TIME = {
    "opened a": datetime(2026, 10, 28, 9, 0),
    "opened b": datetime(2026, 11, 1, 7, 0),
    "closed b": datetime(2026, 11, 20, 16, 0),
    "opened c": datetime(2026, 11, 2, 9, 0),
    "completed c": datetime(2026, 11, 25, 10, 0),
}
NOVEMBER_ROS = [
    ["48213", "Jean Tremblay", "Marie Roy", "In progress", _SHOP_TIME["opened a"], None, 5, 3, 2, 2, 1, 25.0],
    [
        "48214",
        "Jean Gagnon",
        "sylvie.roy@dealer.example",
        "Completed",
        _SHOP_TIME["opened b"],
        _SHOP_TIME["closed b"],
        1,
        0,
        2,
        3,
        0,
        30.0,
    ],
    ["48215", "Jean Côté", "Paul Ancien", "Completed", _SHOP_TIME["opened c"], _SHOP_TIME["completed c"], 0, 0, 0, 0, 0, None],
]
NOVEMBER_ROS_TOTAL = ["Total", None, None, None, None, None, 6, 3, 4, 5, 1, 25.0]
# The By day sheet's days with activity (the others are zeros): the Users columns, that day.
NOVEMBER_DAYS = {
    1: [2, 0, 0, 2, 0, 0, 960.0, 1],
    3: [2, 0, 2, 2, 0, 0, 15.0, 1],
    4: [0, 0, 0, 0, 2, 1, None, 1],
    5: [1, 0, 0, 0, 0, 0, None, 1],
    6: [0, 0, 0, 1, 0, 0, 30.0, 1],
    10: [0, 2, 0, 0, 0, 0, None, 1],
    15: [1, 1, 1, 0, 0, 0, None, 2],
    16: [0, 0, 0, 1, 3, 0, 15.0, 1],
    17: [0, 0, 0, 1, 0, 0, 45.0, 1],
    30: [0, 0, 1, 0, 0, 0, None, 1],
}
ZEROS = [0, 0, 0, 0, 0, 0, None, 0]


def read_workbook(path: Path | bytes) -> dict:
    """The sheets by position (their names follow the reader's language): {"users": rows after the
    header, "header": …, "ros", "ros_header", "days", "days_header", "book": the workbook}."""
    book = load_workbook(io.BytesIO(path) if isinstance(path, bytes) else path)
    users, ros, days = ([list(r) for r in sheet.iter_rows(values_only=True)] for sheet in book.worksheets[:3])
    return {
        "book": book,
        "header": users[0],
        "users": users[1:],
        "ros_header": ros[0],
        "ros": ros[1:],
        "days_header": days[0],
        "days": days[1:],
    }
