"""The one exception base for "no, and here is why" answers to a user.

A flow raises a Refusal (or a subclass naming its feature) with a catalog key and the values the
text needs; the listener layer renders it once per surface (an ephemeral answer for commands and
buttons, `ack(errors=…)` for modals). Nothing was done when a Refusal is raised.
"""

from __future__ import annotations


class Refusal(Exception):
    """`key`: the i18n key of the explanation; `detail`: the values it is formatted with."""

    def __init__(self, key: str, **detail: object):
        self.key = key
        self.detail = detail
        super().__init__(key)

    @property
    def reason(self) -> str:
        """The last part of the key ("send.refused.no_permission" → "no_permission"), for logs and tests."""
        return self.key.rsplit(".", 1)[-1]
