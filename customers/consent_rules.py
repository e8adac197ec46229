"""Whether a customer accepts texts. One table (SmsOptOut), read by every path that texts them:
Files sends, MMS, conversation replies. Written by the customer's keywords (STOP, ARRET, START…)
and by Twilio's refusal 21610 (a number that opted out with Twilio itself)."""

from __future__ import annotations

from peewee import IntegrityError

from storage.models import SmsOptOut


def is_opted_out(phone: str | None) -> bool:
    return bool(phone) and SmsOptOut.select().where(SmsOptOut.phone == phone).exists()


def record_opt_out(phone: str, source: str = "twilio") -> bool:
    """True when this is news (the number accepted texts until now)."""
    try:
        SmsOptOut.create(phone=phone, source=source[:16])
        return True
    except IntegrityError:
        return False


def record_opt_in(phone: str) -> bool:
    """True when this is news (the number had opted out)."""
    return bool(SmsOptOut.delete().where(SmsOptOut.phone == phone).execute())
