"""Metrics benchmark: a year's workbook from a busy shop, ours against the naive way, in one run.

    .venv/bin/python bench/metrics.py                      # 100,000 events, SQLite (a quick look)
    .venv/bin/python bench/metrics.py --events 1000000     # the issue's size
    .venv/bin/python bench/metrics.py --events 1000000 --skip-sqlite \\
        --postgres postgresql://postgres@127.0.0.1:5432/postgres

Loads 500 people (skewed: the busiest do about twenty times what the median person does; 40 of
them advisors owning ROs), 20,000 ROs opened over the year, and `--events` MetricEvent rows (what
the metrics count, storage/metric_events.py) over the year 2025-12-01..2026-11-30 in
America/Toronto, both daylight-saving changes inside, from 07:00 to 21:00 shop time (so the
evening's events fall on the next UTC day), plus a week on each side that must not count: about
30 % pictures, 7 % videos, 38 % messages (1 in 100 the customer's), 20 % customer texts and
replies (conversations: one to three texts, a reply minutes to hours later, some replies nobody
asked for, some texts never answered), 3 % sends of one to four files, 2 % page views. Bulk loads
as bench/bulk.py does them (indexes built after; PostgreSQL gets VACUUM ANALYZE).

Then, each in a process of its own (so its wall time, CPU time and peak memory are its own, the
imports of the reports and openpyxl included), the year's workbook, in French:
- ours: `reports.metrics_flow.write_period`, what `/ro metrics` and `bot.py report` run (counts
  and medians in SQL, openpyxl's write-only mode);
- naive: every event of the year (and the conversations' texts before it) loaded into Python as
  peewee models and counted there, a local day per row, medians by sorting; the same sheets
  (Users, Repair orders, By day, the chart) written with openpyxl's default Workbook.
Both must find the same numbers (every row of every sheet, the totals printed), or the run
fails. Target: ours under 5 s and 300 MB, on SQLite and PostgreSQL. Peak memory is the process's
(SQLite's page cache included; PostgreSQL's server is not). Not part of the test run.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bulk  # noqa: E402
from storage.db import database, open_database  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.models import MetricEvent, RepairOrder, StaffUser  # noqa: E402

TZ = ZoneInfo("America/Toronto")
YEAR = (date(2025, 12, 1), date(2026, 11, 30))
ROS = 20_000
ADVISORS = 40
LOCALE = "fr-CA"
CUSTOMER = "customer"  # storage.values.CUSTOMER: the customer's own messages in an RO channel
CHUNK = 50_000


# -- the data ------------------------------------------------------------------------------------


def _utc(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), TZ).astimezone(timezone.utc).replace(tzinfo=None)


START, END = _utc(YEAR[0]), _utc(YEAR[1] + timedelta(days=1))  # the year, naive UTC, [START, END)
SPAN = (START - timedelta(days=7), END + timedelta(days=7))  # what is loaded: a week outside on each side


def _people(count: int, rng: random.Random) -> tuple[list[str], list[float]]:
    ids = [f"U{n:07d}" for n in range(count)]
    # Zipf-like: the busiest does about twenty times what the median person does.
    weights = [1 / (rank + 1) ** 0.8 for rank in range(count)]
    rng.shuffle(weights)
    return ids, weights


class _Clock:
    """Random moments of the loaded span in shop hours (07:00-21:00 Toronto), as naive UTC."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        first = SPAN[0].date()
        self.days = [first + timedelta(days=n) for n in range((SPAN[1].date() - first).days)]

    def moment(self, *, whole_minutes: bool = False) -> datetime:
        day = self.rng.choice(self.days)
        seconds = 7 * 3600 + int(self.rng.random() * 14 * 3600)
        if whole_minutes:  # response times in whole minutes: the two ways' medians agree to the digit
            seconds -= seconds % 60
        local = datetime.combine(day, datetime.min.time(), TZ) + timedelta(seconds=seconds)
        return local.astimezone(timezone.utc).replace(tzinfo=None)


