"""Twilio's webhooks: `POST /sms/inbound` (a customer's text) and `POST /sms/status` (the delivery
reports of every text we send: Files sends and conversation replies).

Every Twilio webhook is checked with `twilio_request_valid()`: the signature is computed over the
URL Twilio called, which is our PUBLIC_URL plus the path (a proxy in front of us changes the
host we see, not the one Twilio signed).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Request, Response, request

from core.config import Settings
from customers import conversation_flow, conversation_rules, send_flow
from customers.send_rules import apply_twilio_status
from customers.twilio_gateway import signature_valid
from slackapi.services import Services

log = logging.getLogger(__name__)


def public_request_url(settings: Settings, req: Request) -> str:
    """The full URL Twilio called: PUBLIC_URL + path (+ query string)."""
    query = req.query_string.decode("latin-1")
    return f"{settings.public_url}{req.path}" + (f"?{query}" if query else "")


def twilio_request_valid(settings: Settings, req: Request) -> bool:
    """Is the current form POST signed by Twilio with our auth token?"""
    return signature_valid(
        settings.twilio_auth_token,
        public_request_url(settings, req),
        req.form.items(multi=True),
        req.headers.get("X-Twilio-Signature"),
    )


def create_blueprint(services: Services) -> Blueprint:
    settings = services.settings
    bp = Blueprint("twilio_webhooks", __name__)

    @bp.post("/sms/status")
    def sms_status() -> Response:
        if not twilio_request_valid(settings, request):
            log.warning("rejected an unsigned or wrongly signed /sms/status request")
            return Response("invalid signature\n", status=403, mimetype="text/plain")
        send = apply_twilio_status(request.form)
        if send is not None:
            send_flow.status_changed(services, send.id)  # the note is redrawn by a task, not before Twilio's answer
        reply = conversation_rules.apply_twilio_status(request.form)
        if reply is not None:
            conversation_flow.status_changed(services, reply.id)
        return Response(status=204)

    @bp.post("/sms/inbound")
    def sms_inbound() -> Response:
        """A customer's text: stored as a task before Twilio gets its answer (one write), processed once."""
        if not twilio_request_valid(settings, request):
            log.warning("rejected an unsigned or wrongly signed /sms/inbound request")
            return Response("invalid signature\n", status=403, mimetype="text/plain")
        try:
            twiml = conversation_flow.receive(services, request.form.to_dict(flat=True))
        except conversation_rules.BadWebhook as bad:
            return Response(f"{bad}\n", status=400, mimetype="text/plain")
        return Response(twiml, status=200, mimetype="text/xml")

    return bp
