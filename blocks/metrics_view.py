"""Block Kit and text for metrics: the top lines that come with a workbook, and the admins' Home section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks import ids, kit
from core.i18n import t

if TYPE_CHECKING:  # type names only (erased at run time): the view reads their attributes
    from reports.metrics_rules import Counts, Metrics, Period, UserLine

TOP_LINES = 5


def _values(counts: Counts) -> dict[str, int]:
    """The whole numbers the catalog's lines show (the median response time is the workbook's)."""
    return {
        "pictures": counts.pictures,
        "videos": counts.videos,
        "messages": counts.messages,
        "texts": counts.texts,
        "files_sent": counts.files_sent,
        "views": counts.views,
        "ros": counts.ros,
    }


def _dates(period: Period) -> dict[str, str]:
    return {"start": period.start.isoformat(), "end": period.end.isoformat()}


def busiest(metrics: Metrics, count: int = TOP_LINES) -> list[UserLine]:
    """Who documented most (pictures and videos, then messages); people with no activity are left out."""
    active = [line for line in metrics.users if line.counts.any()]
    active.sort(key=lambda line: (-(line.counts.pictures + line.counts.videos), -line.counts.messages, line.name.casefold()))
    return active[:count]


def top_lines(metrics: Metrics, locale: str | None) -> list[str]:
    """The totals, then the busiest people, one line each (names escaped: they come from Slack profiles)."""
    lines = [t("metrics.summary.totals", locale, **_values(metrics.total))]
    top = busiest(metrics)
    if not top:
        return [*lines, t("metrics.summary.none", locale)]
    for rank, line in enumerate(top, 1):
        lines.append(t("metrics.summary.line", locale, rank=rank, name=kit.escape(line.name), **_values(line.counts)))
    others = sum(1 for line in metrics.users if line.counts.any()) - len(top)
    if others > 0:
        lines.append(t("metrics.summary.more", locale, count=others))
    return lines


def summary_text(metrics: Metrics, locale: str | None, *, weekly: bool = False) -> str:
    """The comment on the uploaded workbook: the period and its top lines, for a quick look."""
    title = t("metrics.weekly.title" if weekly else "metrics.summary.title", locale, **_dates(metrics.period))
    return kit.cut_markup("\n".join([title, *top_lines(metrics, locale)]), kit.SECTION_TEXT)


def preparing_text(period: Period, locale: str | None) -> str:
    return t("metrics.preparing", locale, **_dates(period))


def home_section(metrics: Metrics, locale: str | None) -> list[dict]:
    """App Home, for those who may see metrics: this month's top lines and Export to Excel."""
    return [
        {"type": "divider"},
        kit.section(
            f"*{t('metrics.home.title', locale)}*",
            block_id="home_metrics_title",
            accessory=kit.button(t("metrics.home.export", locale), ids.METRICS_EXPORT, style="primary"),
        ),
        kit.context(t("metrics.home.month", locale, **_dates(metrics.period)), block_id="home_metrics_period"),
        kit.section("\n".join(top_lines(metrics, locale)), block_id="home_metrics_lines"),
    ]
