"""`/ro admin`: only admins; a paged modal of people with two checkboxes each; every tick re-checked."""

from __future__ import annotations

import pytest

from blocks.codec import AdminRow, PageRef, decode, kind_of
from customers.permission_rules import can_message_customers, is_admin
from storage.models import StaffUser
from tests.support.files import files_env, latest_view
from tests.support.harness import SlackTestClient, start_app, wait_until


@pytest.fixture
def admin_app(fake_slack, sqlite_url, tmp_path):
    running = start_app(files_env(fake_slack, sqlite_url, tmp_path, None, None, ADMIN_SLACK_USER_IDS="UADVISOR"))
    yield running
    running.stop()


@pytest.fixture
def admin_client(admin_app, fake_slack):
    return SlackTestClient(admin_app.url, fake_slack)


def _rows(view: dict) -> dict[str, dict]:
    """Rows by user id (a row's block id is a codec.AdminRow: the person, the revision, what it showed)."""
    return {decode(b["block_id"], AdminRow).user: b for b in view["blocks"] if kind_of(b.get("block_id")) is AdminRow}


def _ticked(row: dict) -> set[str]:
    return {o["value"] for o in row["accessory"].get("initial_options", [])}


def _toggle(client: SlackTestClient, view: dict, actor: str, target: str, values: set[str]):
    row = _rows(view)[target]
    selected = [o for o in row["accessory"]["options"] if o["value"] in values]
    return client.action(
        {
            "type": "block_actions",
            "user": {"id": actor},
            "team": {"id": "T0001"},
            "api_app_id": "A0001",
            "view": view,
            "container": {"type": "view", "view_id": view["id"]},
            "actions": [
                {"type": "checkboxes", "action_id": "admin.toggle", "block_id": row["block_id"], "selected_options": selected}
            ],
        }
    )


def _open_admin(client: SlackTestClient, fake_slack, user: str = "UADVISOR") -> dict:
    # Counted from before the command: a modal opened earlier in the test must not pass for this one.
    opened, updated = len(fake_slack.calls_to("views.open")), len(fake_slack.calls_to("views.update"))
    client.command("admin", user_id=user)
    fake_slack.wait_for("views.open", count=opened + 1)
    fake_slack.wait_for("views.update", count=updated + 1)  # refreshed once users.list was read
    return latest_view(fake_slack)


def test_a_non_admin_is_told_and_gets_no_modal(admin_client, fake_slack):
    admin_client.command("admin", user_id="UTECH")
    wait_until(lambda: fake_slack.responses, message="an answer")
    assert fake_slack.responses[-1]["response_type"] == "ephemeral"
    assert "Only admins" in fake_slack.responses[-1]["text"]
    assert not fake_slack.calls_to("views.open")


def test_an_admin_sees_everyone_with_their_three_permissions(admin_client, fake_slack):
    fake_slack.add_user("UPARTS", "nadia", real_name="Nadia Parts", locale="fr-CA")
    fake_slack.add_user("UGONE", "gone", real_name="Gone Person", deleted=True)
    fake_slack.add_user("UOTHERBOT", "otherbot", real_name="Other Bot", is_bot=True)
    view = _open_admin(admin_client, fake_slack)
    rows = _rows(view)
    assert set(rows) == {"UADVISOR", "UTECH", "UPARTS"}
    assert _ticked(rows["UADVISOR"]) == {"message", "metrics", "admin"}
    assert _ticked(rows["UTECH"]) == {"message"}, "the default applies to people no admin has set"
    assert all(len(r["accessory"]["options"]) == 3 for r in rows.values())
    assert view["title"]["text"] == "Permissions" and "Terminé" == view["close"]["text"]


def test_ticks_are_saved_and_enforced(admin_client, admin_app, fake_slack):
    view = _open_admin(admin_client, fake_slack)
    _toggle(admin_client, view, "UADVISOR", "UTECH", set())
    wait_until(lambda: StaffUser.get(StaffUser.slack_user_id == "UTECH").can_message_customers is False, message="saved")
    assert not can_message_customers("UTECH", admin_app.settings)

    _toggle(admin_client, view, "UADVISOR", "UTECH", {"message", "admin"})
    wait_until(lambda: StaffUser.get(StaffUser.slack_user_id == "UTECH").is_admin, message="made admin")
    assert is_admin("UTECH", admin_app.settings) and can_message_customers("UTECH", admin_app.settings)
    before = len(fake_slack.calls_to("views.open"))
    admin_client.command("admin", user_id="UTECH")
    fake_slack.wait_for("views.open", count=before + 1)


