"""Per-person activity in RO spaces over a period: what the metrics workbooks show. No Slack here.

Everything is counted from the metrics' record (storage.models.MetricEvent, written where each
event happens; see storage/metric_events.py), by the database: GROUP BYs over the indexed
(kind, at, user_id, …) and (ro, at, …) columns, on SQLite and PostgreSQL alike; the period's
events never come into Python, only their counts, and for the medians one number per reply that
answered a customer (the database pairs replies with the texts they answer). Days are the shop's days (SHOP_TIMEZONE):
the period's bounds are local midnights turned into UTC, and an event's local day is its UTC time
plus the zone's offset at that moment, written as one CASE over the offset changes inside the
period (SQLite has no time zones; the same expression serves PostgreSQL).

What counts, for a person and a period (an event counts on the day it happened):
- Internal pictures / videos: the pictures and videos they shared in RO channels.
- Messages: messages they posted in RO channels.
- Texts to customers: their conversation replies that went out.
- Files sent to customers: the files of their sends that went out.
- Customer views: their sends whose page the customer opened (once per send, on the day of the
  first opening).
- Median first response: for each of their replies that answered a customer, the minutes from the
  earliest customer text since the RO's previous reply; the median of those (the mean of the two
  middle ones for an even count). A reply with no customer text before it has no response time.
- ROs participated in: distinct ROs where they did any of the above but a view.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from statistics import median
from zoneinfo import ZoneInfo

from peewee import JOIN, SQL, Case, Expression, ValuesList, Window, fn

from core.refusals import Refusal
from storage.db import database, is_postgres, with_connection
from storage.metric_events import CUSTOMER_TEXT, MESSAGE, PICTURE, REPLY, SEND, VIDEO, VIEW
from storage.models import MetricEvent, RepairOrder, StaffUser
from storage.values import COMPLETED, CUSTOMER

# The numbers of a Users row, in the workbook's order.
COUNTS = ("pictures", "videos", "messages", "texts", "files_sent", "views", "response", "ros")
COUNTED = ("pictures", "videos", "messages", "texts", "files_sent", "views")  # the ones that add up
# What staff do, in the order of COUNTED: pictures, videos, messages, texts, files sent, views.
STAFF_KINDS = (PICTURE, VIDEO, MESSAGE, REPLY, SEND, VIEW)
# The command line's own bound (ten years): it runs on the operator's machine, not in the app's workers.
REPORT_MAX_DAYS = 3660


class MetricsRefused(Refusal):
    """No workbook. `reason`: bad_date, reversed, too_long, not_allowed, too_many_words."""

    def __init__(self, reason: str, **detail: object):
        super().__init__(f"metrics.refused.{reason}", **detail)


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # included

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def each_day(self) -> Iterable[date]:
        for n in range(self.days):
            yield self.start + timedelta(days=n)


def this_month(today: date) -> Period:
    return Period(today.replace(day=1), today)


def last_week(today: date) -> Period:
    """Monday to Sunday of the week before `today`'s."""
    monday = today - timedelta(days=today.weekday())
    return Period(monday - timedelta(days=7), monday - timedelta(days=1))


def last_month(today: date) -> Period:
    """The whole calendar month before `today`'s."""
    end = today.replace(day=1) - timedelta(days=1)
    return Period(end.replace(day=1), end)


# `/ro metrics last-week` and the like; case, accents and "-", "_" or a space between the words are
# optional ("Semaine dernière" = "semaine-derniere").
NAMED_PERIODS: dict[str, Callable[[date], Period]] = {
    "last-week": last_week,
    "semaine-derniere": last_week,
    "last-month": last_month,
    "mois-dernier": last_month,
}


