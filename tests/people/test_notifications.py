"""Notification settings in Home and the batched DMs the scheduler's flush sends."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from blocks import home_view as views
from blocks import ids
from blocks.codec import HomeState
from people import notification_rules as notifications
from people.home_flow import flush_notifications
from storage.models import Activity, NotifyMark, RepairOrder, StaffUser, utcnow
from tests.support.factories import make_ro
from tests.support.people import dms_to


@pytest.fixture
def people(people_any_db):
    """Digests, claims and marks run on both databases."""
    return people_any_db


def choose(people, user: str, *values: str) -> None:
    """Tick exactly these boxes in the Home tab's notification settings."""
    options = [{"value": v, "text": {"type": "plain_text", "text": v}} for v in values]
    people.action(
        user,
        ids.HOME_NOTIFY,
        view={"id": "VHOME", "type": "home", "private_metadata": HomeState().encode()},
        type="checkboxes",
        selected_options=options,
    )
    people.settle()  # the listener has finished: settings and their start points are saved
    assert notifications.preferences(user) == notifications.Preferences(
        views.NOTIFY_MESSAGES in values, views.NOTIFY_FILES in values
    )


@pytest.fixture
def ro(people, fake_slack):
    fake_slack.add_user("UPARTS", "paul")
    return make_ro(
        fake_slack,
        owner="UADVISOR",
        members=("UTECH", "UPARTS"),
        ro_number="48213",
        customer_first_name="Hélène",
        customer_last_name="Bélanger",
    )


def later(minutes: int):
    return utcnow() + timedelta(minutes=minutes)


def test_settings_are_saved_and_shown_ticked(people, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    assert StaffUser.get_by_id("UADVISOR").notify_messages and not StaffUser.get_by_id("UADVISOR").notify_files
    people.client.event({"type": "app_home_opened", "user": "UADVISOR", "tab": "home"})
    home = people.fake.wait_for("views.publish")[-1].args["view"]
    boxes = next(b for b in home["blocks"] if b.get("block_id") == "home_notify")["elements"][0]
    assert [o["value"] for o in boxes["initial_options"]] == [views.NOTIFY_MESSAGES]
    assert "Nouveau message dans mes bons de travail" in json.dumps(home, ensure_ascii=False)
    choose(people, "UADVISOR")
    assert not StaffUser.get_by_id("UADVISOR").notify_messages


def test_new_messages_are_sent_as_one_dm_never_for_my_own_posts(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    choose(people, "UTECH", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "brakes done", user="UTECH")
    people.say(ro.channel_id, "rotors too", user="UPARTS")
    assert flush_notifications(people.services) == 2
    advisor = dms_to(fake_slack, "UADVISOR")
    assert len(advisor) == 1
    assert (
        advisor[0]["text"]
        == f"🔵 *BT 48213* · Hélène Bélanger : 2 nouveaux messages de <@UTECH>, <@UPARTS> dans <#{ro.channel_id}>"
    )
    tech = dms_to(fake_slack, "UTECH")  # about UPARTS's message only
    assert len(tech) == 1 and "1 new message from <@UPARTS>" in tech[0]["text"]
    assert flush_notifications(people.services) == 0


def test_one_dm_per_ro_per_interval_then_the_rest_as_one_digest(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "first", user="UTECH")
    assert flush_notifications(people.services) == 1
    people.say(ro.channel_id, "second", user="UTECH")
    people.say(ro.channel_id, "third", user="UPARTS")
    assert flush_notifications(people.services) == 0  # within 5 minutes of the last DM: wait
    assert notifications.pending(now=later(4)) == []
    due = notifications.pending(now=later(6))
    assert len(due) == 1 and due[0].messages == 2 and due[0].authors == ("UTECH", "UPARTS")


def test_files_are_announced_only_to_who_wants_files(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_FILES)
    choose(people, "UPARTS", views.NOTIFY_MESSAGES)
    Activity.create(ro=ro, user_id="UTECH", kind="file", ts="1.1")
    people.say(ro.channel_id, "here is the photo", user="UTECH")
    assert flush_notifications(people.services) == 2
    assert "1 nouveau fichier de <@UTECH>" in dms_to(fake_slack, "UADVISOR")[0]["text"]
    assert "1 new message from <@UTECH>" in dms_to(fake_slack, "UPARTS")[0]["text"]


def test_nothing_from_before_turning_notifications_on(people, fake_slack, ro):
    people.say(ro.channel_id, "old news", user="UTECH")
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    assert flush_notifications(people.services) == 0
    people.say(ro.channel_id, "new news", user="UTECH")
    assert flush_notifications(people.services) == 1


def test_nothing_once_i_have_read_it(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "brakes done", user="UTECH")
    people.say(ro.channel_id, "thanks!", user="UADVISOR")  # they were there: nothing to announce
    assert flush_notifications(people.services) == 0


def test_only_my_repair_orders(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    elsewhere = make_ro(fake_slack, members=("UTECH",))
    people.say(elsewhere.channel_id, "not yours", user="UTECH")
    assert flush_notifications(people.services) == 0


def test_slack_down_means_try_again_next_minute(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "brakes done", user="UTECH")
    fake_slack.fail_with("chat.postMessage", "internal_error")
    assert flush_notifications(people.services) == 0 and NotifyMark.select().count() == 0
    assert flush_notifications(people.services) == 1 and len(dms_to(fake_slack, "UADVISOR")) == 1


def test_a_user_slack_will_not_dm_is_not_retried_forever(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "brakes done", user="UTECH")
    fake_slack.fail_with("chat.postMessage", "user_disabled")
    assert flush_notifications(people.services) == 1 and NotifyMark.select().count() == 1
    assert flush_notifications(people.services) == 0


def test_the_interval_is_configurable(fake_slack, sqlite_url, tmp_path):
    from tests.support.harness import SlackTestClient
    from tests.support.people import PeopleApp, start_people_app

    running, probe = start_people_app(fake_slack, sqlite_url, tmp_path, NOTIFY_INTERVAL_MINUTES="15")
    try:
        app = PeopleApp(running, SlackTestClient(running.url, fake_slack), probe, fake_slack)
        fake_slack.add_user("UPARTS", "paul")
        ro = make_ro(fake_slack, owner="UADVISOR", members=("UTECH",))
        choose(app, "UADVISOR", views.NOTIFY_MESSAGES)
        app.say(ro.channel_id, "first", user="UTECH")
        assert flush_notifications(app.services) == 1
        app.say(ro.channel_id, "second", user="UTECH")
        NotifyMark.update(sent_at=utcnow() - timedelta(minutes=10)).execute()  # the last DM went out 10 minutes ago
        assert flush_notifications(app.services) == 0  # 10 < 15: still batching (the default 5 would send)
        NotifyMark.update(sent_at=utcnow() - timedelta(minutes=16)).execute()
        assert flush_notifications(app.services) == 1
        assert [("1 nouveau message" in dm["text"]) for dm in dms_to(fake_slack, "UADVISOR")] == [True, True]
    finally:
        running.stop()


def test_turning_files_on_later_does_not_announce_old_files(people, fake_slack, ro):
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    Activity.create(ro=ro, user_id="UTECH", kind="file", ts="1.1")  # a file while only messages were on
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES, views.NOTIFY_FILES)
    assert notifications.pending() == []
    Activity.create(ro=ro, user_id="UTECH", kind="file", ts="1.2")
    due = notifications.pending()
    assert [(d.files, d.messages) for d in due] == [(1, 0)]
    # Turning messages off and files stays on: files keep their start, nothing is re-announced.
    choose(people, "UADVISOR", views.NOTIFY_FILES)
    assert [(d.files, d.messages) for d in notifications.pending()] == [(1, 0)]


def test_of_two_flushes_that_read_the_same_digest_only_one_may_send_it(people, fake_slack, ro):
    """Two scheduler processes, or a minute that overran: both read the same digest as due; the
    claim (a conditional UPDATE) lets exactly one of them send it."""
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "brakes done", user="UTECH")
    [first], [second] = notifications.pending(), notifications.pending()
    now, interval = utcnow(), timedelta(minutes=5)
    assert notifications.claim(first, now, interval) is True
    assert notifications.claim(second, now, interval) is False
    # The flush that lost the claim sends nothing; the winner's DM is the only one.
    assert flush_notifications(people.services) == 0 and dms_to(fake_slack, "UADVISOR") == []


def test_a_slow_flush_never_moves_a_mark_back(people, fake_slack, ro):
    """A flush that read its digest before a newer one was sent finds the mark moved on: its claim
    fails, so it sends nothing and leaves the mark where it is."""
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "first", user="UTECH")
    [stale] = notifications.pending()  # the slow flush's view
    people.say(ro.channel_id, "second", user="UTECH")
    assert flush_notifications(people.services) == 1  # both messages announced
    newest = NotifyMark.get().last_activity_id
    assert newest > stale.last_activity_id
    NotifyMark.update(sent_at=utcnow() - timedelta(hours=1)).execute()  # whatever the interval
    assert notifications.claim(stale, utcnow(), timedelta(minutes=5)) is False
    assert NotifyMark.get().last_activity_id == newest and len(dms_to(fake_slack, "UADVISOR")) == 1


