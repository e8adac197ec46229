"""A fake Tekmetric API server for tests: real HTTP on 127.0.0.1, seedable, with fault injection.

It speaks the documented shapes: OAuth2 client credentials with HTTP Basic, bearer tokens
(an unknown or expired one gets a 401 with an empty body, like Tekmetric), Spring pages
(``page`` 0-based, ``size`` capped at 100), ``updatedDateStart`` / ``deletedDateStart``
filters written ``YYYY-MM-DDTHH:MM:SSZ`` (anything else is a 400; deleted ROs only ever
answer a ``deletedDate*`` query), ``repairOrderStatusId`` (repeatable), an explicit
``sort`` / ``sortDirection`` (without one, the order is the store's: by id), customers,
vehicles, employees and shops by id.

Lists are computed afresh for every page, as a database would: ``before_page`` lets a test
change the data between two page reads (an RO deleted or updated while a client pages).

The server keeps its own clock (``now``), one second later at every change, and stamps its
``Date`` header with it, so watermarks are deterministic.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

UTC = UTC
MAX_PAGE_SIZE = 100


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class _Fault:
    kind: str  # "rate_limit" | "fail" | "garbage" | "delay"
    remaining: int
    arg: Any = None
    when: Callable[[str, dict[str, str]], bool] | None = None  # only requests it accepts


@dataclass
class FakeTekmetric:
    client_id: str = "fake-client-id"
    client_secret: str = "fake-secret-do-not-print"
    shop_id: int = 7
    shop_name: str = "Garage Test"
    now: datetime = datetime(2026, 11, 30, 15, 0, 0, tzinfo=UTC)
    never_last: bool = False  # a server that forgets to say `last: true`
    # Called with (path, query) before each list page is computed: change data between two pages.
    before_page: Callable[[str, dict[str, str]], None] | None = None

    customers: dict[int, dict] = field(default_factory=dict)
    vehicles: dict[int, dict] = field(default_factory=dict)
    employees: dict[int, dict] = field(default_factory=dict)
    repair_orders: dict[int, dict] = field(default_factory=dict)
    appointments: dict[int, dict] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._ro_numbers = itertools.count(5001)
        self._tokens: set[str] = set()
        self._faults: list[_Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> FakeTekmetric:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a handler sleeping in delay() must not hold shutdown
        # A short poll keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- clock ----------------------------------------------------------------

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=seconds)
            return self.now

    def _tick(self) -> str:
        return stamp(self.advance(1))

    # --- seeding --------------------------------------------------------------

    def add_customer(
        self,
        first_name: str = "Marie",
        last_name: str = "Tremblay",
        *,
        phones: list[dict] | None = None,
        email: str | list[str] | None = None,
        **extra: Any,
    ) -> int:
        """``phones`` as Tekmetric sends them: [{"number": ..., "type": "Mobile", "primary": True}]."""
        return self._add(
            self.customers,
            {
                "firstName": first_name,
                "lastName": last_name,
                "email": email,
                "phone": phones if phones is not None else [],
                "shopId": self.shop_id,
                "customerType": {"id": 1, "code": "PERSON", "name": "Person"},
                **extra,
            },
        )

    def add_vehicle(
        self,
        customer_id: int | None = None,
        year: int | None = 2020,
        make: str | None = "Toyota",
        model: str | None = "Corolla",
        vin: str | None = None,
        **extra: Any,
    ) -> int:
        return self._add(
            self.vehicles, {"customerId": customer_id, "year": year, "make": make, "model": model, "vin": vin, **extra}
        )

    def add_employee(
        self, first_name: str = "Marie", last_name: str = "Roy", email: str | None = "marie.roy@dealer.example", **extra: Any
    ) -> int:
        return self._add(
            self.employees,
            {
                "firstName": first_name,
                "lastName": last_name,
                "email": email,
                "employeeRole": {"id": 2, "code": "2", "name": "Service Advisor"},
                **extra,
            },
        )

    def add_repair_order(
        self,
        customer_id: int | None = None,
        vehicle_id: int | None = None,
        *,
        status_id: int = 2,
        number: int | None = None,
        keytag: str | None = None,
        service_writer_id: int | None = None,
        appointment_start: datetime | str | None = None,
        promised: datetime | str | None = None,
        **extra: Any,
    ) -> int:
        return self._add(
            self.repair_orders,
            {
                "repairOrderNumber": number if number is not None else next(self._ro_numbers),
                "shopId": self.shop_id,
                "repairOrderStatus": _status(status_id),
                "appointmentStartTime": _as_stamp(appointment_start),
                "customerId": customer_id,
                "vehicleId": vehicle_id,
                "technicianId": None,
                "serviceWriterId": service_writer_id,
                "keytag": keytag,
                "customerTimeOut": _as_stamp(promised),
                "completedDate": None,
                "postedDate": None,
                "deletedDate": None,
                **extra,
            },
        )

    def update_repair_order(self, ro_id: int, **fields: Any) -> dict:
        """Change fields (``status_id=5`` sets repairOrderStatus) and bump updatedDate."""
        with self._lock:
            ro = self.repair_orders[ro_id]
            if "status_id" in fields:
                ro["repairOrderStatus"] = _status(fields.pop("status_id"))
            ro.update(fields)
            ro["updatedDate"] = self._tick()
            return ro

    def delete_repair_order(self, ro_id: int) -> None:
        with self._lock:
            when = self._tick()
            self.repair_orders[ro_id].update(repairOrderStatus=_status(7), deletedDate=when, updatedDate=when)

    def add_appointment(
        self,
        customer_id: int | None = None,
        vehicle_id: int | None = None,
        *,
        start: datetime | str | None = None,
        status: str = "NONE",
        pickup: datetime | str | None = None,
        **extra: Any,
    ) -> int:
        """``start`` is written like Tekmetric's examples: UTC without an offset."""
        start = start or self.now + timedelta(days=1)
        return self._add(
            self.appointments,
            {
                "shopId": self.shop_id,
                "customerId": customer_id,
                "vehicleId": vehicle_id,
                "title": "Service",
                "startTime": _naive_utc(start),
                "endTime": _naive_utc(_parse(start) + timedelta(minutes=30)),
                "description": "Oil change",
                "arrived": status == "ARRIVED",
                "appointmentStatus": status,
                "deletedDate": None,
                "pickupTime": _naive_utc(pickup),
                **extra,
            },
        )

    def update_appointment(self, appointment_id: int, **fields: Any) -> dict:
        with self._lock:
            appointment = self.appointments[appointment_id]
            appointment.update(fields)
            appointment["updatedDate"] = self._tick()
            return appointment

    def delete_appointment(self, appointment_id: int) -> None:
        with self._lock:
            when = self._tick()
            self.appointments[appointment_id].update(deletedDate=when, updatedDate=when)

    def _add(self, table: dict[int, dict], fields: dict) -> int:
        with self._lock:
            new_id = fields.pop("id", None) or next(self._ids)
            when = self._tick()
            table[new_id] = {"id": new_id, "createdDate": when, "updatedDate": when, **fields}
            return new_id

    # --- faults ---------------------------------------------------------------

    # Each fault hits the next ``times`` data requests (the token endpoint is spared), or only
    # those for which ``when(path, query)`` is true.

    def rate_limit(self, times: int = 1, retry_after: float | None = 0, when=None) -> None:
        """Answer 429, with ``Retry-After: <retry_after>`` unless it is None."""
        self._faults.append(_Fault("rate_limit", times, retry_after, when))

    def fail(self, times: int = 1, status: int = 500, when=None) -> None:
        self._faults.append(_Fault("fail", times, status, when))

    def garbage(self, times: int = 1, when=None) -> None:
        """Answer an HTML page with status 200, like a proxy or a login page."""
        self._faults.append(_Fault("garbage", times, None, when))

    def delay(self, seconds: float, times: int = 1, when=None) -> None:
        """Sleep before answering normally (the client's time-out fires first)."""
        self._faults.append(_Fault("delay", times, seconds, when))

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _next_fault(self, path: str, query: dict[str, str]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.when is None or fault.when(path, query)):
                    fault.remaining -= 1
                    return fault
            return None

    # --- request log ----------------------------------------------------------

    def calls_to(self, prefix: str, method: str = "GET") -> list[Call]:
        return [c for c in list(self.calls) if c.method == method and c.path.startswith(prefix)]

    # --- request handling (called from the handler) ---------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Any,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.calls.append(Call(method, path, query))
        if method == "POST" and path == "/api/v1/oauth/token":
            return self._token(headers, body)
        if headers.get("Authorization", "").removeprefix("Bearer ") not in self._tokens:
            return 401, {}, b""
        fault = self._next_fault(path, query)
        if fault is not None:
            answer = self._apply(fault)
            if answer is not None:
                return answer
        if method != "GET":
            return 405, {}, b""
        return self._route(path, query)

    def _apply(self, fault: _Fault) -> tuple[int, dict[str, str], bytes] | None:
        if fault.kind == "rate_limit":
            headers = {} if fault.arg is None else {"Retry-After": f"{fault.arg:g}"}
            return 429, headers, b""
        if fault.kind == "fail":
            return fault.arg, _JSON, _json({"type": "ERROR", "message": "Internal error"})
        if fault.kind == "garbage":
            return 200, {"Content-Type": "text/html"}, b"<html><body><h1>Sign in</h1></body></html>"
        time.sleep(fault.arg)  # delay, then answer normally
        return None

    def _token(self, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if headers.get("Authorization", "") != f"Basic {expected}":
            return 401, _JSON, _json({"error": "invalid_client", "error_description": "Bad client credentials"})
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, _JSON, _json({"error": "unsupported_grant_type"})
        token = str(uuid.uuid4())
        with self._lock:
            self._tokens.add(token)
        return 200, _JSON, _json({"access_token": token, "token_type": "bearer", "scope": str(self.shop_id)})

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "v1"] or len(parts) not in (3, 4):
            return 404, _JSON, _json({"type": "ERROR", "message": "Not found"})
        kind = parts[2]
        with self._lock:
            if len(parts) == 4:
                return self._one(kind, parts[3])
            if kind not in ("repair-orders", "appointments"):
                return 404, _JSON, _json({"type": "ERROR", "message": "Not found"})
            if query.get("shop") != str(self.shop_id):
                return 403, _JSON, _json({"type": "ERROR", "message": "Access Denied", "data": None, "details": {}})
            bad = _bad_query(query)
            if bad:
                return 400, _JSON, _json({"type": "ERROR", "message": bad, "data": None, "details": {}})
        if self.before_page is not None:
            self.before_page(path, query)  # outside the lock's first hold: it may seed, update, delete
        with self._lock:
            items = (
                _filter_ros(self.repair_orders, query)
                if kind == "repair-orders"
                else _filter_appointments(self.appointments, query)
            )
            return 200, _JSON, _json(self._page(_sorted(items, query), query))

    def _one(self, kind: str, raw_id: str) -> tuple[int, dict[str, str], bytes]:
        if kind == "shops":
            found = {"id": self.shop_id, "name": self.shop_name} if raw_id == str(self.shop_id) else None
        else:
            table = {
                "customers": self.customers,
                "vehicles": self.vehicles,
                "employees": self.employees,
                "repair-orders": self.repair_orders,
                "appointments": self.appointments,
            }.get(kind, {})
            found = table.get(int(raw_id)) if raw_id.isdigit() else None
        if found is None:
            return 404, _JSON, _json({"type": "ERROR", "message": "Not found"})
        return 200, _JSON, _json(found)

    def _page(self, items: list[dict], query: dict[str, str]) -> dict:
        size = min(int(query.get("size") or 20), MAX_PAGE_SIZE)
        page = int(query.get("page") or 0)
        total_pages = math.ceil(len(items) / size)
        content = items[page * size : (page + 1) * size]
        return {
            "content": content,
            "totalPages": total_pages,
            "totalElements": len(items),
            "last": (page >= total_pages - 1) and not self.never_last,
            "first": page == 0,
            "size": size,
            "number": page,
            "numberOfElements": len(content),
            "empty": not content,
        }


