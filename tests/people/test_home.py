"""The Home tab end to end: lists, filters, search box, paging, unread counts and marks."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest

from blocks import home_view as views
from blocks import ids
from blocks.codec import HomeState, PageRef, RoRef, decode
from people.home_flow import flush_notifications
from people.unread_rules import mark_read, record_activity, unread_counts
from storage import search_index as search
from storage.db import database
from storage.models import Activity, Participant, ReadMark, RepairOrder, utcnow
from tests.support.factories import make_ro
from tests.support.harness import wait_until
from tests.support.people import answer, dms_to, open_home


@pytest.fixture
def people(people_any_db):
    """Lists and unread counts run on both databases."""
    return people_any_db


def press(people, action_id: str, home: dict, value: str = "", user: str = "UADVISOR", **fields) -> dict:
    before = len(people.fake.calls_to("views.publish"))
    people.action(
        user, action_id, value, view={"id": "VHOME", "type": "home", "private_metadata": home["private_metadata"]}, **fields
    )
    return people.fake.wait_for("views.publish", count=before + 1)[-1].args["view"]


def rows(home: dict) -> list[str]:
    return [b["text"]["text"] for b in home["blocks"] if b.get("block_id", "").startswith("ro_") and b["type"] == "section"]


def state(home: dict) -> HomeState:
    return decode(home["private_metadata"], HomeState)


@pytest.fixture
def shop(people, fake_slack):
    now = utcnow()
    mine = make_ro(
        fake_slack,
        owner="UADVISOR",
        ro_number="48213",
        customer_first_name="Hélène",
        customer_last_name="Bélanger",
        status="in_progress",
        last_activity_at=now - timedelta(hours=1),
    )
    taking_part = make_ro(
        fake_slack,
        members=("UADVISOR",),
        ro_number="48214",
        customer_last_name="Tremblay",
        status="upcoming",
        last_activity_at=now - timedelta(hours=2),
    )
    other = make_ro(
        fake_slack,
        members=("UTECH",),
        ro_number="48215",
        customer_last_name="Gagnon",
        status="completed",
        last_activity_at=now - timedelta(hours=3),
    )
    for ro in (mine, taking_part, other):
        search.index_ro(ro)
    return {"mine": mine, "taking_part": taking_part, "other": other}


def test_opening_home_shows_my_repair_orders_newest_activity_first(people, shop):
    home = open_home(people)
    assert home["type"] == "home" and state(home).tab == "mine"
    lines = rows(home)
    assert len(lines) == 2 and lines[0].startswith("*BT 48213* ·") and lines[1].startswith("*BT 48214* ·")  # French: BT
    first = lines[0]
    assert "Hélène Bélanger" in first and "2021 Honda Civic" in first and "En cours" in first
    assert f"<#{shop['mine'].channel_id}>" in first
    button = home["blocks"][[b.get("block_id") for b in home["blocks"]].index(f"ro_{shop['mine'].id}")]["accessory"]
    assert (
        button["url"] == f"https://slack.com/app_redirect?channel={shop['mine'].channel_id}"
        and button["action_id"] == ids.HOME_OPEN
    )
    assert "Mes bons de travail" in json.dumps(home, ensure_ascii=False)


def test_all_repair_orders_and_the_status_filter(people, shop):
    home = press(people, ids.HOME_ALL, open_home(people))
    assert len(rows(home)) == 3 and state(home).tab == "all"
    home = press(people, ids.HOME_STATUS, home, selected_option={"value": "completed"})
    assert [("48215" in r) for r in rows(home)] == [True] and state(home).status == "completed"
    home = press(people, ids.HOME_STATUS, home, selected_option={"value": views.ANY_STATUS})
    assert len(rows(home)) == 3 and state(home).status is None
    home = press(people, ids.HOME_MINE, home)
    assert len(rows(home)) == 2


def test_the_search_box_searches_within_the_list(people, shop):
    home = press(people, ids.HOME_ALL, open_home(people))
    home = press(people, ids.HOME_SEARCH, home, value="GAGNON")
    assert len(rows(home)) == 1 and "48215" in rows(home)[0] and state(home).query == "GAGNON"
    search_block = next(b for b in home["blocks"] if b["type"] == "input")
    assert search_block["element"]["initial_value"] == "GAGNON" and search_block["dispatch_action"] is True
    home = press(people, ids.HOME_MINE, home)
    assert rows(home) == [] and "Aucun bon de travail ne correspond" in json.dumps(home, ensure_ascii=False)
    home = press(people, ids.HOME_CLEAR, home)
    assert len(rows(home)) == 2 and state(home).query == ""


@pytest.mark.parametrize("text", ["b", "%", "é", " _ "])
def test_a_one_character_search_shows_the_hint(people, shop, text):
    home = press(people, ids.HOME_SEARCH, open_home(people), value=text)
    assert rows(home) == [] and "au moins 2 lettres ou chiffres" in json.dumps(home, ensure_ascii=False)


def test_an_empty_search_box_clears_the_search(people, shop):
    home = press(people, ids.HOME_SEARCH, open_home(people), value="gagnon")
    home = press(people, ids.HOME_SEARCH, home, value="   ")
    assert state(home).query == "" and len(rows(home)) == 2


def test_a_500_character_search_with_wildcards_is_text(people, shop):
    home = press(people, ids.HOME_ALL, open_home(people))
    home = press(people, ids.HOME_SEARCH, home, value="%ag" + "%" * 497)  # LIKE: "contains ag", i.e. Gagnon
    assert rows(home) == [] and len(state(home).query) == 100
    home = press(people, ids.HOME_SEARCH, home, value="gag" + "_" * 497)  # LIKE: "gag" and 97 more characters, i.e. nothing
    assert [("48215" in r) for r in rows(home)] == [True] and len(state(home).query) == 100
    home = press(people, ids.HOME_SEARCH, home, value="%' OR 1=1 --" + "_" * 488)  # injected: every RO
    assert rows(home) == [] and len(state(home).query) == 100


def test_paging_stays_within_slacks_block_limit(people, fake_slack):
    now = utcnow()
    for n in range(45):
        make_ro(fake_slack, owner="UADVISOR", ro_number=f"7{n:04d}", last_activity_at=now - timedelta(minutes=n))
        Activity.create(ro=RepairOrder.get(RepairOrder.ro_number == f"7{n:04d}"), user_id="UTECH", kind="message", ts=f"{n}.1")
    home = open_home(people)
    assert len(rows(home)) == views.PAGE_SIZE and len(home["blocks"]) <= 100
    assert "70000" in rows(home)[0]
    home = press(people, ids.HOME_NEXT, home, value=PageRef(1).encode())
    assert len(rows(home)) == views.PAGE_SIZE and "70020" in rows(home)[0] and "21–40" in json.dumps(home, ensure_ascii=False)
    home = press(people, ids.HOME_NEXT, home, value=PageRef(2).encode())
    assert len(rows(home)) == 5 and ids.HOME_NEXT not in json.dumps(home)
    home = press(people, ids.HOME_PREV, home, value=PageRef(1).encode())
    assert "70020" in rows(home)[0]


def test_unread_counts_others_messages_since_my_last_post(people, fake_slack, shop):
    channel = shop["mine"].channel_id
    people.say(channel, "brakes done", user="UTECH")
    people.say(channel, "rotors too", user="UTECH")
    assert "🔵 2 à lire" in rows(open_home(people))[0]
    people.say(channel, "thanks", user="UADVISOR")
    assert "🔵" not in rows(open_home(people))[0]
    people.say(channel, "car is ready", user="UTECH")
    assert "🔵 1 à lire" in rows(open_home(people))[0]


def test_mark_as_read_and_opening_from_home_clear_the_count(people, fake_slack, shop):
    people.say(shop["mine"].channel_id, "brakes done", user="UTECH")
    people.say(shop["taking_part"].channel_id, "tires in", user="UTECH")
    home = open_home(people)
    assert all("🔵 1 à lire" in r for r in rows(home))
    mark_buttons = [b for b in home["blocks"] if b.get("block_id", "").endswith("_read")]
    assert len(mark_buttons) == 2
    home = press(people, ids.HOME_MARK_READ, home, value=RoRef(shop["mine"].id).encode())
    line = {ro: next(r for r in rows(home) if f"BT {shop[ro].ro_number}" in r) for ro in ("mine", "taking_part")}
    assert "🔵" not in line["mine"] and "🔵 1 à lire" in line["taking_part"]
    home = press(people, ids.HOME_OPEN, home, value=RoRef(shop["taking_part"].id).encode())
    assert all("🔵" not in r for r in rows(home))


def test_a_message_moves_its_ro_to_the_top(people, fake_slack, shop):
    people.say(shop["taking_part"].channel_id, "update", user="UTECH")
    assert "48214" in rows(open_home(people))[0]


def test_only_human_messages_in_ro_channels_are_activity(people, fake_slack, shop):
    channel = shop["mine"].channel_id
    people.say(channel, "from another app", user="UOTHER", bot_id="B0OTHER", subtype="bot_message")
    people.say(channel, "joined", user="UTECH", subtype="channel_join")
    people.edit(channel, before="a", after="b", user="UTECH")
    people.say(channel, "photo", user="UTECH", subtype="file_share", files=[{"id": "F1"}])  # the files feature's
    general = fake_slack.add_channel("general", members=(fake_slack.bot_user_id,))
    people.say(general["id"], "lunch?", user="UTECH")
    assert Activity.select().count() == 0
    people.say(channel, "in a thread", user="UTECH", thread_ts="1700000000.000100")
    people.say(channel, "broadcast", user="UTECH", subtype="thread_broadcast", thread_ts="1700000000.000100")
    assert Activity.select().count() == 2


def test_a_retried_message_event_counts_once(people, fake_slack, shop):
    ts = people.say(shop["mine"].channel_id, "once", user="UTECH")
    people.say(shop["mine"].channel_id, "once", user="UTECH", ts=ts)
    assert Activity.select().count() == 1


@pytest.mark.parametrize("value", ["not-a-number", "12", '{"v":1,"k":"ro","ro":-3}', '{"v":1,"k":"send","send":1}'])
def test_a_button_value_we_did_not_write_changes_nothing_and_says_so(people, fake_slack, shop, value):
    home = open_home(people)
    people.action(
        "UADVISOR", ids.HOME_MARK_READ, value, view={"id": "VHOME", "type": "home", "private_metadata": home["private_metadata"]}
    )
    assert "n'est plus à jour" in answer(fake_slack)["text"]  # Marie's Slack is in French
    people.settle()
    assert ReadMark.select().count() == 0 and len(people.fake.calls_to("views.publish")) == 1


def test_a_garbled_view_state_falls_back_to_my_list(people, shop):
    home = open_home(people, view={"id": "VHOME", "type": "home", "private_metadata": "{not json"})
    assert state(home) == HomeState(tab="mine", status=None, query="", page=0)


def test_a_user_with_nothing_sees_how_to_get_added(people, fake_slack, shop):
    fake_slack.add_user("UNEW", "newbie")
    home = open_home(people, user="UNEW")
    assert rows(home) == [] and "Someone can add you with an @mention" in json.dumps(home)


# -- unread, as a domain service ------------------------------------------------------------------


def test_unread_counts_for_a_page_in_one_grouped_query(people, fake_slack, shop, monkeypatch):
    a, b, c = shop["mine"], shop["taking_part"], shop["other"]
    for ro, user, ts in (
        (a, "UTECH", "1.1"),
        (a, "UTECH", "1.2"),
        (a, "UADVISOR", "1.3"),
        (b, "UTECH", "2.1"),
        (c, "UADVISOR", "3.1"),
    ):
        Activity.create(ro=ro, user_id=user, kind="message", ts=ts, at=utcnow() - timedelta(minutes=5))
    here, statements = threading.get_ident(), []
    execute_sql = database.obj.execute_sql

    def counting(sql, *args, **kwargs):
        if threading.get_ident() == here:  # this test's queries, not the app's threads
            statements.append(sql)
        return execute_sql(sql, *args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", counting)
    assert unread_counts("UADVISOR", [a.id, b.id, c.id]) == {a.id: 2, b.id: 1}
    assert len(statements) == 1 and "GROUP BY" in statements[0], statements
    monkeypatch.undo()
    mark_read(a.id, "UADVISOR")
    assert unread_counts("UADVISOR", [a.id, b.id, c.id]) == {b.id: 1}
    mark_read(a.id, "UADVISOR", at=utcnow() - timedelta(hours=1))  # a mark never moves back
    assert unread_counts("UADVISOR", [a.id]) == {}
    assert unread_counts("UADVISOR", []) == {}


def test_record_activity_is_idempotent_and_marks_the_author_read(people, fake_slack, shop):
    ro = shop["other"]
    assert record_activity(ro.id, "UTECH", "message", "9.1") is True
    assert record_activity(ro.id, "UTECH", "message", "9.1") is False
    assert ReadMark.get((ReadMark.ro == ro.id) & (ReadMark.user_id == "UTECH")).last_read_at is not None
    assert RepairOrder.get_by_id(ro.id).last_activity_at > shop["mine"].last_activity_at
    assert Participant.select().where(Participant.user_id == "UTECH").count() == 1  # activity is not membership


def test_a_file_shared_after_my_last_post_is_unread_and_announced(people, fake_slack, shop):
    """Files are dated by when they reached the RO, like messages and read marks, not by when
    Slack first received the upload: a photo taken yesterday and shared now is new."""
    from people import notification_rules as notifications
    from tests.support.files import file_shared_event, jpeg_bytes, slack_file

    ro = shop["taking_part"]
    fake_slack.add_user("UPARTS", "paul")
    Participant.create(ro=ro, user_id="UPARTS")
    notifications.set_preferences("UPARTS", messages=False, files=True)
    people.say(ro.channel_id, "waiting for the photo", user="UADVISOR")  # read up to now
    yesterday = int(time.time()) - 26 * 3600  # older than what notifications look back on, too
    file_id = slack_file(fake_slack, ro.channel_id, "IMG_0301.jpg", jpeg_bytes(), "image/jpeg", user="UTECH", created=yesterday)
    people.client.event(file_shared_event(file_id, ro.channel_id, user="UTECH"))
    wait_until(lambda: Activity.get_or_none((Activity.ro == ro.id) & (Activity.kind == "file")), message="the file recorded")
    line = next(r for r in rows(open_home(people)) if "48214" in r)
    assert "🔵 1 à lire" in line
    assert flush_notifications(people.services) == 1
    dm = dms_to(fake_slack, "UPARTS")
    assert len(dm) == 1 and "1 new file from <@UTECH>" in dm[0]["text"] and f"<#{ro.channel_id}>" in dm[0]["text"]


def test_an_archived_ro_is_still_listed_and_links_its_channel(people, shop):
    archived = shop["other"]
    RepairOrder.update(channel_archived_at=utcnow(), archived_by_app=True).where(RepairOrder.id == archived.id).execute()
    people.fake.channels[archived.channel_id]["is_archived"] = True
    home = press(people, ids.HOME_ALL, open_home(people))
    home = press(people, ids.HOME_STATUS, home, selected_option={"value": "completed"})
    [line] = rows(home)
    assert "48215" in line and f"<#{archived.channel_id}>" in line
    button = home["blocks"][[b.get("block_id") for b in home["blocks"]].index(f"ro_{archived.id}")]["accessory"]
    assert button["url"] == f"https://slack.com/app_redirect?channel={archived.channel_id}"