def test_a_tick_from_someone_who_is_not_admin_changes_nothing(admin_client, fake_slack):
    view = _open_admin(admin_client, fake_slack)
    updates = len(fake_slack.calls_to("views.update"))
    _toggle(admin_client, view, "UTECH", "UTECH", {"message", "admin"})
    fake_slack.wait_for("views.update", count=updates + 1)
    assert "no longer an admin" in str(latest_view(fake_slack)["blocks"])
    user = StaffUser.get(StaffUser.slack_user_id == "UTECH")
    assert (user.is_admin, user.can_message_customers) == (False, None)


def test_an_admin_cannot_remove_their_own_admin_right(admin_client, fake_slack):
    StaffUser.create(slack_user_id="UTECH", name="luc", is_admin=True)
    view = _open_admin(admin_client, fake_slack, user="UTECH")
    updates = len(fake_slack.calls_to("views.update"))
    _toggle(admin_client, view, "UTECH", "UTECH", {"message"})
    fake_slack.wait_for("views.update", count=updates + 1)
    assert "own admin right" in str(latest_view(fake_slack)["blocks"])
    assert StaffUser.get(StaffUser.slack_user_id == "UTECH").is_admin


def test_admins_from_configuration_stay_admins(admin_client, fake_slack, admin_app):
    StaffUser.create(slack_user_id="UTECH", name="luc", is_admin=True)
    view = _open_admin(admin_client, fake_slack, user="UTECH")
    # Wait for the redraw itself: each config admin's row already names ADMIN_SLACK_USER_IDS.
    view = _tick_and_wait(admin_client, fake_slack, view, "UTECH", "UADVISOR", {"message", "metrics"})
    notice = [b for b in view["blocks"] if b.get("block_id") == "admin_notice"]
    assert "ADMIN_SLACK_USER_IDS" in str(notice)
    # The untick was saved, yet ADMIN_SLACK_USER_IDS wins, and the modal shows it.
    assert StaffUser.get(StaffUser.slack_user_id == "UADVISOR").is_admin is False
    assert is_admin("UADVISOR", admin_app.settings)
    assert _ticked(_rows(latest_view(fake_slack))["UADVISOR"]) == {"message", "metrics", "admin"}

    # The same untick does demote an admin who is not in ADMIN_SLACK_USER_IDS.
    view = _tick_and_wait(admin_client, fake_slack, view, "UADVISOR", "UTECH", {"message", "metrics"})
    assert not is_admin("UTECH", admin_app.settings)
    assert _ticked(_rows(view)["UTECH"]) == {"message"}


def _tick_and_wait(client, fake_slack, view: dict, actor: str, target: str, values: set[str]) -> dict:
    """Tick as `actor` in `view`; the modal as it is drawn again."""
    updates = len(fake_slack.calls_to("views.update"))
    _toggle(client, view, actor, target, values)
    calls = fake_slack.wait_for("views.update", count=updates + 1)
    assert calls[-1].ok, calls[-1].error
    return latest_view(fake_slack)


def test_ticking_admin_alone_keeps_the_persons_own_setting_and_the_modal_shows_what_they_may_do(fake_slack, sqlite_url, tmp_path):
    running = start_app(
        files_env(
            fake_slack, sqlite_url, tmp_path, None, None, ADMIN_SLACK_USER_IDS="UADVISOR", DEFAULT_CAN_MESSAGE_CUSTOMERS="false"
        )
    )
    try:
        client = SlackTestClient(running.url, fake_slack)
        view = _open_admin(client, fake_slack)
        before = _rows(view)["UTECH"]
        assert _ticked(before) == set(), "internal only by default here"

        view = _tick_and_wait(client, fake_slack, view, "UADVISOR", "UTECH", {"admin"})
        row = _rows(view)["UTECH"]
        assert _ticked(row) == {"message", "metrics", "admin"}, "an admin may message customers: the modal says so at once"
        assert row["block_id"] != before["block_id"], "a new block id, so Slack shows the new ticks"
        user = StaffUser.get(StaffUser.slack_user_id == "UTECH")
        assert (user.is_admin, user.can_message_customers) == (True, None), "nobody unticked 'message': nothing written"
        assert can_message_customers("UTECH", running.settings)

        view = _tick_and_wait(client, fake_slack, view, "UADVISOR", "UTECH", {"message", "metrics"})  # Admin unticked
        assert _ticked(_rows(view)["UTECH"]) == set(), "back to the default, shown at once"
        user = StaffUser.get(StaffUser.slack_user_id == "UTECH")
        assert (user.is_admin, user.can_message_customers) == (False, None)
        assert not can_message_customers("UTECH", running.settings)
    finally:
        running.stop()


