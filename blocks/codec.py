"""The one codec for state carried through Slack: view `private_metadata`, button values, block ids.

Each surface has a small typed record; all are written one way, compact JSON with a version and
a kind (`{"v":1,"k":"files","ro":12,"p":0,"s":[3,4]}`), and read back with `decode(text, Kind)`,
which checks the version, the kind and every field's type and range. Anything else (an old
format, a hand-made payload, a value cut by a proxy) raises BadState: a refusal the listener
layer answers with "this button is out of date", never a 500. Nothing here is trusted for
authorisation: the server checks permissions on every action whatever the state says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from core.refusals import Refusal
from storage.search_index import MAX_CHARS
from storage.values import STATUSES

VERSION = 1
MAX_ID = 10**18  # ids beyond a BIGINT are not ours
_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
R = TypeVar("R", bound="Record")


class BadState(Refusal):
    """State from Slack that we did not write (or no longer read)."""

    def __init__(self, why: str = ""):
        super().__init__("error.stale_state")
        self.why = why


def _id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_ID:
        raise ValueError("not an id")
    return value


def _page(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 100_000:
        raise ValueError("not a page")
    return value


def _user(value: Any) -> str:
    if not isinstance(value, str) or not _USER.match(value):
        raise ValueError("not a user id")
    return value


class Record:
    kind: ClassVar[str]

    def fields(self) -> dict:  # the record's own keys, short
        raise NotImplementedError

    @classmethod
    def read(cls: type[R], data: dict) -> R:
        raise NotImplementedError

    def encode(self) -> str:
        return json.dumps({"v": VERSION, "k": self.kind, **self.fields()}, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class RoRef(Record):
    """A button about one RO (the card's buttons, Home rows)."""

    kind: ClassVar[str] = "ro"
    ro: int

    def fields(self) -> dict:
        return {"ro": self.ro}

    @classmethod
    def read(cls, data: dict) -> RoRef:
        return cls(_id(data["ro"]))


@dataclass(frozen=True)
class SendRef(Record):
    """A button about one customer send (Revoke link, Retry)."""

    kind: ClassVar[str] = "send"
    send: int

    def fields(self) -> dict:
        return {"send": self.send}

    @classmethod
    def read(cls, data: dict) -> SendRef:
        return cls(_id(data["send"]))


@dataclass(frozen=True)
class SmsRef(Record):
    """A button about one text with a customer (Retry a reply, Attach or Dismiss an unmatched text)."""

    kind: ClassVar[str] = "sms"
    sms: int

    def fields(self) -> dict:
        return {"sms": self.sms}

    @classmethod
    def read(cls, data: dict) -> SmsRef:
        return cls(_id(data["sms"]))


@dataclass(frozen=True)
class PageRef(Record):
    """A Previous / Next button: the page it goes to."""

    kind: ClassVar[str] = "page"
    page: int

    def fields(self) -> dict:
        return {"p": self.page}

    @classmethod
    def read(cls, data: dict) -> PageRef:
        return cls(_page(data["p"]))


@dataclass(frozen=True)
class FilesState(Record):
    """The Files modal: its RO, the page shown, the files ticked so far (on every page)."""

    kind: ClassVar[str] = "files"
    ro: int
    page: int = 0
    selected: frozenset[int] = field(default_factory=frozenset)
    overflow: bool = False  # more ticks than private_metadata holds: a send would be refused anyway
    merge_submit: bool = False  # the modal's submit button merges (for someone who may not send)

    def fields(self) -> dict:
        data: dict = {"ro": self.ro, "p": self.page, "s": sorted(self.selected)}
        if self.overflow:
            data["x"] = 1
        if self.merge_submit:
            data["m"] = 1
        return data

    def encode(self) -> str:
        state = self
        while True:
            text = Record.encode(state)
            if len(text) <= 3000:
                return text
            # Whole ids only, the highest first: a cut id would name another file.
            state = replace(state, selected=frozenset(sorted(state.selected)[:-1]), overflow=True)

    @classmethod
    def read(cls, data: dict) -> FilesState:
        ticked = data.get("s", [])
        if not isinstance(ticked, list) or len(ticked) > 1000:
            raise ValueError("bad selection")
        return cls(
            _id(data["ro"]), _page(data.get("p", 0)), frozenset(_id(v) for v in ticked), bool(data.get("x")), bool(data.get("m"))
        )


@dataclass(frozen=True)
class HomeState(Record):
    """The Home tab: which list, status filter, search text and page."""

    kind: ClassVar[str] = "home"
    tab: str = "mine"  # mine | all
    status: str | None = None
    query: str = ""
    page: int = 0
    unmatched_page: int = 0  # admins: the page of unmatched texts

    def fields(self) -> dict:
        return {"t": self.tab, "st": self.status, "q": self.query, "p": self.page, "u": self.unmatched_page}

    @classmethod
    def read(cls, data: dict) -> HomeState:
        tab, status, query = data.get("t", "mine"), data.get("st"), data.get("q", "")
        if tab not in ("mine", "all") or (status is not None and status not in STATUSES):
            raise ValueError("bad list")
        if not isinstance(query, str) or len(query) > MAX_CHARS:
            raise ValueError("bad query")
        return cls(tab, status, query, _page(data.get("p", 0)), _page(data.get("u", 0)))


@dataclass(frozen=True)
class AdminState(Record):
    """The `/ro admin` modal: its page and revision (each redraw is a new revision)."""

    kind: ClassVar[str] = "admin"
    page: int = 0
    revision: int = 0

    def fields(self) -> dict:
        return {"p": self.page, "r": self.revision}

    @classmethod
    def read(cls, data: dict) -> AdminState:
        return cls(_page(data.get("p", 0)), _page(data.get("r", 0)))


@dataclass(frozen=True)
class AdminRow(Record):
    """One person's row of `/ro admin` (its block id): who, the modal's revision, what it showed ticked."""

    kind: ClassVar[str] = "admin_row"
    user: str
    revision: int
    shown: frozenset[str]

    def fields(self) -> dict:
        return {"u": self.user, "r": self.revision, "sh": sorted(self.shown)}

    @classmethod
    def read(cls, data: dict) -> AdminRow:
        shown = data.get("sh", [])
        if not isinstance(shown, list) or not set(shown) <= {"message", "metrics", "admin"}:
            raise ValueError("bad flags")
        return cls(_user(data["u"]), _page(data.get("r", 0)), frozenset(shown))


@dataclass(frozen=True)
class ParticipantsState(Record):
    """The Participants modal: its RO and who it listed when it opened (None: too many to carry)."""

    kind: ClassVar[str] = "participants"
    ro: int
    shown: tuple[str, ...] | None = None

    def fields(self) -> dict:
        return {"ro": self.ro, **({"sh": list(self.shown)} if self.shown is not None else {})}

    def encode(self) -> str:
        text = Record.encode(self)
        # Slack keeps 3000 characters: without the list, Update compares with the participants of the moment.
        return text if len(text) <= 3000 else Record.encode(replace(self, shown=None))

    @classmethod
    def read(cls, data: dict) -> ParticipantsState:
        shown = data.get("sh")
        if shown is not None and (not isinstance(shown, list) or len(shown) > 1000):
            raise ValueError("bad list")
        return cls(_id(data["ro"]), tuple(_user(u) for u in shown) if shown is not None else None)


@dataclass(frozen=True)
class InviteState(Record):
    """The "Request an invitation" form: the RO it was opened from, if any."""

    kind: ClassVar[str] = "invite"
    ro: int | None = None

    def fields(self) -> dict:
        return {"ro": self.ro} if self.ro is not None else {}

    @classmethod
    def read(cls, data: dict) -> InviteState:
        return cls(_id(data["ro"]) if data.get("ro") is not None else None)


RECORDS: dict[str, type[Record]] = {
    r.kind: r for r in (RoRef, SendRef, PageRef, FilesState, HomeState, AdminState, AdminRow, ParticipantsState, InviteState)
}


def decode(text: object, expected: type[R]) -> R:
    """The record of kind `expected` that `text` encodes. Raises BadState for anything else."""
    if not isinstance(text, str) or not text or len(text) > 3000:
        raise BadState("missing or oversized")
    try:
        data = json.loads(text)
    except ValueError:
        raise BadState("not JSON") from None
    if not isinstance(data, dict) or data.get("v") != VERSION or data.get("k") != expected.kind:
        raise BadState("another version or kind")
    try:
        return expected.read(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadState(f"bad field: {exc}") from None


def kind_of(text: object) -> type[Record] | None:
    """The record type `text` claims to be (not validated), or None when it is not ours."""
    if not isinstance(text, str) or not text.startswith('{"v":'):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return RECORDS.get(data.get("k")) if isinstance(data, dict) else None
