"""What a staff reply in Slack becomes in the customer's text: Slack's markup read as words (no Slack,
no database: the name lookup is passed in), and a signature that does not cost a dearer encoding."""

from __future__ import annotations

import pytest

from customers import sms_rules
from customers.conversation_rules import plain_text, signature_for

NAMES = {"UTECH": "Luc Martin", "UADVISOR": "Marie Roy"}


def plain(text: str) -> str:
    return plain_text(text, NAMES.get)


@pytest.mark.parametrize(
    "slack,customer",
    [
        ("<@UTECH> will call you", "Luc Martin will call you"),
        ("<@UTECH|luc> will call you", "Luc Martin will call you"),
        ("<@U0GONE> will call you", "@U0GONE will call you"),
        ("<@U0GONE|luc> will call", "luc will call"),
        ("<#C0SERVICE|service>", "#service"),
        ("<#C0SERVICE>", "#C0SERVICE"),
        ("<!subteam^S0TECHS|@techs> <!subteam^S0TECHS>", "@techs @S0TECHS"),
        ("<!here> <!channel> <!everyone|@everyone>", "@here @channel @everyone"),
        ("<!date^1392734382^{date_short}|Feb 18, 2014>", "Feb 18, 2014"),
        ("<https://garage.example/rdv|our page>", "our page (https://garage.example/rdv)"),
        ("<https://garage.example/rdv>", "https://garage.example/rdv"),
        ("<https://garage.example|garage.example>", "garage.example"),
        ("<https://garage.example|https://garage.example>", "https://garage.example"),
        ("<mailto:service@garage.example|service@garage.example>", "service@garage.example"),
        ("<mailto:service@garage.example|Write us>", "Write us (service@garage.example)"),
        ("<mailto:service@garage.example>", "service@garage.example"),
        ("<tel:+15145550100|514-555-0100>", "514-555-0100"),
        ("<tel:+15145550100>", "+15145550100"),
        ("Roy &amp; Fils &lt;3 &gt; &amp;lt;", "Roy & Fils <3 > &lt;"),
        ("&lt;@UTECH&gt; typed as text", "<@UTECH> typed as text"),
        ("<https://a.example/?x=1&amp;y=2|A &amp; B>", "A & B (https://a.example/?x=1&y=2)"),
    ],
)
def test_slack_markup_becomes_what_the_customer_can_read(slack, customer):
    assert plain(slack) == customer


def test_a_name_with_markup_characters_is_kept_as_is():
    assert plain_text("<@UTECH> here", {"UTECH": "A &amp; <B>"}.get) == "A &amp; <B> here"


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_default_signature_keeps_a_plain_reply_in_one_gsm7_segment(language):
    body = f"Your car is ready.\n{signature_for('Your car is ready.', language, 'Garage Tremblay')}"
    assert sms_rules.segments(body) == ("GSM-7", 1)


def test_a_shop_name_outside_gsm7_is_folded_when_the_reply_is_gsm7_and_kept_when_it_is_not():
    assert signature_for("Ready at 4", "fr", "Garage Côté") == "- Garage Coté"  # é is GSM-7, ô is not
    assert signature_for("Prêt à 16 h", "fr", "Garage Côté") == "- Garage Côté"
