"""`/ro help` end to end: signed request in, answer through Slack's response_url, in the user's language."""

from __future__ import annotations

from tests.support.harness import wait_until


def _answer(fake_slack, count: int = 1) -> dict:
    wait_until(lambda: len(fake_slack.responses) >= count, message="a response_url answer")
    return fake_slack.responses[count - 1]


def test_help_in_english_for_english_locale(slack, fake_slack):
    response = slack.command("help", user_id="UTECH")
    assert response.status_code == 200
    answer = _answer(fake_slack)
    assert answer["response_type"] == "ephemeral"
    assert "/ro search" in answer["text"] and "find a repair order" in answer["text"]
    info = fake_slack.calls_to("users.info")
    assert info and info[0].args["user"] == "UTECH"
    assert str(info[0].args.get("include_locale")).lower() in ("1", "true")


def test_help_in_french_for_french_locale(slack, fake_slack):
    slack.command("", user_id="UADVISOR")  # no text means help
    answer = _answer(fake_slack)
    assert "trouver un bon de travail" in answer["text"]


def test_locale_is_read_once_and_cached(slack, fake_slack):
    slack.command("help", user_id="UADVISOR")
    _answer(fake_slack, 1)
    slack.command("help", user_id="UADVISOR")
    _answer(fake_slack, 2)
    assert len(fake_slack.calls_to("users.info")) == 1


def test_unknown_subcommand_says_so_in_the_users_language(slack, fake_slack):
    slack.command("frobnicate", user_id="UADVISOR")
    assert "Je ne connais pas `/ro frobnicate`" in _answer(fake_slack)["text"]


def test_users_info_failure_falls_back_to_english(slack, fake_slack):
    fake_slack.fail_with("users.info", "fatal_error")  # UADVISOR's locale is French; Slack fails to say so
    slack.command("help", user_id="UADVISOR")
    assert "find a repair order" in _answer(fake_slack)["text"]


def test_help_names_the_metrics_periods_in_the_users_language(slack, fake_slack):
    slack.command("help", user_id="UTECH")
    english = _answer(fake_slack, 1)["text"]
    assert "/ro metrics" in english and "last-week" in english and "last-month" in english
    slack.command("aide", user_id="UADVISOR")
    french = _answer(fake_slack, 2)["text"]
    assert "/ro metrics" in french and "semaine-derniere" in french and "mois-dernier" in french