def parse_period(words: list[str], today: date, max_days: int) -> Period:
    """`/ro metrics [from] [to]`: nothing = this month so far; `last-week` / `semaine-derniere` =
    Monday to Sunday of the week before; `last-month` / `mois-dernier` = the month before; one
    date = that day to today; two = that range (both included). Dates are YYYY-MM-DD. Raises
    MetricsRefused (bad_date, reversed, too_long, too_many_words)."""
    named = NAMED_PERIODS.get(_period_name(words)) if words else None
    if named is not None:
        period = named(today)
    elif len(words) > 2:
        raise MetricsRefused("too_many_words")
    elif not words:
        period = this_month(today)
    else:
        start = _date(words[0])
        end = _date(words[1]) if len(words) == 2 else today
        if start > end:
            raise MetricsRefused("reversed", start=start.isoformat(), end=end.isoformat())
        period = Period(start, end)
    if period.days > max_days:
        raise MetricsRefused("too_long", days=period.days, limit=max_days)
    return period


def _period_name(words: list[str]) -> str:
    """The words as one folded name: ["Semaine", "dernière"] → "semaine-derniere"."""
    import unicodedata

    text = unicodedata.normalize("NFKD", "-".join(words).casefold().replace("_", "-"))
    return "".join(c for c in text if not unicodedata.combining(c))


def _date(word: str) -> date:
    try:
        return date.fromisoformat(word.strip())
    except ValueError:
        raise MetricsRefused("bad_date", value=word[:40]) from None


@dataclass
class Counts:
    """One row of numbers: a person's, a day's or the period's."""

    pictures: int = 0
    videos: int = 0
    messages: int = 0
    texts: int = 0
    files_sent: int = 0
    views: int = 0
    response: float | None = None  # median minutes to a first reply; None: no reply answered a text
    ros: int = 0

    def values(self) -> list[int | float | None]:
        return [getattr(self, name) for name in COUNTS]

    def any(self) -> bool:
        return any(self.values())


@dataclass
class UserLine:
    user_id: str
    name: str
    counts: Counts


@dataclass
class RoLine:
    """An RO with activity in the period: its facts now, and what happened in it during the period.
    Times are shop-local (naive). `completed` is when the DMS closed it (closed_at) or, when it was
    completed by hand or the DMS gave no time, when it became completed; empty while it is open."""

    number: str
    customer: str
    advisor: str  # the owner's Slack name, else the DMS advisor's email
    status: str  # in_progress | upcoming | completed
    opened: datetime | None
    completed: datetime | None
    pictures: int = 0
    videos: int = 0
    messages: int = 0
    files_sent: int = 0
    views: int = 0
    response: float | None = None
    channel_id: str | None = None  # its Slack channel, archived or not (the workbook links it)


@dataclass
class Metrics:
    period: Period
    users: list[UserLine]  # by name; everyone with activity in the period
    days: list[tuple[date, Counts]]  # every day of the period, zeros included
    total: Counts = field(default_factory=Counts)
    repair_orders: list[RoLine] = field(default_factory=list)  # by RO number


