"""`/ro search`, `/ro mine`, `/ro all [status]` end to end, in the user's language."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import search_index as search
from storage.models import utcnow
from tests.support.factories import make_ro
from tests.support.people import answer


@pytest.fixture
def shop(people, fake_slack):
    now = utcnow()
    rows = [
        make_ro(
            fake_slack,
            owner="UADVISOR",
            ro_number="48213",
            customer_first_name="Hélène",
            customer_last_name="Bélanger",
            mobile_phone="+14385550199",
            tag_number="T213",
            status="in_progress",
            last_activity_at=now,
        ),
        make_ro(
            fake_slack,
            members=("UADVISOR",),
            ro_number="48214",
            customer_last_name="Tremblay",
            status="upcoming",
            last_activity_at=now - timedelta(hours=1),
        ),
        make_ro(
            fake_slack,
            ro_number="48215",
            customer_last_name="Gagnon",
            status="completed",
            last_activity_at=now - timedelta(hours=2),
        ),
    ]
    for ro in rows:
        search.index_ro(ro)
    return rows


def lines(reply: dict) -> list[str]:
    return [b["text"]["text"] for b in reply.get("blocks", []) if b["type"] == "section"][1:]


def test_search_by_name_answers_a_compact_list_with_channel_links(people, fake_slack, shop):
    people.client.command("search belanger", user_id="UTECH")
    reply = answer(fake_slack)
    assert reply["response_type"] == "ephemeral" and "Repair orders matching “belanger”" in reply["blocks"][0]["text"]["text"]
    assert len(lines(reply)) == 1
    assert lines(reply)[0] == f"*RO 48213* · Hélène Bélanger · 2021 Honda Civic · In progress · <#{shop[0].channel_id}>"


@pytest.mark.parametrize(
    "text,number",
    [
        ("438 555-0199", "48213"),
        ("0199", "48213"),
        ("48214", "48214"),
        ("t213", "48213"),
        ("TREMB", "48214"),
        ("gagnon 0142", "48215"),
        ("helene 0199", "48213"),
        ("tremblay 48214", "48214"),
    ],
)
def test_search_by_phone_ro_and_tag(people, fake_slack, shop, text, number):
    people.client.command(f"search {text}", user_id="UTECH")
    assert [f"*RO {number}*" in line for line in lines(answer(fake_slack))] == [True]


def test_search_in_french(people, fake_slack, shop):
    people.client.command("search gagnon", user_id="UADVISOR")
    reply = answer(fake_slack)
    assert "Bons de travail pour « gagnon »" in reply["blocks"][0]["text"]["text"] and "Terminé" in lines(reply)[0]
    assert lines(reply)[0].startswith("*BT 48215* · Jean Gagnon")


@pytest.mark.parametrize("text", ["search", "search  ", "search x", "search %", "search '", "search _"])
def test_an_empty_or_one_character_search_is_a_hint(people, fake_slack, shop, text):
    people.client.command(text, user_id="UTECH")
    assert "Type at least 2 letters or digits" in answer(fake_slack)["text"]


@pytest.mark.parametrize("text", ["%%%%", "tr%", "%' OR '1'='1", "x" * 500, "ab" + "_" * 300])
def test_wildcards_quotes_and_long_text_are_searched_as_text(people, fake_slack, shop, text):
    # What LIKE '%…%' or an injected OR would also list: "Petro" contains "tr", "Xabier" contains "ab".
    for number, last in (("48216", "Petro"), ("48217", "Xabier")):
        search.index_ro(make_ro(fake_slack, ro_number=number, customer_last_name=last, customer_first_name="Ann"))
    people.client.command(f"search {text}", user_id="UTECH")
    reply = answer(fake_slack)
    if text == "%%%%":
        assert "Type at least 2 letters" in reply["text"]
    elif text == "tr%":
        assert [("48214" in line) for line in lines(reply)] == [True]
    else:
        assert "No repair order matches" in str(reply["blocks"]) and len(str(reply["blocks"])) < 3000
        assert lines(reply) == [
            f"No repair order matches “{text[:100]}”. Try the last name only, the last 4 digits of the mobile, "
            "or the RO or tag number."
        ]
    people.client.command("search petro", user_id="UTECH")  # the table is intact whatever was typed
    assert [("48216" in line) for line in lines(answer(fake_slack, 2))] == [True]


def test_more_than_a_page_says_how_to_narrow_it(people, fake_slack, shop):
    for n in range(20):
        search.index_ro(make_ro(fake_slack, ro_number=f"5{n:04d}", customer_last_name="Roy"))
    people.client.command("search roy", user_id="UTECH")
    reply = answer(fake_slack)
    assert len(lines(reply)) == 15 and "More than 15 match: add letters or digits" in str(reply["blocks"][-1])


def test_mine_lists_what_i_own_or_take_part_in(people, fake_slack, shop):
    people.client.command("mine", user_id="UADVISOR")
    reply = answer(fake_slack)
    assert "Mes bons de travail" in reply["blocks"][0]["text"]["text"]
    assert ["48213" in lines(reply)[0], "48214" in lines(reply)[1]] == [True, True] and len(lines(reply)) == 2


def test_mine_when_i_have_none(people, fake_slack, shop):
    people.client.command("mine", user_id="UTECH")
    assert "You don't own or take part in any repair order yet" in str(answer(fake_slack)["blocks"])


def test_all_with_a_status_in_either_language(people, fake_slack, shop):
    people.client.command("all", user_id="UTECH")
    assert len(lines(answer(fake_slack, 1))) == 3
    people.client.command("all upcoming", user_id="UTECH")
    reply = answer(fake_slack, 2)
    assert "All repair orders · Upcoming" in reply["blocks"][0]["text"]["text"] and len(lines(reply)) == 1
    people.client.command("all terminé", user_id="UADVISOR")
    assert "48215" in lines(answer(fake_slack, 3))[0]


def test_all_with_an_unknown_status_explains_usage(people, fake_slack, shop):
    people.client.command("all soonish", user_id="UTECH")
    assert "I don't know the status “soonish”. Use `/ro all`" in answer(fake_slack)["text"]


def test_more_than_a_page_of_all_says_how_to_narrow_it(people, fake_slack, shop):
    for n in range(20):
        make_ro(fake_slack, ro_number=f"6{n:04d}")
    people.client.command("all", user_id="UTECH")
    assert "Only the 15 with the latest activity are shown" in str(answer(fake_slack)["blocks"][-1])
