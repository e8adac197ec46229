"""Customer-facing words, in the customer's language (fr/en): SMS body, email, dates, "what was sent".

Everything here reads the i18n catalogs; nothing is hard-coded English.
"""

from __future__ import annotations

from core.i18n import language_of, t
from storage.models import RepairOrder
from storage.values import DOCUMENT, PICTURE, VIDEO


def what_phrase(counts: dict[str, int], lang: str) -> str:
    """ "photos", "videos", "photos and videos" or "files", for the sentence the customer reads."""
    pictures, videos, documents = counts.get(PICTURE, 0), counts.get(VIDEO, 0), counts.get(DOCUMENT, 0)
    if documents or not (pictures or videos):
        key = "customer.what.files"
    elif pictures and videos:
        key = "customer.what.media"
    else:
        key = "customer.what.photos" if pictures else "customer.what.videos"
    return t(key, lang)


def vehicle_phrase(ro: RepairOrder, lang: str) -> str:
    return ro.vehicle or t("customer.vehicle_fallback", lang)


def sms_body(ro: RepairOrder, shop: str, url: str, counts: dict[str, int]) -> str:
    lang = ro.language
    return t(
        "customer.sms",
        lang,
        shop=shop,
        what=what_phrase(counts, lang),
        vehicle=vehicle_phrase(ro, lang),
        number=ro.ro_number,
        url=url,
    )


def email_parts(
    ro: RepairOrder, shop: str, phone: str | None, url: str, counts: dict[str, int], expires: str
) -> tuple[str, str, dict]:
    """(subject, plain text, values for the HTML template)."""
    lang = ro.language
    values = dict(
        shop=shop,
        what=what_phrase(counts, lang),
        vehicle=vehicle_phrase(ro, lang),
        number=ro.ro_number,
        url=url,
        date=expires,
        phone=phone or "",
        name=ro.customer_first_name or ro.customer_name,
    )
    parts = {
        "greeting": t("customer.email.greeting", lang, **values)
        if values["name"]
        else t("customer.email.greeting_anonymous", lang),
        "body": t("customer.email.body", lang, **values),
        "expires_line": t("customer.email.expires", lang, **values),
        "contact_line": t("customer.page.call", lang, **values) if phone else t("customer.page.contact", lang, **values),
    }
    subject = t("customer.email.subject", lang, **values)
    text = "\n".join([parts["greeting"], "", parts["body"], url, "", parts["expires_line"], parts["contact_line"], "", shop])
    return subject, text, {**values, **parts, "lang": language_of(lang)}


def _contacts(phone: str | None) -> dict[str, str]:
    if phone:
        return {"contact_fr": f"appelez le {phone}", "contact_en": f"call {phone}"}
    return {"contact_fr": "répondez à ce texto", "contact_en": "reply to this text"}


def help_text(shop: str, phone: str | None) -> str:
    """The answer to HELP / AIDE: bilingual, with the shop's name and phone (we do not know who asks)."""
    return t("customer.help", "fr", shop=shop, **_contacts(phone))


def consent_confirmation(change: str, shop: str) -> str:
    """The answer to ARRET / DEBUT (Twilio answers STOP / START itself): bilingual."""
    return t("customer.opt_out_confirm" if change == "opted_out" else "customer.opt_in_confirm", "fr", shop=shop)
