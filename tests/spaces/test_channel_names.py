"""Channel names follow Slack's alphabet and length and keep the RO number first."""

from __future__ import annotations

import re

from spaces.channel_names import channel_name

SLACK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")


def test_plain_and_accented_names():
    assert channel_name("48213", "Tremblay") == "ro-48213-tremblay"
    assert channel_name("48214", "Bélanger-Côté") == "ro-48214-belanger-cote"
    assert channel_name("48215", "O'Brien") == "ro-48215-obrien"
    assert channel_name("A5521", "") == "ro-a5521"


def test_suffixes_for_name_taken():
    assert channel_name("48213", "Tremblay", 2) == "ro-48213-tremblay-2"
    assert channel_name("48213", "Tremblay", 13) == "ro-48213-tremblay-13"


def test_truncation_never_loses_the_ro_number_or_the_suffix():
    name = channel_name("48213", "Wolfeschlegelsteinhausenbergerdorff " * 5, 12)
    assert len(name) <= 80 and name.startswith("ro-48213-") and name.endswith("-12")
    assert SLACK_NAME.match(name)
    long_number = channel_name("9" * 100, "Tremblay", 3)
    assert len(long_number) <= 80 and long_number.endswith("-3")


def test_odd_ro_numbers_are_made_slack_safe():
    name = channel_name("RO#48 213/B", "Smith")
    assert SLACK_NAME.match(name) and name.startswith("ro-ro-48-213-b")
