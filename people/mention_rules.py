"""What a message mentions: `<@U…>` users and `<!subteam^S…>` user groups, and who wrote it.

An edit counts only for the mentions it adds. Messages from bots (ours included) are not anyone
writing; neither are joins, topic changes and the like (only the subtypes in WRITTEN are).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
GROUP_MENTION = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
# Subtypes that are someone writing in the channel (file_share: a file with a comment).
WRITTEN = {None, "thread_broadcast", "file_share", "me_message"}


@dataclass(frozen=True)
class Mentions:
    message: dict
    users: list[str]
    groups: list[str]

    def author(self, bot_user_id: str) -> str | None:
        return human_author(self.message, bot_user_id)

    @property
    def thread_ts(self) -> str | None:
        return self.message.get("thread_ts")


def mentions(text: str | None) -> tuple[list[str], list[str]]:
    """(user ids, user group ids) mentioned in Slack message text, in order, without repeats."""
    text = text or ""
    return list(dict.fromkeys(USER_MENTION.findall(text))), list(dict.fromkeys(GROUP_MENTION.findall(text)))


def new_mentions(event: dict) -> Mentions | None:
    """What this event newly mentions; None when it is not a written message."""
    subtype = event.get("subtype")
    if subtype == "message_changed":
        message = event.get("message") if isinstance(event.get("message"), dict) else {}
        users, groups = mentions(message.get("text"))
        old_users, old_groups = mentions((event.get("previous_message") or {}).get("text"))
        return Mentions(message, [u for u in users if u not in old_users], [g for g in groups if g not in old_groups])
    if subtype in WRITTEN:
        users, groups = mentions(event.get("text"))
        return Mentions(event, users, groups)
    return None


def human_author(message: dict, bot_user_id: str) -> str | None:
    """The user who wrote `message`, or None when a bot (ours or any other) or Slack itself did."""
    if message.get("bot_id") or message.get("subtype") == "bot_message" or message.get("bot_profile"):
        return None
    user = message.get("user")
    return user if isinstance(user, str) and user and user != bot_user_id and user != "USLACKBOT" else None
