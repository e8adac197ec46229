"""Twilio's webhooks: `POST /sms/inbound` (a customer's text) and `POST /sms/status` (the delivery
reports of every text we send: Files sends and conversation replies).

Every Twilio webhook goes through `signed_params()`: the signature is computed over the URL Twilio
called, which is our PUBLIC_URL plus the path (a proxy in front of us changes the host we see, not
the one Twilio signed), and what is processed is exactly what was checked. Twilio sorts a field's
values before signing, so the order of a repeated field is not signed: a request with any field
repeated is refused, else a forger could put their own MessageSid, From or Body in front of a
genuine request's.
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


def signed_params(settings: Settings, req: Request) -> dict[str, str] | None:
    """The form POST's parameters, exactly as Twilio signed them with our auth token; None when the
    signature is wrong or missing, or a field is repeated (Twilio sends none twice)."""
    pairs = list(req.form.items(multi=True))
    params = dict(pairs)
    if len(params) != len(pairs):
        log.warning("refused a Twilio webhook with repeated fields: %s", sorted({k for k, _ in pairs if k in params}))
        return None
    if not signature_valid(
        settings.twilio_auth_token, public_request_url(settings, req), params, req.headers.get("X-Twilio-Signature")
    ):
        return None
    return params


def _refused(path: str) -> Response:
    log.warning("rejected an unsigned or wrongly signed %s request", path)
    return Response("invalid signature\n", status=403, mimetype="text/plain")


def create_blueprint(services: Services) -> Blueprint:
    settings = services.settings
    bp = Blueprint("twilio_webhooks", __name__)

    @bp.post("/sms/status")
    def sms_status() -> Response:
        params = signed_params(settings, request)
        if params is None:
            return _refused(request.path)
        send = apply_twilio_status(params)
        if send is not None:
            send_flow.status_changed(services, send.id)  # the note is redrawn by a task, not before Twilio's answer
        reply = conversation_rules.apply_twilio_status(params)
        if reply is not None:
            conversation_flow.status_changed(services, reply.id)
        return Response(status=204)

    @bp.post("/sms/inbound")
    def sms_inbound() -> Response:
        """A customer's text: stored as a task before Twilio gets its answer (one write), processed once."""
        params = signed_params(settings, request)
        if params is None:
            return _refused(request.path)
        try:
            twiml = conversation_flow.receive(services, params)
        except conversation_rules.BadWebhook as bad:
            return Response(f"{bad}\n", status=400, mimetype="text/plain")
        return Response(twiml, status=200, mimetype="text/xml")

    return bp
