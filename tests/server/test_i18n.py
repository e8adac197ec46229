"""Both catalogs carry the same keys and the same placeholders."""

from __future__ import annotations

import string

from core.i18n import catalog, language_of, t


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_catalogs_have_the_same_keys_and_placeholders():
    en, fr = catalog("en"), catalog("fr")
    assert set(en) == set(fr), set(en) ^ set(fr)
    for key in en:
        assert _fields(en[key]) == _fields(fr[key]), key


def test_language_of_slack_locales():
    assert language_of("fr-CA") == "fr" and language_of("fr-FR") == "fr"
    assert language_of("en-US") == "en" and language_of(None) == "en" and language_of("es-ES") == "en"


def test_t_formats_and_falls_back():
    assert "frob" in t("command.unknown", "fr-CA", sub="frob")
    assert t("no.such.key", "fr-CA") == "no.such.key"
