"""What the metrics count, exactly, on SQLite and PostgreSQL: known events in (MetricEvent rows, as
the app records them), the collected numbers and every sheet of the workbook read back with
openpyxl. Shop days are Toronto days, across both daylight-saving changes."""

from __future__ import annotations

import csv
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from reports.metrics_rules import MetricsRefused, Period, collect, last_week, parse_period
from reports.workbook import write_csv, write_workbook
from storage import metric_events as events
from tests.support.factories import make_ro
from tests.support.metrics import (
    FORMULA_NAME,
    FR_COUNTS,
    NOVEMBER,
    NOVEMBER_DAYS,
    NOVEMBER_ROS,
    NOVEMBER_ROS_TOTAL,
    NOVEMBER_TOTAL,
    ZEROS,
    customer_text,
    event,
    november,
    picture,
    read_workbook,
    reply,
    staff,
)

TZ = ZoneInfo("America/Toronto")
NOV = Period(date(2026, 11, 1), date(2026, 11, 30))
EN_COUNTS = [
    "Internal pictures",
    "Internal videos",
    "Messages",
    "Texts to customers",
    "Files sent to customers",
    "Customer views",
    "Median first response (min)",
    "ROs participated in",
]


def _by_name(rows: list[list]) -> dict:
    return {row[0]: row[1:] for row in rows}


def _shown(value) -> int:
    """How many characters Excel shows for a value (dates in the sheets' formats)."""
    if isinstance(value, datetime):
        return len("2026-11-01") if value.time() == datetime.min.time() else len("2026-11-01 09:00")
    return len(str(value if value is not None else ""))


def _workbook(tmp_path, period: Period = NOV, locale: str = "en-US") -> dict:
    return read_workbook(write_workbook(collect(period, TZ), tmp_path / "m.xlsx", locale))


def test_collect_counts_each_person_exactly(db):
    november()
    metrics = collect(NOV, TZ)
    assert {line.name: line.counts.values() for line in metrics.users} == NOVEMBER
    assert metrics.total.values() == NOVEMBER_TOTAL
    # By name; the bot and the quiet person did nothing: no row.
    assert [line.name for line in metrics.users] == [
        '=HYPERLINK("https://evil.example","Cliquez")',
        "Luc Martin",
        "Marie Roy",
        "Paul Ancien",
    ]


def test_the_users_sheet_holds_the_exact_counts_and_the_totals_row(db, tmp_path):
    november()
    out = _workbook(tmp_path)
    assert out["header"] == ["User", *EN_COUNTS]
    *people, total = out["users"]
    assert _by_name(people) == NOVEMBER  # Paul left the workspace: his row, under the name Slack last gave
    assert total == ["Total", *NOVEMBER_TOTAL]


def test_the_repair_orders_sheet_has_each_active_ro_with_its_facts_in_shop_time(db, tmp_path):
    november()
    out = _workbook(tmp_path)
    assert out["ros_header"] == [
        "RO number",
        "Customer",
        "Advisor",
        "Status",
        "Opened",
        "Completed",
        "Internal pictures",
        "Internal videos",
        "Messages",
        "Files sent to customers",
        "Customer views",
        "Median first response (min)",
    ]
    # 48100 was busy in October only. 48214 closed in the DMS: its closing time; 48215 completed
    # by hand: when it became completed. Advisors: the owner's name, else the DMS's email.
    *ros, total = out["ros"]
    assert ros == NOVEMBER_ROS
    assert total == NOVEMBER_ROS_TOTAL
    sheet = out["book"].worksheets[1]
    opened, completed = sheet["E2"], sheet["F3"]
    assert opened.is_date and opened.number_format == "yyyy-mm-dd hh:mm" and completed.is_date
    assert sheet["A2"].data_type == "s"  # an RO number is a name, not a quantity (leading zeros stay)


