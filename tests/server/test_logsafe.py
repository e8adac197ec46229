"""Logs never carry a secret or a customer's full phone number."""

from __future__ import annotations

import io
import logging

from core.logsafe import RedactingFilter, redact, register_secret


def test_phone_numbers_in_any_format_are_masked():
    for phone in ("514 555-0142", "+15145550142", "(514) 555-0142", "1-514-555-0142", "514.555.0142"):
        out = redact(f"sending to {phone} now")
        assert "555" not in out and out.endswith("42 now"), out


def test_slack_timestamps_dates_and_ids_are_left_alone():
    text = "message 1700000000.000100 in C0123456789 at 2026-11-29 20:18:55 for RO 48213"
    assert redact(text) == text


def test_tokens_and_registered_secrets_are_masked():
    register_secret("twilio-auth-token-abcdef")
    out = redact("token=xoxb-1234-5678-abcd Authorization: Bearer abcdef123456 secret twilio-auth-token-abcdef")
    assert "1234-5678" not in out and "abcdef123456" not in out and "twilio-auth-token-abcdef" not in out


def test_filter_applies_to_formatted_arguments_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.logsafe")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("customer %s refused", "+1 514 555 0142")
        try:
            raise ValueError("bad phone 5145550142")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "555" not in output
    assert "********42" in output


def test_customer_link_tokens_are_masked_wherever_they_appear():
    out = redact("unhandled error on GET /c/AbCdEf123.sig_xyz/F42 and http://localhost:3000/c/Tok-en_1?x=1")
    assert "AbCdEf123" not in out and "Tok-en_1" not in out
    assert "/c/***/F42" in out and "/c/***?x=1" in out