def test_someone_allowed_to_message_customers_keeps_it_after_being_admin_for_a_while(admin_client, admin_app, fake_slack):
    StaffUser.create(slack_user_id="UTECH", name="luc", can_message_customers=True)
    view = _open_admin(admin_client, fake_slack)
    view = _tick_and_wait(admin_client, fake_slack, view, "UADVISOR", "UTECH", {"message", "admin"})
    view = _tick_and_wait(admin_client, fake_slack, view, "UADVISOR", "UTECH", {"message"})
    user = StaffUser.get(StaffUser.slack_user_id == "UTECH")
    assert (user.is_admin, user.can_message_customers) == (False, True)
    assert can_message_customers("UTECH", admin_app.settings) and _ticked(_rows(view)["UTECH"]) == {"message"}


def test_unticking_message_for_an_admin_is_refused_and_changes_nothing(admin_client, admin_app, fake_slack):
    StaffUser.create(slack_user_id="UTECH", name="luc", is_admin=True)
    view = _open_admin(admin_client, fake_slack)
    row = _rows(view)["UTECH"]
    assert _ticked(row) == {"message", "metrics", "admin"}
    assert row["accessory"]["options"][0]["description"]["text"] == "inclus avec Administrateur"
    view = _tick_and_wait(admin_client, fake_slack, view, "UADVISOR", "UTECH", {"metrics", "admin"})  # 'message' unticked
    assert "écrire aux clients" in str([b for b in view["blocks"] if b.get("block_id") == "admin_notice"])
    assert _ticked(_rows(view)["UTECH"]) == {"message", "metrics", "admin"}, "the box shows what holds"
    user = StaffUser.get(StaffUser.slack_user_id == "UTECH")
    assert (user.is_admin, user.can_message_customers) == (True, None)

    # Demoted later: the default applies again (nothing was silently written).
    view = _tick_and_wait(admin_client, fake_slack, view, "UADVISOR", "UTECH", {"message", "metrics"})
    assert can_message_customers("UTECH", admin_app.settings) and _ticked(_rows(view)["UTECH"]) == {"message"}
    assert StaffUser.get(StaffUser.slack_user_id == "UTECH").can_message_customers is None


def test_an_admin_lets_someone_see_metrics_and_cannot_take_it_from_an_admin(admin_client, admin_app, fake_slack):
    from customers.permission_rules import can_see_metrics

    view = _open_admin(admin_client, fake_slack)
    assert not can_see_metrics("UTECH", admin_app.settings)
    view = _tick_and_wait(admin_client, fake_slack, view, "UADVISOR", "UTECH", {"message", "metrics"})
    assert StaffUser.get(StaffUser.slack_user_id == "UTECH").can_see_metrics
    assert can_see_metrics("UTECH", admin_app.settings) and not is_admin("UTECH", admin_app.settings)
    assert _ticked(_rows(view)["UTECH"]) == {"message", "metrics"}

    StaffUser.create(slack_user_id="UPARTS", name="nadia", is_admin=True)
    view = _open_admin(admin_client, fake_slack)
    view = _tick_and_wait(admin_client, fake_slack, view, "UADVISOR", "UPARTS", {"message", "admin"})  # 'metrics' unticked
    assert "statistiques" in str([b for b in view["blocks"] if b.get("block_id") == "admin_notice"])
    assert _ticked(_rows(view)["UPARTS"]) == {"message", "metrics", "admin"}
    assert StaffUser.get(StaffUser.slack_user_id == "UPARTS").can_see_metrics is False  # nothing was written


def test_many_people_are_paged(admin_client, fake_slack):
    for n in range(45):
        fake_slack.add_user(f"UPERSON{n:03d}", f"p{n}", real_name=f"Person {n:03d}")
    view = _open_admin(admin_client, fake_slack)
    assert len(_rows(view)) == 20 and len(view["blocks"]) <= 100
    updates = len(fake_slack.calls_to("views.update"))
    admin_client.action(
        {
            "type": "block_actions",
            "user": {"id": "UADVISOR"},
            "team": {"id": "T0001"},
            "api_app_id": "A0001",
            "view": view,
            "container": {"type": "view", "view_id": view["id"]},
            "actions": [{"type": "button", "action_id": "admin.next", "block_id": "admin_nav", "value": PageRef(2).encode()}],
        }
    )
    fake_slack.wait_for("views.update", count=updates + 1)
    last = latest_view(fake_slack)
    assert len(_rows(last)) == 47 - 40 and "3" in str(last["blocks"][-2])
    assert not set(_rows(view)) & set(_rows(last))
