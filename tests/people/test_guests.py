"""Slack guests invited into an RO channel (a body shop, a loaner company) see only the ROs whose
channels they are in: not every customer's name, phone and vehicle through lists and search."""

from __future__ import annotations

import pytest

from blocks import ids
from storage import search_index as search
from tests.people.test_home import open_home, press, rows
from tests.people.test_search_commands import lines
from tests.support.factories import make_ro
from tests.support.people import answer


@pytest.fixture(params=["multi", "single"])
def guest(request, people, fake_slack):
    fake_slack.add_user("UGUEST", "bodyshop", email="carrosserie@example.com", real_name="Carrosserie Nord", guest=request.param)
    return "UGUEST"


@pytest.fixture
def ros(people, fake_slack, guest):
    theirs = make_ro(fake_slack, owner="UADVISOR", members=(guest,), ro_number="48213", customer_last_name="Bélanger")
    others = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",), ro_number="48214", customer_last_name="Tremblay")
    for ro in (theirs, others):
        search.index_ro(ro)
    return theirs, others


def test_a_guest_lists_only_the_ros_whose_channels_they_are_in(people, fake_slack, guest, ros):
    people.client.command("all", user_id=guest)
    assert [line.split(" · ")[0] for line in lines(answer(fake_slack))] == ["*RO 48213*"]


@pytest.mark.parametrize("text", ["tremblay", "48214", "0142"])
def test_a_guest_does_not_find_other_ros_by_search(people, fake_slack, guest, ros, text):
    people.client.command(f"search {text}", user_id=guest)
    found = " ".join(lines(answer(fake_slack)))
    assert f"<#{ros[1].channel_id}>" not in found and "*RO 48214*" not in found and "Tremblay" not in found


def test_a_guests_home_all_tab_holds_only_their_ros(people, guest, ros):
    home = press(people, ids.HOME_ALL, open_home(people, user=guest), user=guest)
    assert [line.split(" · ")[0] for line in rows(home)] == ["*RO 48213*"]


def test_a_full_member_still_sees_every_ro(people, fake_slack, ros):
    people.client.command("all", user_id="UTECH")
    assert sorted(line.split(" · ")[0] for line in lines(answer(fake_slack))) == ["*RO 48213*", "*RO 48214*"]
