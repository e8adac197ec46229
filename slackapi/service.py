"""Thin Slack service layer: one method per thing the product does in Slack.

Every failure comes out as SlackError with a named code; callers decide what each code means
for the user. Network errors that survived the client's retries come out as SlackError too
(code "other"), so a listener never shows a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackapi.errors import SlackError, SlackErrorCode

log = logging.getLogger(__name__)
# conversations.invite takes at most this many user ids per call.
INVITE_BATCH = 1000


class SlackService:
    def __init__(self, client: WebClient):
        self.client = client
        self._bot_user_id: str | None = None

    def call(self, method: str, **kwargs: Any) -> dict:
        try:
            if _wants_json(kwargs):
                response = self.client.api_call(method, json=kwargs)
            else:
                form = {k: ("1" if v else "0") if isinstance(v, bool) else v for k, v in kwargs.items()}
                response = self.client.api_call(method, data=form)
            return response.data if isinstance(response.data, dict) else {}
        except SlackApiError as exc:
            raise SlackError.from_api_error(method, exc) from None
        except (SlackClientError, OSError) as exc:
            raise SlackError(method, "other", {"exception": type(exc).__name__}) from None

    # -- identity --------------------------------------------------------------------------
    def auth_test(self) -> dict:
        return self.call("auth.test")

    @property
    def bot_user_id(self) -> str:
        if self._bot_user_id is None:
            self._bot_user_id = self.auth_test().get("user_id", "")
        return self._bot_user_id

    def user_info(self, user_id: str) -> dict:
        return self.call("users.info", user=user_id, include_locale=True)["user"]

    def lookup_by_email(self, email: str) -> dict | None:
        try:
            return self.call("users.lookupByEmail", email=email)["user"]
        except SlackError as exc:
            if exc.raw_code in ("users_not_found", "user_not_found"):
                return None
            raise

    def iter_users(self) -> Iterator[dict]:
        """Every member of the workspace (users.list, all pages); `/ro admin` lists them."""
        cursor = None
        while True:
            page = self.call("users.list", limit=200, **({"cursor": cursor} if cursor else {}))
            yield from page.get("members", [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def usergroup_members(self, group_id: str) -> list[str]:
        return list(self.call("usergroups.users.list", usergroup=group_id).get("users", []))

    # -- channels --------------------------------------------------------------------------
    def create_channel(self, name: str) -> dict:
        return self.call("conversations.create", name=name, is_private=False)["channel"]

    def channel_info(self, channel_id: str) -> dict:
        return self.call("conversations.info", channel=channel_id)["channel"]

    def iter_member_channels(self, types: str = "public_channel") -> Iterator[dict]:
        """The live (unarchived) channels the bot is a member of (users.conversations, all pages):
        the RO channels, not the whole workspace."""
        cursor = None
        while True:
            page = self.call(
                "users.conversations", types=types, limit=200, exclude_archived=True, **({"cursor": cursor} if cursor else {})
            )
            yield from page.get("channels", [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def rename_channel(self, channel_id: str, name: str) -> dict:
        return self.call("conversations.rename", channel=channel_id, name=name)["channel"]

    def channel_members(self, channel_id: str) -> set[str]:
        members: set[str] = set()
        cursor = None
        while True:
            page = self.call("conversations.members", channel=channel_id, limit=200, **({"cursor": cursor} if cursor else {}))
            members.update(page.get("members", []))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members

    def invite(self, channel_id: str, user_ids: Iterable[str]) -> None:
        users = ",".join(user_ids)
        if users:
            self.call("conversations.invite", channel=channel_id, users=users)

    def invite_many(self, channel_id: str, user_ids: list[str]) -> list[dict]:
        """Invite up to INVITE_BATCH users in one call, the valid ones even when some are not
        (`force`); [{"user", "error"}] for the ones Slack did not add (already in, deactivated…).
        A SlackError only when the call itself failed (no per-user answer)."""
        if len(user_ids) > INVITE_BATCH:
            raise ValueError(f"conversations.invite takes at most {INVITE_BATCH} users")
        try:
            response = self.call("conversations.invite", channel=channel_id, users=",".join(user_ids), force=True)
        except SlackError as exc:
            errors = exc.detail.get("errors")
            if isinstance(errors, list) and errors:
                return [e for e in errors if isinstance(e, dict)]  # none of them could be added
            raise
        return [e for e in response.get("errors") or [] if isinstance(e, dict)]

    def kick(self, channel_id: str, user_id: str) -> None:
        self.call("conversations.kick", channel=channel_id, user=user_id)

    def set_topic(self, channel_id: str, topic: str) -> None:
        self.call("conversations.setTopic", channel=channel_id, topic=topic[:250])

    # -- messages --------------------------------------------------------------------------
    def post(self, channel: str, text: str, blocks: list | None = None, thread_ts: str | None = None, **extra: Any) -> dict:
        args: dict[str, Any] = {"channel": channel, "text": text, **extra}
        if blocks is not None:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
        return self.call("chat.postMessage", **args)

    def update(self, channel: str, ts: str, text: str, blocks: list | None = None) -> dict:
        args: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            args["blocks"] = blocks
        return self.call("chat.update", **args)

    def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: list | None = None, thread_ts: str | None = None
    ) -> None:
        args: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
        self.call("chat.postEphemeral", **args)

    def tell(self, user_id: str, channel_id: str | None, text: str, thread_ts: str | None = None) -> bool:
        """A note only `user_id` sees: ephemeral in the channel, else (not a member, no channel) a DM.
        False when neither reached them (logged, never raised: telling is best effort)."""
        if channel_id:
            try:
                self.post_ephemeral(channel_id, user_id, text, thread_ts=thread_ts)
                return True
            except SlackError as exc:
                log.info("ephemeral note failed (%s); sending it as a DM", exc.raw_code)
        try:
            self.post(user_id, text)
            return True
        except SlackError as exc:
            log.warning("could not tell %s: %s", user_id, exc.raw_code)
            return False

    def pin(self, channel: str, ts: str) -> None:
        try:
            self.call("pins.add", channel=channel, timestamp=ts)
        except SlackError as exc:
            if exc.code is not SlackErrorCode.ALREADY_PINNED:
                raise

    def permalink(self, channel: str, ts: str) -> str | None:
        try:
            return self.call("chat.getPermalink", channel=channel, message_ts=ts).get("permalink")
        except SlackError:
            return None

    # -- views -----------------------------------------------------------------------------
    def open_view(self, trigger_id: str, view: dict) -> dict:
        return self.call("views.open", trigger_id=trigger_id, view=view)["view"]

    def push_view(self, trigger_id: str, view: dict) -> dict:
        return self.call("views.push", trigger_id=trigger_id, view=view)["view"]

    def update_view(self, view_id: str, view: dict) -> dict:
        return self.call("views.update", view_id=view_id, view=view)["view"]

    def publish_home(self, user_id: str, view: dict) -> None:
        self.call("views.publish", user_id=user_id, view=view)

    def history(self, channel: str, limit: int = 50) -> list[dict]:
        return list(self.call("conversations.history", channel=channel, limit=limit).get("messages", []))

    def replies(self, channel: str, ts: str, limit: int = 200) -> list[dict]:
        return list(self.call("conversations.replies", channel=channel, ts=ts, limit=limit).get("messages", []))

    def open_dm(self, user_id: str) -> str:
        """The id of our DM with `user_id` (a file upload needs it; chat.postMessage takes the user id)."""
        return self.call("conversations.open", users=user_id)["channel"]["id"]

    # -- files -----------------------------------------------------------------------------
    def recent_files(self, channel: str, count: int = 50) -> list[dict]:
        """The latest files the app itself shared in `channel`, newest first."""
        return list(self.call("files.list", channel=channel, user=self.bot_user_id, count=count).get("files", []))

    def file_info(self, file_id: str) -> dict:
        return self.call("files.info", file=file_id)["file"]

    def upload(
        self,
        channel: str,
        content: bytes | Path,
        filename: str,
        title: str | None = None,
        thread_ts: str | None = None,
        comment: str | None = None,
    ) -> dict:
        """Upload a file into a channel (files_upload_v2: the three-step external upload); the file object."""
        try:
            source = {"file": str(content)} if isinstance(content, Path) else {"content": content}
            response = self.client.files_upload_v2(
                channel=channel,
                **source,
                filename=filename,
                title=title or filename,
                thread_ts=thread_ts,
                initial_comment=comment,
            )
        except SlackApiError as exc:
            raise SlackError.from_api_error("files_upload_v2", exc) from None
        except (SlackClientError, OSError) as exc:
            raise SlackError("files_upload_v2", "other", {"exception": type(exc).__name__}) from None
        files = response.get("files") or ([response.get("file")] if response.get("file") else [])
        return files[0] if files else {}


def _wants_json(kwargs: dict) -> bool:
    # Blocks and views are nested: send them as JSON bodies, everything else as form fields.
    return any(isinstance(v, (list, dict)) for v in kwargs.values())