def test_the_by_day_sheet_counts_shop_days_across_the_change_to_winter_time(db, tmp_path):
    november()
    out = _workbook(tmp_path)
    assert out["days_header"] == ["Day", *EN_COUNTS]
    *days, total = out["days"]
    assert [d[0] for d in days] == [datetime(2026, 11, n) for n in range(1, 31)]
    assert {d[0].day: d[1:] for d in days} == {n: NOVEMBER_DAYS.get(n, ZEROS) for n in range(1, 31)}
    for column in range(1, 7):  # the counts add up to the Users totals
        assert sum(d[column] for d in days) == NOVEMBER_TOTAL[column - 1]
    assert total == ["Total", *NOVEMBER_TOTAL]


def test_spring_forward_days_too(db, tmp_path):
    """8 Mar 2026: 02:00 EST becomes 03:00 EDT (07:00 UTC)."""
    staff("UTECH", "Luc Martin")
    ro = make_ro(ro_number="500")
    picture(ro, "UTECH", "2026-03-07 04:59")  # 23:59 EST on the 6th
    picture(ro, "UTECH", "2026-03-08 04:30")  # 23:30 EST on the 7th
    picture(ro, "UTECH", "2026-03-08 05:30")  # 00:30 EST on the 8th
    picture(ro, "UTECH", "2026-03-09 03:30")  # 23:30 EDT on the 8th
    picture(ro, "UTECH", "2026-03-09 04:30")  # 00:30 EDT on the 9th
    picture(ro, "UTECH", "2026-03-10 04:00")  # 00:00 EDT on the 10th: after the period
    period = Period(date(2026, 3, 7), date(2026, 3, 9))
    metrics = collect(period, TZ)
    assert [(day.day, counts.pictures) for day, counts in metrics.days] == [(7, 1), (8, 2), (9, 1)]
    out = read_workbook(write_workbook(metrics, tmp_path / "m.xlsx", "en-US"))
    assert [row[:2] for row in out["days"]] == [[datetime(2026, 3, n), p] for n, p in ((7, 1), (8, 2), (9, 1))] + [["Total", 4]]


def test_a_response_across_the_hour_that_happens_twice_is_its_real_length(db):
    """1 Nov 2026 01:50 EDT, then 01:10 EST 20 minutes later: 20, not -40."""
    staff("UADVISOR", "Marie Roy")
    ro = make_ro(ro_number="501")
    customer_text(ro, "2026-11-01 05:50")
    reply(ro, "UADVISOR", "2026-11-01 06:10")
    [marie] = collect(NOV, TZ).users
    assert (marie.counts.texts, marie.counts.response) == (1, 20.0)


def test_medians_of_odd_and_even_counts_and_replies_nobody_asked_for(db):
    staff("UADVISOR", "Marie Roy")
    ro = make_ro(ro_number="502")
    reply(ro, "UADVISOR", "2026-11-02 12:00")  # first in the thread: no text before it
    for asked, answered in (("11-03 12:00", "11-03 12:01"), ("11-04 12:00", "11-04 12:07"), ("11-05 12:00", "11-05 12:03")):
        customer_text(ro, f"2026-{asked}")
        reply(ro, "UADVISOR", f"2026-{answered}")
        reply(ro, "UADVISOR", f"2026-{answered}:30")  # a second reply: answers nothing new
    metrics = collect(NOV, TZ)
    [marie] = metrics.users
    assert (marie.counts.texts, marie.counts.response) == (7, 3.0)  # 1, 3, 7
    customer_text(ro, "2026-11-06 12:00")
    reply(ro, "UADVISOR", "2026-11-06 12:11")
    metrics = collect(NOV, TZ)
    assert metrics.users[0].counts.response == 5.0  # 1, 3, 7, 11: (3 + 7) / 2
    assert metrics.total.response == 5.0 and metrics.repair_orders[0].response == 5.0


