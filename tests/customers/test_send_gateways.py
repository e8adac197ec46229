"""Small pieces of the send path with exact expectations: Twilio's signature (Twilio's published
example), link tokens, the SEND_MMS setting and the sender address of emails."""

from __future__ import annotations

import pytest

from core.config import ConfigError, load_settings
from customers import link_tokens as tokens
from customers import mail_gateway as mailer
from customers.twilio_gateway import signature_valid

TWILIO_EXAMPLE = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
]
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def test_twilio_signature_matches_twilios_published_example():
    assert signature_valid("12345", TWILIO_URL, reversed(TWILIO_EXAMPLE), "GvWf1cFY/Q7PnoempGyD5oXAezc=")


@pytest.mark.parametrize(
    "token,url,params,given",
    [
        ("12345", TWILIO_URL, TWILIO_EXAMPLE[:-1], "GvWf1cFY/Q7PnoempGyD5oXAezc="),  # a parameter dropped
        ("12345", TWILIO_URL.replace("foo=1", "foo=2"), TWILIO_EXAMPLE, "GvWf1cFY/Q7PnoempGyD5oXAezc="),  # another URL
        ("54321", TWILIO_URL, TWILIO_EXAMPLE, "GvWf1cFY/Q7PnoempGyD5oXAezc="),  # another account
        ("12345", TWILIO_URL, TWILIO_EXAMPLE, None),
        (None, TWILIO_URL, TWILIO_EXAMPLE, "GvWf1cFY/Q7PnoempGyD5oXAezc="),  # SMS not configured: nothing is trusted
    ],
)
def test_twilio_signature_rejects_anything_else(token, url, params, given):
    assert not signature_valid(token, url, params, given)


def test_link_tokens_round_trip_and_reject_tampering():
    key = b"k" * 32
    token_id = tokens.new_token_id()
    token = tokens.make_token(key, token_id)
    assert len(token) == 43 and token_id not in token
    assert tokens.read_token(key, token) == token_id
    assert tokens.read_token(b"other", token) is None
    for bad in (token[1:], token + "=", "", "../etc", 42):
        assert tokens.read_token(key, bad) is None
    ref = tokens.file_ref(key, token_id, 7)
    assert (
        tokens.is_file_ref(ref)
        and ref != tokens.file_ref(key, token_id, 8)
        and ref != tokens.file_ref(key, tokens.new_token_id(), 7)
    )


def test_no_single_character_change_of_a_token_is_accepted():
    """Every position, the last one included (its two unused bits), and every other character."""
    key = b"k" * 32
    token = tokens.make_token(key, tokens.new_token_id())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    accepted = [
        (i, c)
        for i in range(len(token))
        for c in alphabet
        if c != token[i] and tokens.read_token(key, token[:i] + c + token[i + 1 :]) is not None
    ]
    assert accepted == []


def test_send_mms_setting():
    assert load_settings({}).send_mms is True
    assert load_settings({"SEND_MMS": "off"}).send_mms is False
    with pytest.raises(ConfigError) as error:
        load_settings({"SEND_MMS": "sometimes"})
    assert "SEND_MMS" in str(error.value)


def test_email_sender_address_falls_back_sensibly():
    assert (
        mailer.sender_address(load_settings({"SMTP_URL": "smtp://a@b.c:pw@mail.example", "MAIL_FROM": "svc@shop.example"}))
        == "svc@shop.example"
    )
    assert mailer.sender_address(load_settings({"SMTP_URL": "smtp://svc%40shop.example:pw@mail.example"})) == "svc@shop.example"
    assert (
        mailer.sender_address(load_settings({"SMTP_URL": "smtp://mail.example", "PUBLIC_URL": "https://ro.shop.example"}))
        == "no-reply@ro.shop.example"
    )


@pytest.mark.parametrize(
    "url,ok",
    [
        ("https://ro.shop.example", True),
        ("http://ro.shop.example", False),
        ("http://localhost:3000", False),
        ("https://localhost", False),
        ("https://127.0.0.1:8443", False),
        ("https://garage.local", False),
    ],
)
def test_mms_media_only_from_an_address_twilio_can_fetch(url, ok):
    from customers.send_rules import reachable_by_twilio

    assert reachable_by_twilio(url) is ok


def test_mail_headers_cannot_be_injected(smtp):
    settings = load_settings({"SMTP_URL": smtp.url(), "MAIL_FROM": "svc@shop.example"})
    mailer.send_mail(settings, "jean@example.com", "Photos\r\nBcc: evil@example.com", "body", from_name="Garage\nX-Evil: 1")
    mail = smtp.parsed()
    assert mail["Bcc"] is None and mail["X-Evil"] is None and mail["Subject"] == "Photos Bcc: evil@example.com"
    assert smtp.messages[0]["to"] == ["jean@example.com"]
    with pytest.raises(mailer.MailError):
        mailer.send_mail(settings, "jean@example.com\r\nBcc: evil@example.com", "s", "b")