# --- filters --------------------------------------------------------------------


def _filter_ros(table: dict[int, dict], q: dict[str, str]) -> list[dict]:
    items = sorted(table.values(), key=lambda r: r["id"])
    if "deletedDateStart" in q or "deletedDateEnd" in q:
        # Tekmetric: a deleted-date filter answers deleted ROs only.
        items = [
            r
            for r in items
            if r.get("deletedDate") and _in_range(r["deletedDate"], q.get("deletedDateStart"), q.get("deletedDateEnd"))
        ]
    else:
        items = [r for r in items if not r.get("deletedDate")]
    items = [r for r in items if _in_range(r["updatedDate"], q.get("updatedDateStart"), q.get("updatedDateEnd"))]
    for key in ("customerId", "vehicleId"):
        if key in q:
            items = [r for r in items if str(r.get(key)) == q[key]]
    if "repairOrderStatusId" in q:
        wanted = set(q["repairOrderStatusId"].split(","))
        items = [r for r in items if str((r.get("repairOrderStatus") or {}).get("id")) in wanted]
    return items


_DATE_FILTERS = ("updatedDateStart", "updatedDateEnd", "deletedDateStart", "deletedDateEnd")
_DATE_FILTER_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
_SORT_KEYS = ("id", "createdDate", "updatedDate", "deletedDate", "repairOrderNumber", "startTime")