def test_the_workbook_reads_well_in_excel_in_french(db, tmp_path):
    november()
    out = _workbook(tmp_path, locale="fr-CA")
    book = out["book"]
    assert book.sheetnames == ["Utilisateurs", "Bons de travail", "Par jour", "Graphique"]
    assert out["header"] == ["Utilisateur", *FR_COUNTS]
    assert out["ros_header"][:6] == ["Numéro de RO", "Client", "Conseiller", "Statut", "Ouvert le", "Terminé le"]
    assert [row[3] for row in out["ros"][:-1]] == ["En cours", "Terminé", "Terminé"]
    assert out["days_header"] == ["Jour", *FR_COUNTS]
    assert out["users"][-1][0] == "Total"
    for sheet, rows in zip(book.worksheets, (out["users"], out["ros"], out["days"]), strict=True):
        assert all(cell.font.b for cell in sheet[1]) and sheet.freeze_panes == "B2"
        # The filter covers the rows, not the totals row (sorting leaves Total last).
        last = sheet.max_column
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, last).column_letter}{len(rows)}"
        assert all(cell.font.b for cell in sheet[len(rows) + 1])
        for column in range(1, last + 1):
            letter = sheet.cell(1, column).column_letter
            longest = max(_shown(sheet.cell(r, column).value) for r in range(2, len(rows) + 2))
            assert sheet.column_dimensions[letter].width >= min(longest, 48), (sheet.title, letter)
    users = book.worksheets[0]
    assert users.column_dimensions["A"].width >= len("Paul Ancien")
    assert users["H3"].value == 12.5 and users["H3"].number_format == "0.0" and isinstance(users["B3"].value, int)
    first_day = book.worksheets[2]["A2"]
    assert first_day.is_date and first_day.number_format == "yyyy-mm-dd"
    [chart] = book.chartsheets[0]._charts
    assert chart.type == "bar" and len(chart.series) == 2  # pictures and videos


def test_a_name_that_looks_like_a_formula_stays_text(db, tmp_path):
    november()
    users = _workbook(tmp_path)["book"].worksheets[0]
    cell = next(row[0] for row in users.iter_rows(min_row=2) if row[0].value == FORMULA_NAME)
    assert cell.data_type == "s"


def test_control_characters_in_a_name_do_not_break_the_workbook(db, tmp_path):
    staff("UODD", "Pat\x07 Roy\x1b")
    event(events.MESSAGE, make_ro(ro_number="503"), "UODD", "2026-11-10 15:00")
    out = _workbook(tmp_path)
    assert out["users"][0] == ["Pat Roy", 0, 0, 1, 0, 0, 0, None, 1]


def test_someone_slack_never_described_is_listed_by_their_id(db):
    event(events.PICTURE, make_ro(ro_number="504"), "UNEW", "2026-11-10 15:00")
    assert [(line.user_id, line.name) for line in collect(NOV, TZ).users] == [("UNEW", "UNEW")]


def test_an_empty_period_gets_a_workbook_of_zeros(db, tmp_path):
    november()
    out = _workbook(tmp_path, Period(date(2025, 1, 1), date(2025, 1, 31)))
    assert out["users"] == [["Total", *ZEROS]]
    assert out["ros"] == [["Total", None, None, None, None, None, 0, 0, 0, 0, 0, None]]
    *days, total = out["days"]
    assert len(days) == 31 and all(row[1:] == ZEROS for row in days) and total == ["Total", *ZEROS]
    assert out["book"].chartsheets  # an empty chart, not a broken file


def test_a_database_with_nobody_still_writes_a_workbook(db, tmp_path):
    out = _workbook(tmp_path)
    assert out["users"] == [["Total", *ZEROS]] and len(out["days"]) == 31


