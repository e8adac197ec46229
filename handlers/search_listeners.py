"""`/ro search <text>`, `/ro mine [status]`, `/ro all [status]`: compact ephemeral lists with
channel links, in the user's language."""

from __future__ import annotations

from slack_bolt import App

from blocks import kit
from blocks import search_view as views
from core.i18n import t
from dms.status_rules import parse_status
from handlers.command_router import CommandContext, CommandRouter
from slackapi.services import Services
from storage.search_index import QueryTooShort, find


def register(app: App, services: Services, router: CommandRouter) -> None:
    def search_command(ctx: CommandContext) -> None:
        try:
            page = find(ctx.args, member=services.directory.listing_scope(ctx.user_id), limit=views.LIST_LIMIT)
        except QueryTooShort:
            ctx.say("people.search.hint")
            return
        empty = t("people.search.none", ctx.locale, query=kit.escape(ctx.args[:100]))
        ctx.reply(*views.ro_list(views.search_title(ctx.args, ctx.locale), page, ctx.locale, "people.search.more", empty))

    def list_command(mine: bool):
        def command(ctx: CommandContext) -> None:
            status = parse_status(ctx.args) if ctx.args else None
            if ctx.args and status is None:
                ctx.say("people.list.bad_status", sub="mine" if mine else "all", text=ctx.args[:50])
                return
            member = ctx.user_id if mine else services.directory.listing_scope(ctx.user_id)
            page = find(None, status=status, member=member, limit=views.LIST_LIMIT)
            empty = t("people.home.empty_mine" if mine else "people.home.empty_all", ctx.locale)
            ctx.reply(*views.ro_list(views.list_title(mine, status, ctx.locale), page, ctx.locale, "people.list.more", empty))

        return command

    router.add("search", search_command, aliases=("find", "chercher", "recherche"))
    router.add("mine", list_command(True), aliases=("miens", "mes"))
    router.add("all", list_command(False), aliases=("tous",))
