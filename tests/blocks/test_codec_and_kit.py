"""The one codec (state through Slack) and the one kit (text, limits)."""

from __future__ import annotations

import json

import pytest

from blocks import kit
from blocks.codec import (
    RECORDS,
    AdminRow,
    AdminState,
    BadState,
    FilesState,
    HomeState,
    InviteState,
    PageRef,
    ParticipantsState,
    RoRef,
    SendRef,
    decode,
    kind_of,
)

SAMPLES = [
    RoRef(12),
    SendRef(3),
    PageRef(0),
    FilesState(12, 2, frozenset({5, 9}), False),
    HomeState("all", "completed", "bélanger", 3),
    AdminState(1, 7),
    AdminRow("U0ABC", 2, frozenset({"admin"})),
    ParticipantsState(12, ("U0A", "U0B")),
    ParticipantsState(12),
    InviteState(12),
    InviteState(),
]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_every_record_survives_the_round_trip(record):
    text = record.encode()
    assert decode(text, type(record)) == record and kind_of(text) is type(record)
    assert json.loads(text)["v"] == 1 and len(text) <= 3000


def test_every_record_kind_has_a_sample():
    assert {type(r) for r in SAMPLES} == set(RECORDS.values())


@pytest.mark.parametrize(
    "text,expected",
    [
        (None, RoRef),
        ("", RoRef),
        ("12", RoRef),
        ("ro:12", RoRef),
        ("{not json", RoRef),
        ("[1]", RoRef),
        ('{"v":2,"k":"ro","ro":12}', RoRef),  # another version
        ('{"v":1,"k":"send","send":12}', RoRef),  # another kind where an RO was expected
        ('{"v":1,"k":"ro","ro":"12"}', RoRef),  # a string id
        ('{"v":1,"k":"ro","ro":true}', RoRef),  # a bool is not an id
        ('{"v":1,"k":"ro","ro":-1}', RoRef),
        ('{"v":1,"k":"ro","ro":0}', RoRef),
        ('{"v":1,"k":"ro","ro":1e30}', RoRef),
        ('{"v":1,"k":"ro","ro":' + "9" * 30 + "}", RoRef),  # beyond a BIGINT
        ('{"v":1,"k":"ro"}', RoRef),  # missing field
        ('{"v":1,"k":"page","p":-2}', PageRef),
        ('{"v":1,"k":"page","p":100000}', PageRef),
        ('{"v":1,"k":"files","ro":1,"s":"1,2"}', FilesState),
        ('{"v":1,"k":"files","ro":1,"s":[1,"x"]}', FilesState),
        ('{"v":1,"k":"home","t":"everyone"}', HomeState),
        ('{"v":1,"k":"home","st":"lost"}', HomeState),
        ('{"v":1,"k":"home","q":' + json.dumps("x" * 101) + "}", HomeState),
        ('{"v":1,"k":"admin_row","u":"not-a-user","r":0,"sh":[]}', AdminRow),
        ('{"v":1,"k":"admin_row","u":"U0A","sh":["root"]}', AdminRow),
        ('{"v":1,"k":"participants","ro":1,"sh":["<@U0A>"]}', ParticipantsState),
        ("x" * 3001, RoRef),
    ],
)
def test_values_we_did_not_write_are_refused(text, expected):
    with pytest.raises(BadState) as refused:
        decode(text, expected)
    assert refused.value.key == "error.stale_state"


def test_a_selection_too_large_for_private_metadata_keeps_whole_ids_and_says_so():
    state = FilesState(7, 3, frozenset(range(100000, 100600)))
    text = state.encode()
    decoded = decode(text, FilesState)
    assert len(text) <= 3000 and decoded.overflow and decoded.page == 3
    assert decoded.selected == frozenset(range(100000, 100000 + len(decoded.selected)))


def test_too_many_participants_for_private_metadata_are_left_out():
    many = tuple(f"U{n:010d}" for n in range(300))
    assert decode(ParticipantsState(1, many).encode(), ParticipantsState) == ParticipantsState(1, None)


def test_escape_makes_markup_text():
    assert kit.escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_mentions_and_links_are_written_only_from_ids_and_http_urls():
    assert kit.user("U0ABC") == "<@U0ABC>" and kit.user("<!channel>") == "&lt;!channel&gt;"
    assert kit.channel("C0ABC") == "<#C0ABC>" and kit.channel("general") == "general"
    assert kit.link("javascript:alert(1)", "x") == "x" and kit.link("slack://channel?id=C1", "<y>") == "&lt;y&gt;"
    assert kit.link("https://a.example/p q|r>", "a|b") == "<https://a.example/p%20q%7Cr%3E|a¦b>"


def test_cutting_never_leaves_half_an_escape():
    text = kit.escape("a" * 10 + "&" + "b" * 10)
    assert kit.cut_markup(text, 13) == "a" * 10 + "…"
    assert kit.cut("a & b", 4) == "a &…"


@pytest.mark.parametrize(
    "build",
    [
        lambda: kit.checkboxes("files.pick", [kit.option(str(n), str(n)) for n in range(11)]),
        lambda: kit.checkboxes("files.pick", []),
        lambda: kit.modal("files.modal", "t", [kit.section("x")] * 101, close="c"),
        lambda: kit.modal("files.modal", "t", [], close="c", metadata="x" * 3001),
        lambda: kit.home([kit.section("x")] * 101),
        lambda: kit.message("t", [kit.section("x")] * 51),
        lambda: kit.button("b", "files.open", "x" * 2001),
        lambda: kit.option("o", "x" * 151),
        lambda: kit.fields([("a", "b")] * 11),
    ],
    ids=[
        "11 checkboxes",
        "no checkbox",
        "101 modal blocks",
        "metadata 3001",
        "101 home blocks",
        "51 message blocks",
        "button value 2001",
        "option value 151",
        "11 fields",
    ],
)
def test_slacks_limits_are_enforced_in_one_place(build):
    with pytest.raises(kit.BlockLimit):
        build()


def test_texts_are_cut_to_slacks_lengths():
    assert len(kit.plain("x" * 500, kit.BUTTON_TEXT)["text"]) == 75
    assert len(kit.header("x" * 500)["text"]["text"]) == 150
    assert len(kit.mrkdwn("x" * 5000)["text"]) == 3000
    assert len(kit.modal("files.modal", "A title far longer than twenty-four", [], close="c")["title"]["text"]) == 24


def test_initial_options_are_the_very_option_objects():
    options = [kit.option("A", "a"), kit.option("B", "b")]
    element = kit.checkboxes("files.pick", options, ["b", "z"])
    assert element["initial_options"] == [options[1]]
    assert "initial_options" not in kit.checkboxes("files.pick", options, [])
