"""The production server's access log never carries a customer link's token."""

from __future__ import annotations

from types import SimpleNamespace

from gunicorn.config import Config

from server.gunicorn_runner import RedactingAccessLogger


def test_customer_tokens_are_masked_in_access_log_atoms():
    logger = RedactingAccessLogger(Config())
    request = SimpleNamespace(
        headers=[],
        method="GET",
        path="/c/AbCdEf123.sig/F42",
        query="",
        uri="/c/AbCdEf123.sig/F42",
        version=(1, 1),
        remote_addr="127.0.0.1",
    )
    response = SimpleNamespace(status="200 OK", response_length=10, headers=[], sent=10)
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "PATH_INFO": "/c/AbCdEf123.sig/F42",
        "QUERY_STRING": "",
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "RAW_URI": "/c/AbCdEf123.sig/F42",
    }
    from datetime import timedelta

    atoms = logger.atoms(response, request, environ, timedelta(seconds=0.01))
    assert atoms["U"] == "/c/***/F42"
    assert "AbCdEf123" not in atoms["U"]
    environ["PATH_INFO"] = "/slack/events"
    assert logger.atoms(response, request, environ, timedelta(seconds=0.01))["U"] == "/slack/events"
