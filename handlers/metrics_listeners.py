"""Metrics listeners: `/ro metrics [from] [to]` and the Home section's Export to Excel button. The
work itself is reports.metrics_flow's task."""

from __future__ import annotations

from slack_bolt import App

from blocks import ids, kit
from blocks import metrics_view as views
from core.refusals import Refusal
from handlers.command_router import CommandContext, CommandRouter
from reports import metrics_flow
from slackapi.services import Services
from storage.models import utcnow


def register(app: App, services: Services, router: CommandRouter) -> None:
    def metrics_command(ctx: CommandContext) -> None:
        period = metrics_flow.request_workbook(services, ctx.user_id, ctx.args.split())
        ctx.ack()  # once the work is stored
        ctx.reply(views.preparing_text(period, ctx.locale))

    router.add("metrics", metrics_command, stores_work=True, aliases=("stats", "statistiques"))

    @app.action(ids.METRICS_EXPORT)
    def export_clicked(ack, body):
        user_id = body["user"]["id"]
        # Two clicks in the same minute are one request (a slow DM is no reason for two workbooks).
        minute = utcnow().strftime("%Y%m%d%H%M")
        locale = services.directory.locale(user_id)
        try:
            period = metrics_flow.request_workbook(services, user_id, [], key=f"metrics-home:{user_id}:{minute}")
        except Refusal as refusal:  # allowed when the tab was drawn, not any more
            ack()
            services.slack.tell(user_id, None, kit.refusal_text(refusal, locale))
            return
        ack()
        # Home has no ephemeral answer: the DM the workbook comes to says it is on its way.
        services.slack.tell(user_id, None, views.preparing_text(period, locale))