def collect(
    period: Period,
    tz: ZoneInfo,
    *,
    by_day: bool = True,
    by_ro: bool = True,
    progress: Callable[[float], None] | None = None,
    on_repair_orders: Callable[[list[RoLine], float | None], None] | None = None,
) -> Metrics:
    """Every count of the period per person, the totals, and (unless told not to) per day and per RO.
    `on_repair_orders(lines, period's median response)` is called, in the caller's thread, as soon as
    the RO lines are complete, while the other passes still run (the workbook writes their sheet)."""
    events = _Events(_utc(period.start, tz), _utc(period.end + timedelta(days=1), tz), tz)
    passes: dict[str, Callable[[], object]] = {"medians": events.medians}
    if by_ro:
        passes["repair_orders"] = events.repair_orders
    passes["users"] = lambda: list(events.counted(MetricEvent.user_id))
    if by_day:
        passes["days"] = lambda: events.per_day(period)
    if not by_ro:  # else the repair orders' pass tells
        passes["ros"] = events.all_ros
    repair_orders: list[RoLine] = []
    done: list[bool] = []

    def ready(found: dict[str, object]) -> None:
        if done or not by_ro or "medians" not in found or "repair_orders" not in found:
            return
        done.append(True)
        for ro_id, line, _took_part in found["repair_orders"]:
            line.response = found["medians"].get(("ro_id", ro_id))
            repair_orders.append(line)
        if on_repair_orders:
            on_repair_orders(repair_orders, found["medians"].get(("all", None)))

    found = _run(passes, _Progress(progress, len(passes) + 1), ready)
    medians: dict[tuple[str, object], float] = found["medians"]
    per_user = {user_id: _counts(numbers) for user_id, *numbers in found["users"]}
    for user_id, counts in per_user.items():
        counts.response = medians.get(("user_id", user_id))
    total = Counts(*(sum(getattr(counts, name) for counts in per_user.values()) for name in COUNTED))
    total.response = medians.get(("all", None))
    total.ros = sum(took_part for *_, took_part in found["repair_orders"]) if by_ro else found["ros"]
    days: list[tuple[date, Counts]] = []
    if by_day:
        per_day = {_as_date(day): _counts(numbers) for day, *numbers in found["days"]}
        for (grouping, day), minutes in medians.items():
            if grouping == "day":
                per_day.setdefault(_as_date(day), Counts()).response = minutes
        days = [(day, per_day.get(day) or Counts()) for day in period.each_day()]
    names = _names(per_user)
    if progress:
        progress(1.0)
    users = [UserLine(user_id, names.get(user_id) or user_id, counts) for user_id, counts in per_user.items()]
    users.sort(key=lambda line: (line.name.casefold(), line.user_id))
    return Metrics(period, users, days, total, repair_orders)


def _run(
    passes: dict[str, Callable[[], object]], step: Callable[[], None], ready: Callable[[dict[str, object]], None]
) -> dict[str, object]:
    """Each pass over the period's events, two at a time, in the order given: they are independent
    reads, and both SQLite and PostgreSQL work while Python waits, so a big shop's year takes about
    half as long. Each runs in its own connection (an in-memory SQLite database is one connection:
    in turn). `ready(found so far)` is called in this thread after each pass, the others running on."""
    found: dict[str, object] = {}
    if getattr(database.obj, "database", None) == ":memory:":
        for name, run in passes.items():
            found[name] = run()
            step()
            ready(found)
        return found
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="metrics") as pool:
        futures = {pool.submit(with_connection(run)): name for name, run in passes.items()}
        for future in as_completed(futures):
            found[futures[future]] = future.result()
            step()
            ready(found)
        return found


def _counts(numbers: list[int]) -> Counts:
    """A Counts from a row of _Events.counted (the counts of STAFF_KINDS, then the ROs)."""
    *kinds, ros = (int(n or 0) for n in numbers)
    return Counts(*kinds, ros=ros)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _utc(day: date, tz: ZoneInfo) -> datetime:
    """The local midnight starting `day`, as the naive UTC time the database stores."""
    return datetime.combine(day, time(0), tz).astimezone(timezone.utc).replace(tzinfo=None)


