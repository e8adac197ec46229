"""`python bot.py report`: the workbook of a period written to a file, with no Slack at all (IT, a
cron, a spreadsheet), and a clear line and exit 2 for every mistake on the command line."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.metrics import NOVEMBER, NOVEMBER_TOTAL, november, read_workbook

ROOT = Path(__file__).resolve().parents[2]


def report(args: list[str], database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    # No Slack variables at all: the report must not need them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "REPORT_", "METRICS_"))}
    env.update(
        DATABASE_URL=database_url, SHOP_TIMEZONE="America/Toronto", DOTENV_PATH=str(cwd / "no.env"), MEDIA_DIR=str(cwd / "media")
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "report", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def by_name(rows: list[list]) -> dict:
    return {row[0]: row[1:] for row in rows}


def test_report_writes_the_period_to_a_file_without_slack(db, database_url, tmp_path):
    november()
    out = tmp_path / "novembre.xlsx"
    result = report(["--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out), "--lang", "fr"], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    book = read_workbook(out)
    *people, total = book["users"]
    assert by_name(people) == NOVEMBER
    assert total[1:] == NOVEMBER_TOTAL
    assert book["header"][1] == "Photos internes"
    assert len(book["days"]) == 30 + 1  # each day of November, then the total
    assert not list(tmp_path.glob("*.part"))  # the partial file was renamed into place
    # A log (no terminal) gets the tens of the progress, ending at 100 %, and the summary on stdout.
    progress = [line for line in result.stderr.splitlines() if line.startswith("Counting and writing")]
    assert progress and progress[-1].endswith("100%")
    assert str(out) in result.stdout and "6 pictures, 3 videos, 4 messages" in result.stdout


def test_report_csv_writes_one_file_per_sheet_and_names_them(db, database_url, tmp_path):
    november()
    out = tmp_path / "novembre.xlsx"
    args = ["--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out), "--lang", "fr", "--csv"]
    result = report(args, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    names = ["novembre-users.csv", "novembre-repair-orders.csv", "novembre-by-day.csv"]
    assert result.stdout.splitlines()[:3] == [str(tmp_path / name) for name in names]
    assert sorted(p.name for p in tmp_path.glob("novembre*")) == sorted(names)  # no workbook, no .part
    users = list(csv.reader((tmp_path / names[0]).open(encoding="utf-8-sig", newline="")))
    assert users[0][1:3] == ["Photos internes", "Vidéos internes"]
    assert users[-1] == ["Total", *(str(n) for n in NOVEMBER_TOTAL)]
    assert len(list(csv.reader((tmp_path / names[2]).open(encoding="utf-8-sig")))) == 1 + 30 + 1
    assert "6 pictures, 3 videos, 4 messages" in result.stdout


def test_report_defaults_to_this_month_under_a_dated_name(db, database_url, tmp_path):
    november()
    result = report([], database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    [written] = tmp_path.glob("metrics-*.xlsx")
    start, end = written.stem.removeprefix("metrics-")[:10], written.stem[-10:]
    assert start.endswith("-01") and start[:7] == end[:7]  # from the 1st of this month to today


@pytest.mark.parametrize(
    "args,said",
    [
        (["--from", "2026-13-01"], "is not a date: use YYYY-MM-DD"),
        (["--from", "1 novembre"], "is not a date: use YYYY-MM-DD"),
        (["--to", "2026-11-30"], "--to needs --from"),
        (["--from", "2026-11-30", "--to", "2026-11-01"], "2026-11-30"),
        (["--from", "2010-01-01", "--to", "2026-11-30"], "3660"),
        (["--from", "2026-11-01", "--out", "novembre.csv"], "must end in .xlsx"),
        (["--from", "2026-11-01", "--out", "nowhere/novembre.xlsx"], "does not exist"),
    ],
)
def test_command_line_mistakes_are_named_and_write_nothing(db, database_url, tmp_path, args, said):
    result = report(args, database_url, tmp_path)
    assert result.returncode == 2
    assert said in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.xlsx*"))