def _ro_near(rng: random.Random, opened: list[datetime], moment: datetime) -> int:
    """An RO opened in the fortnight before `moment` (its id): activity follows the car."""
    last = bisect.bisect_right(opened, moment)
    first = bisect.bisect_left(opened, moment - timedelta(days=14))
    return rng.randrange(min(first, last - 1), last) + 1 if last else 1  # none that recent: the latest


def load(events: int, people: int, log: Callable[[str], None]) -> None:
    rng = random.Random(20)
    users, weights = _people(people, rng)
    clock = _Clock(rng)
    tables = [RepairOrder._meta.table_name, MetricEvent._meta.table_name]
    started = time.perf_counter()
    with bulk.indexes_dropped(tables):
        with database.atomic():
            StaffUser.insert_many(
                [
                    {"slack_user_id": u, "name": f"user{n}", "real_name": f"Personne {n:03d} Bélanger", "locale": "fr-CA"}
                    for n, u in enumerate(users)
                ]
            ).execute()
            opened = sorted(clock.moment() - timedelta(days=14) for _ in range(ROS))
            columns, rows = bulk.model_rows(RepairOrder, _repair_orders(rng, users[:ADVISORS], opened))
            bulk.insert_rows(tables[0], columns, rows)
            columns = ["id", "kind", "at", "user_id", "ro_id", "ref", "amount"]
            chunk, counted = [], defaultdict(int)
            for n, (kind, at, user, ro, ref, amount) in enumerate(_events(rng, clock, users, weights, opened, events), 1):
                chunk.append((n, kind, at, user, ro, ref, amount))
                counted[kind] += 1
                if len(chunk) == CHUNK:
                    bulk.insert_rows(tables[1], columns, chunk)
                    chunk = []
            if chunk:
                bulk.insert_rows(tables[1], columns, chunk)
        mix = ", ".join(f"{kind} {count:,}" for kind, count in sorted(counted.items(), key=lambda kv: -kv[1]))
        log(f"  {sum(counted.values()):,} events ({mix}) loaded in {time.perf_counter() - started:.0f} s; building indexes")
    for table in tables:
        bulk.reset_sequence(table)
    log(f"  ready in {time.perf_counter() - started:.0f} s")


FIRST_NAMES = ["Émilie", "Jean-François", "Marc", "Sophie", "Luc", "Chantal", "Éric", "Nathalie", "Karim", "Mei"]
LAST_NAMES = ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Nguyen"]


def _repair_orders(rng: random.Random, advisors: list[str], opened: list[datetime]) -> Iterator[dict]:
    for n, created in enumerate(opened):
        status, closed, changed = "in_progress", None, None
        if created < END - timedelta(days=10) and rng.random() < 0.9:
            status = "completed"
            if rng.random() < 0.8:
                closed = created + timedelta(hours=rng.randrange(2, 200))
            else:  # completed by hand: no DMS time, the status change's
                changed = created + timedelta(hours=rng.randrange(2, 200))
        owner = rng.choice(advisors) if rng.random() < 0.9 else None
        yield {
            "id": n + 1,
            "source": "file",
            "external_id": str(100000 + n),
            "ro_number": str(100000 + n) if n % 50 else f"A{100000 + n}",
            "customer_first_name": rng.choice(FIRST_NAMES),
            "customer_last_name": rng.choice(LAST_NAMES),
            "advisor_email": None if owner else f"advisor{n % 7}@dealer.example",
            "owner_user_id": owner,
            "status": status,
            "closed_at": closed,
            "status_changed_at": changed,
            "created_at": created,
            "last_activity_at": created,
        }


