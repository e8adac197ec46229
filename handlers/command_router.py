"""The `/ro` slash command: ack at once, then route `/ro <sub> …` to the feature that owns it.

Feature modules call `router.add("files", handler, needs_ro=True)`; this module knows no feature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_bolt import App

from blocks import kit
from core.i18n import t
from core.refusals import Refusal
from slackapi.services import Services

log = logging.getLogger(__name__)


@dataclass
class CommandContext:
    sub: str
    args: str
    user_id: str
    channel_id: str
    trigger_id: str | None
    locale: str
    ro: object | None  # storage.models.RepairOrder of this channel, if it is an RO channel
    respond: Callable[..., object]
    services: Services
    body: dict = field(repr=False, default_factory=dict)
    ack: Callable[[], None] = lambda: None  # answers Slack (once); routes that store work call it after storing

    def reply(self, text: str, blocks: list | None = None) -> None:
        """An ephemeral answer to the person who typed the command."""
        self.respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)

    def say(self, key: str, **values: object) -> None:
        """Answer with a catalog text; string values are escaped (they may echo what the user typed)."""
        self.reply(t(key, self.locale, **{k: kit.escape(v) if isinstance(v, str) else v for k, v in values.items()}))


Handler = Callable[[CommandContext], None]


@dataclass
class _Route:
    handler: Handler
    needs_ro: bool
    stores_work: bool


class CommandRouter:
    def __init__(self) -> None:
        self._routes: dict[str, _Route] = {}
        self._aliases: dict[str, str] = {}

    def add(
        self, name: str, handler: Handler, *, needs_ro: bool = False, stores_work: bool = False, aliases: tuple[str, ...] = ()
    ) -> None:
        """`stores_work`: the handler queues work and acks once it is stored (quick database work
        only), so a process that dies in between leaves Slack saying the command failed rather
        than a promise nobody keeps. Every other route is acked before it runs."""
        self._routes[name] = _Route(handler, needs_ro, stores_work)
        for alias in aliases:
            self._aliases[alias] = name

    def dispatch(self, ctx: CommandContext) -> None:
        name = self._aliases.get(ctx.sub, ctx.sub)
        route = self._routes.get(name)
        if route is None or not route.stores_work:
            ctx.ack()
        if route is None:
            ctx.say("command.unknown", sub=ctx.sub)
            return
        if route.needs_ro and ctx.ro is None:
            ctx.ack()
            ctx.say("command.needs_ro_channel", sub=name)
            return
        try:
            route.handler(ctx)
        except Refusal as refusal:
            ctx.ack()
            ctx.reply(kit.refusal_text(refusal, ctx.locale))
        finally:
            ctx.ack()  # a handler that failed before acking: Slack still hears back (the error is told by on_error)


def parse(text: str) -> tuple[str, str]:
    """`"  Search  Bélanger "` → ("search", "Bélanger"). No text means help."""
    parts = (text or "").strip().split(None, 1)
    if not parts:
        return "help", ""
    return parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""


def register(app: App, services: Services, router: CommandRouter) -> None:
    def help_command(ctx: CommandContext) -> None:
        ctx.say("help.text")

    router.add("help", help_command, aliases=("aide", "?"))

    @app.command("/ro")
    def ro_command(ack, body, respond, context):
        sub, args = parse(body.get("text", ""))
        user_id = body.get("user_id", "")
        ctx = CommandContext(
            sub=sub,
            args=args,
            user_id=user_id,
            channel_id=body.get("channel_id", ""),
            trigger_id=body.get("trigger_id"),
            locale=services.directory.locale(user_id),
            ro=context.get("ro"),
            respond=respond,
            services=services,
            body=body,
            ack=_once(ack),
        )
        router.dispatch(ctx)


def _once(ack: Callable[[], object]) -> Callable[[], None]:
    done: list[bool] = []

    def ack_once() -> None:
        if not done:
            done.append(True)
            ack()

    return ack_once
