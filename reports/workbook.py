"""The metrics as tables: sheets "Users", "Repair orders" and "By day" (and a chart) in an .xlsx, or
one CSV file per sheet. No Slack here.

`sheets()` turns the counts into rows once; `write_workbook` and `write_csv` only lay them out, so
the two files hold the same content. openpyxl's write-only mode streams rows to the file as they
come, so memory stays flat however many people, ROs and days there are; what it cannot do (edit a
cell once written) we never need. Headers and sheet names are in the reader's language; dates are
real Excel dates in the shop's time zone, numbers are numbers.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from core.i18n import t
from reports.metrics_rules import COUNTS, Metrics, RoLine

TEXT, DAY, MOMENT, COUNT, MINUTES = "text", "day", "moment", "count", "minutes"
FORMATS = {DAY: "yyyy-mm-dd", MOMENT: "yyyy-mm-dd hh:mm", MINUTES: "0.0"}
MAX_WIDTH = 50
CHART_MAX_PEOPLE = 60  # a bar chart of more people is unreadable; the first ones are shown
# Writing a sheet is pure Python: it holds the interpreter while the database still counts in other
# threads (metrics_rules.collect), and SQLite gives each result row back through it. Left alone, a
# thread wanting it waits out the switch interval (5 ms) each time: a 500-row GROUP BY took 2.5 s
# more. Every few rows (well under 5 ms) the writer lets such a thread in.
YIELD_EVERY = 8
# A text cell starting with one of these is a formula to Excel when it opens a CSV.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    title: str
    kind: str  # TEXT, DAY, MOMENT, COUNT or MINUTES


@dataclass(frozen=True)
class Sheet:
    key: str  # stable, in English: the CSV file's name ends in it whatever the language
    name: str  # the sheet's name, in the reader's language
    columns: list[Column]
    rows: list[list]
    total: list  # the bold last row; below the filtered range, so sorting leaves it last
    # Per row, where its first cell links to (an RO's Slack channel, archived or not); CSV keeps the text.
    links: list[str | None] | None = None


def sheets(metrics: Metrics, locale: str | None) -> list[Sheet]:
    """The data sheets, in the workbook's order: Users, Repair orders, By day."""
    total_label = t("metrics.total", locale)
    ros = _ro_sheet(metrics.repair_orders, metrics.total.response, locale, total_label)
    return [_users_sheet(metrics, locale), ros, _day_sheet(metrics, locale)]


def _count_columns(locale: str | None) -> list[Column]:
    return [Column(t(f"metrics.col.{name}", locale), MINUTES if name == "response" else COUNT) for name in COUNTS]


def _users_sheet(metrics: Metrics, locale: str | None) -> Sheet:
    return Sheet(
        "users",
        t("metrics.sheet.users", locale),
        [Column(t("metrics.col.user", locale), TEXT), *_count_columns(locale)],
        [[line.name, *line.counts.values()] for line in metrics.users],
        [t("metrics.total", locale), *metrics.total.values()],
    )


_RO_COUNTS = ("pictures", "videos", "messages", "files_sent", "views", "response")


def _ro_sheet(repair_orders: list[RoLine], response: float | None, locale: str | None, total_label: str) -> Sheet:
    columns = [
        Column(t("metrics.ro.number", locale), TEXT),
        Column(t("metrics.ro.customer", locale), TEXT),
        Column(t("metrics.ro.advisor", locale), TEXT),
        Column(t("metrics.ro.status", locale), TEXT),
        Column(t("metrics.ro.opened", locale), MOMENT),
        Column(t("metrics.ro.completed", locale), MOMENT),
        *(Column(t(f"metrics.col.{name}", locale), MINUTES if name == "response" else COUNT) for name in _RO_COUNTS),
    ]
    statuses = {status: t(f"status.{status}", locale) for status in ("in_progress", "upcoming", "completed")}

    def row(line: RoLine) -> list:
        facts = [line.number, line.customer, line.advisor, statuses.get(line.status, line.status), line.opened, line.completed]
        return [*facts, *(getattr(line, name) for name in _RO_COUNTS)]

    sums = [sum(getattr(line, name) for line in repair_orders) for name in _RO_COUNTS[:-1]]
    # Every response time belongs to an RO: the period's median is the ROs' median too.
    total = [total_label, None, None, None, None, None, *sums, response]
    links = [channel_link(line.channel_id) for line in repair_orders]
    return Sheet("repair-orders", t("metrics.sheet.ros", locale), columns, [row(line) for line in repair_orders], total, links)


