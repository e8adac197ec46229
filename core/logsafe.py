"""Logging that never leaks a secret or a customer's phone number.

A filter rewrites every record's final message: Slack tokens, bearer tokens, signing secrets and
anything that looks like a phone number are masked, whatever code produced the log line.
"""

from __future__ import annotations

import logging
import re

import phonenumbers

_TOKEN = re.compile(r"\b(xox[abposr]-|xapp-)[A-Za-z0-9-]+")
_BEARER = re.compile(r"(?i)(bearer\s+|authorization['\"]?\s*[:=]\s*['\"]?(?:basic\s+|bearer\s+)?)[A-Za-z0-9._~+/=-]{6,}")
# A phone: optional +, then 10–15 digits possibly split by spaces, dots, dashes or brackets.
# Slack timestamps ("1700000000.000100") and clock times are not phones: the look-ahead skips them.
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d(?:[\s.\-()]*\d){9,14}(?![\w:]|\.\d)")
# A customer-page path is a working link to a customer's photos: never write its token.
_CUSTOMER_LINK = re.compile(r"(/c/)[^/\s?\"']+")
_secrets: set[str] = set()


def mask_phone(e164_or_raw: object) -> str:
    """Hide all but the last two digits (and the country code of an E.164): "+1********42"."""
    text = "" if e164_or_raw is None else str(e164_or_raw).strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        return "*" * min(len(text), 10)
    prefix = ""
    if text.startswith("+"):
        try:
            country = str(phonenumbers.parse(text, None).country_code)
        except phonenumbers.NumberParseException:
            country = ""
        if country and digits.startswith(country) and len(digits) > len(country) + 2:
            prefix, digits = "+" + country, digits[len(country) :]
        else:
            prefix = "+"
    # Too short to keep anything without giving most of it away.
    keep = 2 if len(digits) > 4 else 0
    return prefix + "*" * (len(digits) - keep) + digits[len(digits) - keep :]


def mask_customer_links(text: str) -> str:
    return _CUSTOMER_LINK.sub(r"\1***", text)


def redact(text: str) -> str:
    text = mask_customer_links(text)
    text = _TOKEN.sub(lambda m: m.group(1) + "***", text)
    text = _BEARER.sub(lambda m: m.group(1) + "***", text)
    for secret in _secrets:
        text = text.replace(secret, "***")
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)


def register_secret(value: str | None) -> None:
    """Values (signing secret, Twilio token…) that must never appear in a log line."""
    if value and len(value) >= 6:
        _secrets.add(value)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # boto3 says at INFO where it found credentials, on every process start: noise, not news.
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