def test_slack_down_gives_an_announced_ro_back_too(people, fake_slack, ro):
    """A claim given back restores the mark as it was: the next digest covers what was not sent."""
    choose(people, "UADVISOR", views.NOTIFY_MESSAGES)
    people.say(ro.channel_id, "first", user="UTECH")
    assert flush_notifications(people.services) == 1
    before = NotifyMark.get()
    NotifyMark.update(sent_at=utcnow() - timedelta(minutes=6)).execute()
    people.say(ro.channel_id, "second", user="UTECH")
    fake_slack.fail_with("chat.postMessage", "internal_error")
    assert flush_notifications(people.services) == 0
    mark = NotifyMark.get()
    assert mark.last_activity_id == before.last_activity_id and mark.sent_at < utcnow() - timedelta(minutes=5)
    assert flush_notifications(people.services) == 1 and "1 nouveau message" in dms_to(fake_slack, "UADVISOR")[-1]["text"]


def test_the_dm_about_an_ro_without_a_channel_names_it_in_french():
    digest = notifications.Digest(user_id="UADVISOR", ro_id=1, messages=2, files=0, authors=("UTECH",), last_activity_id=9)
    ro = RepairOrder(id=1, ro_number="48213", customer_first_name="Hélène", customer_last_name="Bélanger", channel_id=None)
    assert (
        views.notification_text(digest, ro, "fr-CA")
        == "🔵 *BT 48213* · Hélène Bélanger : 2 nouveaux messages de <@UTECH> dans BT 48213"
    )
    assert views.notification_text(digest, ro, "en-US").endswith("in RO 48213")