def channel_link(channel_id: str | None) -> str | None:
    """Slack's own redirect to a channel: opens it in the app or the browser, archived channels
    included (the RO stays readable after ARCHIVE_AFTER_DAYS)."""
    return f"https://slack.com/app_redirect?channel={channel_id}" if channel_id else None


def _day_sheet(metrics: Metrics, locale: str | None) -> Sheet:
    rows = [[day, *day_counts.values()] for day, day_counts in metrics.days]
    # Per day, "ROs participated in" is that day's distinct ROs; the period's total is not their sum.
    return Sheet(
        "by-day",
        t("metrics.sheet.days", locale),
        [Column(t("metrics.col.day", locale), DAY), *_count_columns(locale)],
        rows,
        [
            t("metrics.total", locale),
            *metrics.total.values(),
        ],
    )


# -- .xlsx -------------------------------------------------------------------------------------------


def write_workbook(metrics: Metrics, path: Path, locale: str | None, progress: Callable[[float], None] | None = None) -> Path:
    """Write the workbook to `path` (replaced if it exists); returns `path`."""
    return MetricsBook(locale).save(metrics, path, progress)


class MetricsBook:
    """The workbook being written: its sheets are made in the workbook's order at once, and filled
    in any order. The Repair orders sheet (nearly all of a big shop's cells) can be written as soon
    as the repair orders and the medians are counted (`repair_orders`, given to
    metrics_rules.collect as its `on_repair_orders`), while the database counts the rest; `save`
    writes what is left. The same workbook as writing it all at the end."""

    def __init__(self, locale: str | None):
        self.locale = locale
        self.book = Workbook(write_only=True)
        keys = ("metrics.sheet.users", "metrics.sheet.ros", "metrics.sheet.days")
        self.users, self.ros, self.days = (self.book.create_sheet(_sheet_title(t(key, locale))) for key in keys)
        self.ros_written = False

    def repair_orders(self, lines: list[RoLine], response: float | None) -> None:
        """Write the Repair orders sheet: the period's RO lines (with their medians) and its median."""
        _fill_sheet(self.ros, _ro_sheet(lines, response, self.locale, t("metrics.total", self.locale)))
        self.ros_written = True

    def save(self, metrics: Metrics, path: Path, progress: Callable[[float], None] | None = None) -> Path:
        """Write the other sheets (and Repair orders, if not yet) and save to `path`; returns `path`."""
        if not self.ros_written:
            self.repair_orders(metrics.repair_orders, metrics.total.response)
        if progress:
            progress(1 / 4)
        _fill_sheet(self.users, _users_sheet(metrics, self.locale))
        if progress:
            progress(2 / 4)
        _fill_sheet(self.days, _day_sheet(metrics, self.locale))
        if progress:
            progress(3 / 4)
        _chart_sheet(self.book, self.users, len(metrics.users), self.locale)
        self.book.save(path)
        if progress:
            progress(1.0)
        return path


def text_cell(sheet, value: str) -> WriteOnlyCell:
    """A cell that is text whatever it holds. openpyxl would store "=HYPERLINK(…)" (a Slack display
    name anyone can set) as a live formula, and refuses control characters: neither may reach Excel."""
    cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", value))
    cell.data_type = "s"
    cell.quotePrefix = True  # Excel keeps it text when someone edits the cell
    return cell


def _fill_sheet(sheet, table: Sheet) -> None:
    # Write-only mode writes widths and panes with the first row: they are set before it.
    for n, width in enumerate(_widths(table), 1):
        sheet.column_dimensions[get_column_letter(n)].width = width
    sheet.freeze_panes = "B2"
    sheet.append([_header_cell(sheet, column.title) for column in table.columns])
    makers = [_maker(sheet, column.kind) for column in table.columns]
    for n, row in enumerate(table.rows):
        cells = [make(value) for make, value in zip(makers, row, strict=True)]
        if table.links and table.links[n]:
            cells[0] = _linked(sheet, cells[0], table.links[n])
        sheet.append(cells)
        if n % YIELD_EVERY == 0:
            time.sleep(0)  # lets waiting threads take the interpreter now (see YIELD_EVERY)
    bold = [_maker(sheet, column.kind, bold=True) for column in table.columns]
    sheet.append([make(value) for make, value in zip(bold, table.total, strict=True)])
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(makers))}{len(table.rows) + 1}"


def _linked(sheet, value, url: str) -> WriteOnlyCell:
    cell = value if isinstance(value, Cell) else text_cell(sheet, str(value))
    cell.hyperlink = url
    cell.style = "Hyperlink"
    return cell


def _sheet_title(name: str) -> str:
    # Excel's rules for a sheet name: 31 characters, none of []:*?/\ (a catalog could hold one).
    return "".join(c for c in name if c not in "[]:*?/\\")[:31] or "Sheet"