def _local(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    """A stored naive UTC time as the shop's wall-clock time (naive, as Excel wants it)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc).astimezone(tz).replace(tzinfo=None)


def unnamed(period: Period, tz: ZoneInfo) -> list[str]:
    """The staff with activity in the period whose name the app never learnt: no StaffUser row, or
    one without a name (someone who only shares photos from Slack mobile and posts messages never
    runs a command, and nothing else asks Slack about them). The Slack side looks them up before a
    workbook is written, so it names them rather than showing their Slack ids."""
    events = _Events(_utc(period.start, tz), _utc(period.end + timedelta(days=1), tz), tz)
    staff = StaffUser.alias("staff")
    known = (staff.real_name.is_null(False) & (staff.real_name != "")) | (staff.name.is_null(False) & (staff.name != ""))
    query = (
        MetricEvent.select(MetricEvent.user_id)
        .join(staff, JOIN.LEFT_OUTER, on=(MetricEvent.user_id == staff.slack_user_id))
        .where(events.in_period & events.by_staff & ~(staff.slack_user_id.is_null(False) & known))
        .distinct()
    )
    return sorted(user_id for (user_id,) in query.tuples())


def _names(per_user: dict[str, Counts]) -> dict[str, str]:
    """The name Slack last gave each person with activity; someone who left keeps theirs."""
    wanted = list(per_user)
    names: dict[str, str] = {}
    for chunk in range(0, len(wanted), 500):  # well under every database's limit of parameters
        staff = StaffUser.select(StaffUser.slack_user_id, StaffUser.real_name, StaffUser.name).where(
            StaffUser.slack_user_id.in_(wanted[chunk : chunk + 500])
        )
        for user_id, real_name, name in staff.tuples():
            names[user_id] = real_name or name or user_id
    return names


class _Progress:
    def __init__(self, report: Callable[[float], None] | None, steps: int):
        self.report, self.steps, self.done = report, steps, 0

    def __call__(self) -> None:
        self.done += 1
        if self.report:
            self.report(min(1.0, self.done / self.steps))


# -- the queries -----------------------------------------------------------------------------------


def local_day(column, tz: ZoneInfo, start: datetime, end: datetime) -> Expression:
    """SQL: the shop's local day of `column` (naive UTC), exact across the offset changes in [start, end)."""
    pieces = _offsets(tz, start, end)
    if len(pieces) == 1:
        return _shifted_day(column, pieces[0][1])
    return Case(
        None,
        [(column < until, _shifted_day(column, offset)) for until, offset in pieces[:-1]],
        _shifted_day(column, pieces[-1][1]),
    )


def _shifted_day(column, offset_seconds: int) -> Expression:
    # The offset is a whole number we computed, never outside text: safe to write into the SQL.
    if is_postgres():
        return fn.DATE(column + SQL(f"INTERVAL '{int(offset_seconds)} seconds'"))
    return fn.DATE(column, f"{int(offset_seconds):+d} seconds")


def _offsets(tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """[(until, offset seconds)]: the zone's offset up to each change, the last one up to `end`."""

    def offset(moment: datetime) -> int:
        return int(moment.replace(tzinfo=timezone.utc).astimezone(tz).utcoffset().total_seconds())

    pieces: list[tuple[datetime, int]] = []
    current, moment = offset(start), start
    while moment < end:
        following = min(moment + timedelta(hours=1), end)
        if offset(following) != current and following < end:
            pieces.append((following, current))  # changes on the hour (every zone's rules do)
            current = offset(following)
        moment = following
    pieces.append((end, current))
    return pieces


def _minutes_between(earlier, later) -> Expression:
    if is_postgres():
        return fn.DATE_PART("epoch", later - earlier) / 60.0
    return (fn.julianday(later) - fn.julianday(earlier)) * 1440.0


GROUPINGS = ("user_id", "ro_id", "day", "all")  # the medians of first responses: per person, RO, day, and all


def _key(grouping: str, text: str | None) -> object:
    """A median's key back from the text the union carried it as."""
    if grouping == "ro_id":
        return int(text)
    if grouping == "day":
        return _as_date(text)
    return text


# Positional GROUP BY: PostgreSQL would not see a CASE with bound parameters as the selected one.
_BY_FIRST = SQL("1")


class _Events:
    """The period's MetricEvent rows, [start, end) in naive UTC, and the GROUP BYs over them."""

    def __init__(self, start: datetime, end: datetime, tz: ZoneInfo):
        self.start, self.end, self.tz = start, end, tz
        event = MetricEvent
        self.in_period = (event.at >= start) & (event.at < end)
        # A staff member's doing (the customer pseudo-user's messages are the customer's).
        self.by_staff = event.kind.in_(STAFF_KINDS) & event.user_id.is_null(False) & (event.user_id != CUSTOMER)

    def day(self, column) -> Expression:
        return local_day(column, self.tz, self.start, self.end)

    def counted(self, key) -> Iterable[tuple]:
        """(key, pictures, videos, messages, texts, files sent, views, ROs participated in) per
        key, in one pass: rows of each kind, a send's files (its `amount`), distinct ROs."""
        event = MetricEvent
        columns = [fn.SUM(Case(None, [(event.kind == kind, event.amount if kind == SEND else 1)], 0)) for kind in STAFF_KINDS]
        # A customer opening a page is not the sender taking part again; the rest is.
        ros = fn.COUNT(Case(None, [(event.kind != VIEW, event.ro)]).distinct())
        query = event.select(key, *columns, ros).where(self.in_period & self.by_staff)
        return query.group_by(_BY_FIRST).tuples()

    def per_day(self, period: Period) -> list[tuple]:
        """counted's rows by the shop's local day. PostgreSQL groups by the local-day expression;
        SQLite would sort every event of the period for that GROUP BY (and work out each one's day),
        so there each day of the period is one range of the (kind, at, …) index between its two
        local midnights (in UTC), counted by a scalar subquery: no sort, the same numbers, days
        without events included (zeros)."""
        if is_postgres():
            return list(self.counted(self.day(MetricEvent.at)))
        event, at = MetricEvent, MetricEvent.at
        days = list(period.each_day())
        bounds = [at.db_value(_utc(day, self.tz)) for day in days] + [at.db_value(self.end)]
        numbers = ", ".join(["%d"] * (len(STAFF_KINDS) + 1))
        sums = ", ".join(
            "SUM(CASE WHEN kind = ? THEN {} ELSE 0 END)".format("amount" if kind == SEND else "1") for kind in STAFF_KINDS
        )
        kinds = ", ".join("?" * len(STAFF_KINDS))
        # A scalar subquery gives one value: the day's numbers come as one text, "n,n,…".
        counted = (
            f"SELECT printf('{numbers}', {sums}, COUNT(DISTINCT CASE WHEN kind != ? THEN ro_id END))"
            f' FROM "{event._meta.table_name}" WHERE at >= d.s AND at < d.e AND kind IN ({kinds})'
            " AND user_id IS NOT NULL AND user_id != ?"
        )
        values = ", ".join(["(?, ?, ?)"] * len(days))
        sql = f"WITH d(day, s, e) AS (VALUES {values}) SELECT d.day, ({counted}) FROM d"
        params = [value for n, day in enumerate(days) for value in (day.isoformat(), bounds[n], bounds[n + 1])]
        params += [*STAFF_KINDS, VIEW, *STAFF_KINDS, CUSTOMER]
        return [(day, *text.split(",")) for day, text in database.execute_sql(sql, params).fetchall()]

    def all_ros(self) -> int:
        event = MetricEvent
        query = event.select(fn.COUNT(event.ro.distinct())).where(self.in_period & self.by_staff & (event.kind != VIEW))
        return int(query.scalar() or 0)

    def responses(self):
        """Subquery (ro_id, user_id, day, minutes): one row per reply of the period that answered a
        customer. A reply answers the customer's texts since the RO's previous reply; its time is
        counted from the earliest of them (which may be before the period). In one ordered pass per
        RO: a running count of replies gives each row its "turn", shared by a reply and the texts it
        answers; the turn's earliest text is a windowed MIN."""
        event = MetricEvent
        is_reply = Case(None, [(event.kind == REPLY, 1)], 0)
        turn = fn.SUM(is_reply).over(partition_by=[event.ro], order_by=[event.at, event.id]) - is_reply
        counted = Case(None, [((event.kind == REPLY) & self.in_period & self.by_staff, 1)], 0)
        answering = event.select(event.ro).where((event.kind == REPLY) & self.in_period)
        turns = (
            event.select(
                event.ro.alias("ro_id"),
                event.user_id.alias("user_id"),
                event.at.alias("at"),
                counted.alias("counted"),
                Case(None, [(event.kind == CUSTOMER_TEXT, event.at)]).alias("asked_at"),
                turn.alias("turn"),
            )
            .where(event.kind.in_((REPLY, CUSTOMER_TEXT)) & (event.at < self.end) & event.ro.in_(answering))
            .alias("turns")
        )
        first_ask = fn.MIN(turns.c.asked_at).over(partition_by=[turns.c.ro_id, turns.c.turn])
        paired = turns.select_from(
            turns.c.ro_id, turns.c.user_id, turns.c.at, turns.c.counted, first_ask.alias("first_ask")
        ).alias("paired")
        return paired.select_from(
            paired.c.ro_id,
            paired.c.user_id,
            self.day(paired.c.at).alias("day"),  # of the answers alone, not of every text
            _minutes_between(paired.c.first_ask, paired.c.at).alias("minutes"),
        ).where((paired.c.counted == 1) & paired.c.first_ask.is_null(False))

    def medians(self) -> dict[tuple[str, object], float]:
        """{(grouping, key): median minutes} for the groupings "user_id", "ro_id", "day" and "all"
        (key None). Each database the way bench/metrics.py measured fastest for a busy shop's year:
        PostgreSQL ranks the responses in SQL (window functions); SQLite's windows cost several
        times more there, so it returns one number per answering reply and the medians are taken
        in one pass here. Both give the same numbers (tests/reports run on both)."""
        return self._medians_in_sql() if is_postgres() else self._medians_in_python()

    def _medians_in_python(self) -> dict[tuple[str, object], float]:
        """{(grouping, key): median minutes} for the groupings "user_id", "ro_id", "day" and "all"
        (key None). The database pairs each reply with the earliest text it answers (`responses`,
        one ordered pass per RO); only those minutes, one number per answering reply, come back,
        and their medians are taken here in one pass (statistics.median): a year of a busy shop is
        some tens of thousands of replies, where ranking each of them under four keys in SQL cost
        several times more."""
        found: dict[tuple[str, object], list[float]] = defaultdict(list)
        for ro_id, user_id, day, minutes in self.responses().tuples():
            value = float(minutes)
            found[("user_id", user_id)].append(value)
            found[("ro_id", ro_id)].append(value)
            found[("day", _as_date(day))].append(value)
            found[("all", None)].append(value)
        return {key: round(median(values), 1) for key, values in found.items()}

    def _medians_in_sql(self) -> dict[tuple[str, object], float]:
        """{(grouping, key): median minutes} for the groupings "user_id", "ro_id", "day" and "all"
        (key None), in one statement: the responses are computed once and each is seen under its
        four keys (a cross join with the four groupings). The median is the middle row by
        ROW_NUMBER (the mean of the two middle ones for an even count), so only the medians leave
        the database."""
        responses = self.responses().cte("responses", materialized=True)
        groupings = ValuesList([(name,) for name in GROUPINGS]).cte("groupings", columns=("name",))
        name = groupings.c.name
        key = Case(
            name,
            [
                ("user_id", responses.c.user_id),
                ("ro_id", responses.c.ro_id.cast("TEXT")),
                ("day", responses.c.day.cast("TEXT")),
            ],
        )
        keyed = (
            responses.select_from(name.alias("grouping"), key.alias("k"), responses.c.minutes)
            .join(groupings, JOIN.CROSS)
            .alias("keyed")
        )
        group = [keyed.c.grouping, keyed.c.k]
        ranked = keyed.select_from(
            keyed.c.grouping,
            keyed.c.k,
            keyed.c.minutes,
            fn.ROW_NUMBER().over(partition_by=group, order_by=[keyed.c.minutes]).alias("n"),
            # The same window as the row number's (the whole partition as its frame): one sort for both.
            fn.COUNT(SQL("*"))
            .over(
                partition_by=group,
                order_by=[keyed.c.minutes],
                start=Window.preceding(),
                end=Window.following(),
                frame_type=Window.ROWS,
            )
            .alias("size"),
        ).alias("ranked")
        middle = (ranked.c.n == (ranked.c.size + 1) / 2) | (ranked.c.n == (ranked.c.size + 2) / 2)
        query = (
            ranked.select_from(ranked.c.grouping, ranked.c.k, fn.AVG(ranked.c.minutes))
            .where(middle)
            .group_by(ranked.c.grouping, ranked.c.k)
            .with_cte(responses, groupings)
        )
        found = {}
        for grouping, text, minutes in query.tuples():
            if minutes is not None:
                found[(grouping, _key(grouping, text))] = round(float(minutes), 1)
        return found

    def repair_orders(self) -> list[tuple[int, RoLine, bool]]:
        """(RO id, line, whether staff took part) for the ROs with any event in the period (a
        customer's text too), with their counts (the response time is the medians' to fill). Staff
        took part in an RO when they did anything there but a view: all_ros is how many did."""
        event = MetricEvent
        # Where the kind is one of STAFF_KINDS already, by_staff is only this (NULL is not staff either).
        staff = event.user_id != CUSTOMER

        def of(kind: str, value=1):
            return fn.SUM(Case(None, [((event.kind == kind) & staff, value)], 0))

        took_part = fn.MAX(Case(None, [((event.kind != VIEW) & (event.kind != CUSTOMER_TEXT) & staff, 1)], 0))
        # One range of the (kind, at, …) index: the kinds counted here, then whose they are.
        kinds = event.kind.in_((*STAFF_KINDS, CUSTOMER_TEXT))
        mine = (event.kind == CUSTOMER_TEXT) | (event.user_id.is_null(False) & staff)
        per_ro = (
            event.select(
                event.ro.alias("ro_id"),
                of(PICTURE).alias("pictures"),
                of(VIDEO).alias("videos"),
                of(MESSAGE).alias("messages"),
                of(SEND, event.amount).alias("files_sent"),
                of(VIEW).alias("views"),
                took_part.alias("took_part"),
            )
            .where(kinds & self.in_period & event.ro.is_null(False) & mine)
            .group_by(event.ro)
            .alias("per_ro")
        )
        owner = StaffUser.alias("owner")
        ro = RepairOrder
        query = (
            ro.select(
                ro.id,
                ro.ro_number,
                ro.customer_first_name,
                ro.customer_last_name,
                ro.advisor_email,
                ro.status,
                ro.created_at,
                ro.closed_at,
                ro.status_changed_at,
                ro.channel_id,
                owner.real_name,
                owner.name,
                per_ro.c.pictures,
                per_ro.c.videos,
                per_ro.c.messages,
                per_ro.c.files_sent,
                per_ro.c.views,
                per_ro.c.took_part,
            )
            .join(per_ro, on=(ro.id == per_ro.c.ro_id))
            .join_from(ro, owner, JOIN.LEFT_OUTER, on=(ro.owner_user_id == owner.slack_user_id))
            # RO numbers are digits in most DMS: shorter first reads as numeric order.
            .order_by(fn.LENGTH(ro.ro_number), ro.ro_number, ro.id)
        )
        lines = []
        for row in query.tuples().iterator():
            ro_id, number, first, last, email, status, created, closed, changed, channel, real_name, name, *counts, took_part = (
                row
            )
            completed = (closed or changed) if status == COMPLETED else None
            line = RoLine(
                number,
                " ".join(part for part in (first, last) if part),
                real_name or name or email or "",
                status,
                _local(created, self.tz),
                _local(completed, self.tz),
                *(int(count or 0) for count in counts),
                channel_id=channel,
            )
            lines.append((ro_id, line, bool(took_part)))
        return lines
