"""@mentions in RO channels: mentioning someone who is not in the channel adds them.

`<@U…>` invites the user and records them as a participant; `<!subteam^S…>` does the same for
each member of the user group. An edit counts only for the mentions it adds. Messages from bots
(ours included) and messages outside RO channels are ignored. Whoever cannot be added
(deactivated, a bot, refused by Slack) is named in a note only the author sees; nothing is
recorded for them.
"""
from __future__ import annotations

import re

from slack_bolt import App

from core.services import Services
from handlers.commands import CommandRouter
from handlers.message_events import human_author, on_message
from handlers.participants import SlackWorkspace, tell
from handlers.views.participants import refusal_lines
from people.participants import add_people, expand_groups

USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
GROUP_MENTION = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
# Subtypes that are someone writing in the channel (file_share: a file with a comment).
WRITTEN = {None, "thread_broadcast", "file_share", "me_message"}


def mentions(text: str | None) -> tuple[list[str], list[str]]:
    """(user ids, user group ids) mentioned in Slack message text, in order, without repeats."""
    text = text or ""
    return list(dict.fromkeys(USER_MENTION.findall(text))), list(dict.fromkeys(GROUP_MENTION.findall(text)))


def new_mentions(event: dict) -> tuple[dict, list[str], list[str]] | None:
    """(the message, users, groups) this event newly mentions; None when it is not a written message."""
    subtype = event.get("subtype")
    if subtype == "message_changed":
        message = event.get("message") or {}
        users, groups = mentions(message.get("text"))
        old_users, old_groups = mentions((event.get("previous_message") or {}).get("text"))
        return message, [u for u in users if u not in old_users], [g for g in groups if g not in old_groups]
    if subtype in WRITTEN:
        users, groups = mentions(event.get("text"))
        return event, users, groups
    return None


def register(app: App, services: Services, router: CommandRouter) -> None:
    workspace = SlackWorkspace(services)

    def on_channel_message(event: dict, ro) -> None:
        if ro is None:
            return
        found = new_mentions(event)
        if found is None or not (found[1] or found[2]):
            return
        message, users, groups = found
        bot = services.slack.bot_user_id
        author = human_author(message, bot)
        if author is None:
            return
        members, unreadable = expand_groups(groups, workspace)
        people = [u for u in dict.fromkeys(users + members) if u != bot]
        changes = add_people(ro, people, author, workspace)
        locale = services.directory.locale(author)
        lines = refusal_lines(changes.refused, locale) + refusal_lines(unreadable, locale, group=True)
        if lines:
            tell(services, author, ro.channel_id, "\n".join(lines), message.get("thread_ts"))

    on_message(app, on_channel_message)