def _header_cell(sheet, title: str) -> WriteOnlyCell:
    cell = text_cell(sheet, title)
    cell.font = Font(bold=True)
    cell.alignment = Alignment(wrap_text=True, vertical="top")
    return cell


def _maker(sheet, kind: str, *, bold: bool = False) -> Callable[[object], object]:
    """How a column's values become cells. A workbook of a big shop's year has hundreds of
    thousands of cells: plain values where openpyxl needs nothing more, and one style worked out
    per column (copied into each cell) rather than looked up cell by cell."""
    template = WriteOnlyCell(sheet)
    if kind in FORMATS:
        template.number_format = FORMATS[kind]
    if bold:
        template.font = Font(bold=True)
    style = template._style

    def styled(value):
        return Cell(sheet, 1, 1, value, style_array=style) if style is not None else value

    def text(value):
        if value is None:
            return styled(None)
        value = ILLEGAL_CHARACTERS_RE.sub("", str(value))
        if bold or value.startswith(FORMULA_STARTS):
            cell = text_cell(sheet, value)
            if bold:
                cell.font = Font(bold=True)
            return cell
        return value

    return text if kind == TEXT else styled


def _widths(table: Sheet) -> list[float]:
    """Each column as wide as its longest value (at most MAX_WIDTH); headers wrap at their words."""
    widths = []
    for n, column in enumerate(table.columns):
        if column.kind == DAY:
            longest = 10
        elif column.kind == MOMENT:
            longest = 16
        else:
            values = (row[n] for row in [*table.rows, table.total])
            longest = max((len(str(value)) for value in values if value is not None), default=0)
        words = max((len(word) for word in column.title.split()), default=0)
        widths.append(min(max(longest, words, 8) + 2, MAX_WIDTH))
    return widths


def _chart_sheet(book: Workbook, users, people: int, locale: str | None) -> None:
    """Pictures and videos per person, as bars (the first people in the Users sheet's order)."""
    sheet = book.create_chartsheet(_sheet_title(t("metrics.sheet.chart", locale)))
    chart = BarChart()
    chart.type = "bar"  # horizontal: names stay readable
    chart.grouping = "clustered"
    chart.title = t("metrics.chart.title", locale)
    rows = min(people, CHART_MAX_PEOPLE)
    if rows:
        # Columns B and C of Users: Internal pictures, Internal videos; their headers name the series.
        chart.add_data(Reference(users, min_col=2, max_col=3, min_row=1, max_row=rows + 1), titles_from_data=True)
        chart.set_categories(Reference(users, min_col=1, min_row=2, max_row=rows + 1))
    chart.y_axis.title = t("metrics.chart.count", locale)
    chart.x_axis.scaling.orientation = "maxMin"  # the first person on top, as in the sheet
    sheet.add_chart(chart)


# -- CSV ---------------------------------------------------------------------------------------------


def csv_paths(stem: Path) -> list[Path]:
    """Where write_csv puts each sheet: `<stem>-users.csv`, `<stem>-repair-orders.csv`, `<stem>-by-day.csv`."""
    return [stem.with_name(f"{stem.name}-{key}.csv") for key in ("users", "repair-orders", "by-day")]


def write_csv(metrics: Metrics, stem: Path, locale: str | None, progress: Callable[[float], None] | None = None) -> list[Path]:
    """One CSV per data sheet (the chart is drawn from Users), same rows as the workbook: UTF-8
    with a BOM (Excel then reads accents right), comma-separated, "." decimals, ISO dates in shop
    time. Each file appears whole or not at all (written aside, then renamed). Returns the paths."""
    tables = sheets(metrics, locale)
    paths = csv_paths(stem)
    for n, (table, path) in enumerate(zip(tables, paths, strict=True), 1):
        partial = path.with_name(path.name + ".part")
        with partial.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([_csv_text(column.title) for column in table.columns])
            kinds = [column.kind for column in table.columns]
            for row in [*table.rows, table.total]:
                writer.writerow([_csv_value(kind, value) for kind, value in zip(kinds, row, strict=True)])
        partial.replace(path)
        if progress:
            progress(n / len(tables))
    return paths


def _csv_value(kind: str, value) -> str | int | float:
    if value is None:
        return ""
    if kind == MOMENT and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == DAY and isinstance(value, date):
        return value.isoformat()
    if kind == TEXT:
        return _csv_text(str(value))
    return value


def _csv_text(value: str) -> str:
    # Excel runs a CSV cell that starts like a formula; a leading apostrophe keeps it text.
    return "'" + value if value.startswith(FORMULA_STARTS) else value