def _bad_query(q: dict[str, str]) -> str | None:
    for key in _DATE_FILTERS:
        if key in q and not _DATE_FILTER_FORMAT.fullmatch(q[key]):
            return f"{key} must be written like 2026-11-30T15:00:00Z"
    if "sort" in q and q["sort"] not in _SORT_KEYS:
        return f"cannot sort by {q['sort']}"
    if q.get("sortDirection", "ASC").upper() not in ("ASC", "DESC"):
        return "sortDirection is ASC or DESC"
    return None


def _sorted(items: list[dict], q: dict[str, str]) -> list[dict]:
    key = q.get("sort")
    if not key:
        return items  # the store's order (by id)

    def value(item: dict) -> tuple:
        raw = item.get(key)
        if raw is None:
            return (1, "", item["id"])  # no value: after every value, whatever the direction
        return (0, _parse(raw) if key.endswith(("Date", "Time")) else raw, item["id"])

    present = sorted(
        (i for i in items if i.get(key) is not None), key=value, reverse=q.get("sortDirection", "ASC").upper() == "DESC"
    )
    return present + [i for i in items if i.get(key) is None]


def _filter_appointments(table: dict[int, dict], q: dict[str, str]) -> list[dict]:
    items = sorted(table.values(), key=lambda a: a["id"])
    if q.get("includeDeleted", "true").lower() == "false":
        items = [a for a in items if not a.get("deletedDate")]
    items = [a for a in items if _in_range(a["updatedDate"], q.get("updatedDateStart"), q.get("updatedDateEnd"))]
    for key in ("customerId", "vehicleId"):
        if key in q:
            items = [a for a in items if str(a.get(key)) == q[key]]
    if "start" in q:
        items = [a for a in items if _parse(a["startTime"]).date() >= date.fromisoformat(q["start"][:10])]
    if "end" in q:
        items = [a for a in items if _parse(a["startTime"]).date() <= date.fromisoformat(q["end"][:10])]
    return items