def test_the_csv_files_hold_the_same_rows(db, tmp_path):
    november()
    metrics = collect(NOV, TZ)
    paths = write_csv(metrics, tmp_path / "novembre", "fr-CA")
    assert [p.name for p in paths] == ["novembre-users.csv", "novembre-repair-orders.csv", "novembre-by-day.csv"]
    assert paths[0].read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the accents right
    users, ros, days = ([row for row in csv.reader(p.open(encoding="utf-8-sig", newline=""))] for p in paths)
    assert users[0] == ["Utilisateur", *FR_COUNTS]
    rows = {row[0]: row[1:] for row in users[1:-1]}
    assert rows["Marie Roy"] == ["3", "1", "2", "4", "5", "1", "30.0", "2"]
    assert rows["'" + FORMULA_NAME] == ["0", "0", "1", "0", "0", "0", "", "1"]  # no formula when Excel opens it
    assert users[-1] == ["Total", "6", "3", "4", "7", "5", "1", "25.0", "2"]
    assert ros[1] == ["48213", "Jean Tremblay", "Marie Roy", "En cours", "2026-10-28 09:00", "", "5", "3", "2", "2", "1", "25.0"]
    assert ros[3][1] == "Jean Côté" and ros[3][5] == "2026-11-25 10:00"
    assert days[1][:2] == ["2026-11-01", "2"] and len(days) == 1 + 30 + 1
    assert not list(tmp_path.glob("*.part"))


def test_progress_is_reported_up_to_the_end(db):
    november()
    seen: list[float] = []
    collect(NOV, TZ, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 5


def test_the_home_sections_short_count_has_the_same_people_and_no_day_or_ro_rows(db):
    november()
    metrics = collect(NOV, TZ, by_day=False, by_ro=False)
    assert {line.name: line.counts.values() for line in metrics.users} == NOVEMBER
    assert metrics.days == [] and metrics.repair_orders == []


@pytest.mark.parametrize(
    ("words", "reason"),
    [
        (["2026-13-01"], "bad_date"),
        (["novembre"], "bad_date"),
        (["2026-11-30", "2026-11-01"], "reversed"),
        (["2025-01-01", "2026-11-30"], "too_long"),
        (["2026-11-01", "2026-11-02", "2026-11-03"], "too_many_words"),
    ],
)
def test_periods_that_cannot_be_are_refused(words, reason):
    with pytest.raises(MetricsRefused) as refused:
        parse_period(words, date(2026, 12, 4), 400)
    assert refused.value.reason == reason


def test_periods_people_ask_for():
    today = date(2026, 12, 4)
    assert parse_period([], today, 400) == Period(date(2026, 12, 1), today)
    assert parse_period(["2026-11-20"], today, 400) == Period(date(2026, 11, 20), today)
    assert parse_period(["2026-11-01", "2026-11-30"], today, 400) == NOV
    assert parse_period(["2026-11-01", "2026-11-01"], today, 400).days == 1
    assert last_week(date(2026, 12, 7)) == Period(date(2026, 11, 30), date(2026, 12, 6))  # a Monday
    assert last_week(date(2026, 12, 6)) == Period(date(2026, 11, 23), date(2026, 11, 29))  # a Sunday


def test_each_ro_number_links_its_channel_archived_or_not(db, tmp_path):
    november()
    from storage.models import RepairOrder, utcnow

    for number in ("48213", "48214"):
        RepairOrder.update(channel_id=f"C0{number}").where(RepairOrder.ro_number == number).execute()
    # 48214 completed and its channel archived since: still counted, still linked; 48215 never had one.
    RepairOrder.update(channel_archived_at=utcnow(), archived_by_app=True).where(RepairOrder.ro_number == "48214").execute()
    sheet = _workbook(tmp_path)["book"].worksheets[1]
    links = {row[0].value: row[0].hyperlink.target if row[0].hyperlink else None for row in sheet.iter_rows(min_row=2)}
    assert links == {
        "48213": "https://slack.com/app_redirect?channel=C048213",
        "48214": "https://slack.com/app_redirect?channel=C048214",
        "48215": None,
        "Total": None,
    }
    assert sheet["A3"].data_type == "s" and sheet["A3"].value == "48214"