def _events(rng, clock: _Clock, users, weights, opened, count: int) -> Iterator[tuple]:
    """(kind, at, user_id, ro_id, ref, amount) × about `count`, each kind in its share."""
    ref = iter(range(1, 10**9))

    def who(k: int) -> list[str]:
        return rng.choices(users, weights, k=k)

    def on_ro(at: datetime) -> int:
        return _ro_near(rng, opened, at)

    for kind, share in (("picture", 30), ("video", 7)):
        for user in who(count * share // 100):
            at = clock.moment()
            yield kind, at, user, on_ro(at), f"F{next(ref)}", 1
    for user in who(count * 38 // 100):
        at = clock.moment()
        yield "message", at, CUSTOMER if rng.random() < 0.01 else user, on_ro(at), f"C:{next(ref)}", 1
    conversation = count * 20 // 100
    while conversation > 0:  # an exchange: a few texts, then a reply (or one of the two alone)
        at = clock.moment(whole_minutes=True)
        ro = on_ro(at)
        shape = rng.random()
        texts = 0 if shape < 0.1 else rng.choice((1, 1, 1, 2, 3))
        for _ in range(texts):
            yield "customer_text", at, None, ro, f"S{next(ref)}", 1
            at += timedelta(minutes=rng.randrange(0, 30))
        if shape < 0.95:
            at += timedelta(minutes=int(rng.lognormvariate(3, 1.2)))
            yield "reply", at, who(1)[0], ro, f"S{next(ref)}", 1
        conversation -= texts + (shape < 0.95)
    for n, user in enumerate(who(count * 3 // 100)):
        at = clock.moment()
        ro = on_ro(at)
        yield "send", at, user, ro, f"{n}", rng.choice((1, 1, 2, 2, 3, 4))
        if rng.random() < 0.67:  # the customer opened the page (the view is the sender's)
            yield "view", at + timedelta(minutes=rng.randrange(1, 3000)), user, ro, f"{n}", 1


# -- the two ways, each run in a process of its own ----------------------------------------------


def ours(settings, out: Path):
    from reports.metrics_flow import write_period
    from reports.metrics_rules import Period

    return write_period(settings, Period(*YEAR), out, LOCALE)


def naive(settings, out: Path):
    """What one writes first: every event as a model, counted in Python, openpyxl's default mode."""
    from statistics import median

    from reports.metrics_rules import Counts, Metrics, Period, RoLine, UserLine
    from storage.metric_events import CUSTOMER_TEXT, REPLY, SEND, VIEW

    staff_kinds = {"picture": 0, "video": 1, "message": 2, REPLY: 3, SEND: 4, VIEW: 5}
    per_user: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    per_day: dict[date, list[int]] = defaultdict(lambda: [0] * 6)
    per_ro: dict[int, list[int]] = defaultdict(lambda: [0] * 6)
    ros_user, ros_day, ros_all = defaultdict(set), defaultdict(set), set()
    answers = []  # (ro, user, day, minutes)

    def local(moment: datetime | None) -> datetime | None:
        return moment.replace(tzinfo=timezone.utc).astimezone(TZ).replace(tzinfo=None) if moment else None

    conversations: dict[int, list] = defaultdict(list)
    year = MetricEvent.select().where((MetricEvent.at >= START) & (MetricEvent.at < END))
    for event in year:
        day = local(event.at).date()
        if event.kind in (REPLY, CUSTOMER_TEXT):
            conversations[event.ro_id].append(event)
        staff = event.user_id is not None and event.user_id != CUSTOMER and event.kind in staff_kinds
        if event.ro_id is not None and (staff or event.kind == CUSTOMER_TEXT):
            per_ro[event.ro_id]  # an RO of the period, even with only a customer's text
        if not staff:
            continue
        column = staff_kinds[event.kind]
        amount = event.amount if event.kind == SEND else 1
        per_user[event.user_id][column] += amount
        per_day[day][column] += amount
        if event.ro_id is not None:
            per_ro[event.ro_id][column] += amount
            if event.kind != VIEW:
                ros_user[event.user_id].add(event.ro_id)
                ros_day[day].add(event.ro_id)
                ros_all.add(event.ro_id)
    # A reply's first customer text may be older than the period: the conversations' earlier rows.
    earlier = MetricEvent.select().where(
        (MetricEvent.at < START) & MetricEvent.kind.in_((REPLY, CUSTOMER_TEXT)) & MetricEvent.ro.in_(list(conversations))
    )
    for event in earlier:
        conversations[event.ro_id].append(event)
    for ro, rows in conversations.items():
        asked = None
        for event in sorted(rows, key=lambda e: (e.at, e.id)):
            if event.kind == CUSTOMER_TEXT:
                asked = asked or event.at
                continue
            counted = START <= event.at and event.user_id is not None and event.user_id != CUSTOMER
            if counted and asked is not None:
                answers.append((ro, event.user_id, local(event.at).date(), (event.at - asked).total_seconds() / 60))
            asked = None
    medians: dict[tuple[str, object], float] = {}
    for grouping, position in (("user", 1), ("ro", 0), ("day", 2), ("all", None)):
        grouped = defaultdict(list)
        for answer in answers:
            grouped[answer[position] if position is not None else None].append(answer[3])
        for key, minutes in grouped.items():
            medians[(grouping, key)] = round(median(minutes), 1)

    names = {u.slack_user_id: u.real_name or u.name or u.slack_user_id for u in StaffUser.select()}
    users = [
        UserLine(user, names.get(user, user), Counts(*numbers, medians.get(("user", user)), len(ros_user[user])))
        for user, numbers in per_user.items()
    ]
    users.sort(key=lambda line: (line.name.casefold(), line.user_id))
    days = []
    day = YEAR[0]
    while day <= YEAR[1]:
        days.append((day, Counts(*per_day.get(day, [0] * 6), medians.get(("day", day)), len(ros_day[day]))))
        day += timedelta(days=1)
    total = Counts(
        *(sum(numbers[c] for numbers in per_user.values()) for c in range(6)), medians.get(("all", None)), len(ros_all)
    )
    owners = {u.slack_user_id: u.real_name or u.name for u in StaffUser.select()}
    lines = []
    for ro in RepairOrder.select().where(RepairOrder.id.in_(list(per_ro))):
        completed = (ro.closed_at or ro.status_changed_at) if ro.status == "completed" else None
        pictures, videos, messages, _texts, files, views = per_ro[ro.id]
        line = RoLine(
            ro.ro_number,
            ro.customer_name,
            owners.get(ro.owner_user_id) or ro.advisor_email or "",
            ro.status,
            local(ro.created_at),
            local(completed),
            pictures,
            videos,
            messages,
            files,
            views,
            medians.get(("ro", ro.id)),
        )
        lines.append(((len(ro.ro_number), ro.ro_number, ro.id), line))
    lines.sort(key=lambda pair: pair[0])
    metrics = Metrics(Period(*YEAR), users, days, total, [line for _, line in lines])
    _default_workbook(metrics, out)
    return metrics


def _default_workbook(metrics, out: Path) -> None:
    """The same sheets with openpyxl's default Workbook: every cell kept in memory, styled one by one."""
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    from core.i18n import t
    from reports.workbook import FORMATS, sheets

    book = Workbook()
    book.remove(book.active)
    bold = Font(bold=True)
    for table in sheets(metrics, LOCALE):
        sheet = book.create_sheet(table.name[:31])
        sheet.append([column.title for column in table.columns])
        for row in table.rows:
            sheet.append(row)
        sheet.append(table.total)
        for n, column in enumerate(table.columns, 1):
            cells = list(sheet.iter_rows(min_col=n, max_col=n))
            header, *values = (row[0] for row in cells)
            header.font, header.alignment = bold, Alignment(wrap_text=True, vertical="top")
            if column.kind in FORMATS:
                for cell in values:
                    cell.number_format = FORMATS[column.kind]
            values[-1].font = bold
            longest = max((len(str(cell.value)) for cell in values if cell.value is not None), default=0)
            sheet.column_dimensions[get_column_letter(n)].width = min(max(longest, 8) + 2, 50)
        sheet.freeze_panes = "B2"
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{len(table.rows) + 1}"
    users = book.worksheets[0]
    chart = BarChart()
    chart.type = "bar"
    chart.title = t("metrics.chart.title", LOCALE)
    rows = min(len(metrics.users), 60)
    chart.add_data(Reference(users, min_col=2, max_col=3, min_row=1, max_row=rows + 1), titles_from_data=True)
    chart.set_categories(Reference(users, min_col=1, min_row=2, max_row=rows + 1))
    book.create_chartsheet(t("metrics.sheet.chart", LOCALE)).add_chart(chart)
    book.save(out)


def _digest(metrics) -> str:
    """Every row of every sheet (as reports.workbook lays them out), hashed: the two ways must agree."""
    from reports.workbook import sheets

    tables = [[table.key, table.rows, table.total] for table in sheets(metrics, LOCALE)]
    return hashlib.sha256(json.dumps(tables, default=str).encode()).hexdigest()[:16]


def _peak_kb() -> int:
    """This process's peak resident memory. Linux's VmHWM, not ru_maxrss: that one survives the
    exec and so counts the parent's memory at the fork (the loader's, hundreds of MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS


def measure(way: str, url: str, out: str) -> None:
    """The child process: one way, its figures as one JSON line."""
    from core.config import load_settings

    open_database(url)
    settings = load_settings(
        {"DATABASE_URL": url, "SHOP_TIMEZONE": TZ.key, "MEDIA_DIR": str(Path(out).parent)}, require_slack=False
    )
    started, cpu = time.perf_counter(), time.process_time()
    with database.connection_context():
        metrics = (ours if way == "ours" else naive)(settings, Path(out))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    figures = {"wall": wall, "cpu": cpu, "peak_mb": _peak_kb() / 1024, "bytes": os.path.getsize(out)}
    counts = {"users": len(metrics.users), "ros": len(metrics.repair_orders), "days": len(metrics.days)}
    print(json.dumps({**figures, **counts, "totals": metrics.total.values(), "digest": _digest(metrics)}))


def _child(way: str, url: str, folder: Path) -> dict:
    out = folder / f"{way}.xlsx"
    command = [sys.executable, __file__, "--measure", way, "--url", url, "--out", str(out)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{way} failed:\n{result.stderr}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "process": time.perf_counter() - started}


def run(url: str, events: int, people: int, label: str) -> None:
    def log(message: str) -> None:
        print(message, flush=True)

    open_database(url)
    with database.connection_context():
        migrate()
        bulk.fast_sqlite()
        log(f"{label}: loading about {events:,} events, {people} people, {ROS:,} ROs")
        load(events, people, log)
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()
    with tempfile.TemporaryDirectory() as tmp:
        results = {way: _child(way, url, Path(tmp)) for way in ("ours", "naive")}
    shape = {key: results["ours"][key] for key in ("totals", "users", "ros", "days", "digest")}
    if shape != {key: results["naive"][key] for key in shape}:
        raise SystemExit(f"the two ways disagree:\n  ours  {results['ours']}\n  naive {results['naive']}")
    log(f"{label}: the year's workbook, both ways the same ({shape['users']} people, {shape['ros']:,} ROs,")
    log(f"  {shape['days']} days; totals {shape['totals']})")
    log(f"{'':<8} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'file KB':>8} {'process s':>10}")
    for way, figures in results.items():
        log(
            f"{way:<8} {figures['wall']:>8.2f} {figures['cpu']:>8.2f} {figures['peak_mb']:>8.0f}"
            f" {figures['bytes'] / 1024:>8.0f} {figures['process']:>10.2f}"
        )
    log(
        f"ours: {results['naive']['wall'] / results['ours']['wall']:.1f}× faster, "
        f"{results['naive']['peak_mb'] / results['ours']['peak_mb']:.1f}× less memory"
        f" (target: under 5 s and 300 MB: {'met' if results['ours']['wall'] < 5 and results['ours']['peak_mb'] < 300 else 'MISSED'})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="metric events over the year (the issue's: 1000000)")
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--postgres", help="PostgreSQL URL: also run there, in a temporary schema dropped after")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--measure", choices=("ours", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        measure(args.measure, args.url, args.out)
        return 0
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", args.events, args.people, "SQLite")
    if args.postgres:
        with bulk.postgres_schema(args.postgres) as url:
            run(url, args.events, args.people, "PostgreSQL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