def _in_range(value: str, start: str | None, end: str | None) -> bool:
    moment = _parse(value)
    return (start is None or moment >= _parse(start)) and (end is None or moment <= _parse(end))


# --- formats --------------------------------------------------------------------

_JSON = {"Content-Type": "application/json"}


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _status(status_id: int) -> dict:
    names = {
        1: ("ESTIMATE", "Estimate"),
        2: ("WORKINPROGRESS", "Work In Progress"),
        3: ("COMPLETE", "Complete"),
        4: ("SAVEDFORLATER", "Saved For Later"),
        5: ("POSTED", "Posted"),
        6: ("ACCOUNTSRECEIVABLE", "Accounts Receivable"),
        7: ("DELETED", "Deleted"),
    }
    code, name = names.get(status_id, ("UNKNOWN", "Unknown"))
    return {"id": status_id, "code": code, "name": name}


def _parse(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stamp(moment: datetime) -> str:
    """Tekmetric's usual form: UTC with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_stamp(value: datetime | str | None) -> str | None:
    return stamp(value) if isinstance(value, datetime) else value


def _naive_utc(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    return _parse(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# --- HTTP -------------------------------------------------------------------------


def _handler_for(fake: FakeTekmetric) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            # A repeated parameter (repairOrderStatusId=2&repairOrderStatusId=3) reads as "2,3".
            query = {k: ",".join(v) if k == "repairOrderStatusId" else v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = fake.handle(method, url.path, query, self.headers, body)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (time-out test)

        def date_time_string(self, timestamp: float | None = None) -> str:
            return formatdate(fake.now.timestamp(), usegmt=True)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
