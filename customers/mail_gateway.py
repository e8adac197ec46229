"""Email through SMTP_URL with the standard library.

`smtp://user:password@host:port` (default port 587; STARTTLS when the server offers it) or
`smtps://…` (TLS from the start, default port 465). Credentials are URL-decoded, so a password
with `@` or `:` is written `%40` / `%3A`. Failures come out as MailError with a code:
`unreachable` (connection, timeout), `auth` (login refused), `rejected` (the server refused the
sender or recipient). A server that never answers costs at most SMTP_TIMEOUT_SECONDS per step.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

from core.config import Settings

log = logging.getLogger(__name__)
# CRLF, and headers folded only past 998 characters: a long subject stays on one line.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


class MailError(Exception):
    def __init__(self, code: str):
        self.code = code
        super().__init__(f"email {code}")


def sender_address(settings: Settings) -> str:
    if settings.mail_from:
        return settings.mail_from
    user = unquote(urlsplit(settings.smtp_url or "").username or "")
    if "@" in user:
        return user
    host = urlsplit(settings.public_url).hostname or "localhost"
    return f"no-reply@{host}"


def _header_text(value: str) -> str:
    """One line: a name or subject typed with line breaks can't add headers (Bcc: …) to the mail."""
    return " ".join(value.split())


def send_mail(settings: Settings, to: str, subject: str, text: str, html: str | None = None, from_name: str | None = None) -> str:
    """Send one message; returns its Message-ID. Raises MailError."""
    parts = urlsplit(settings.smtp_url or "")
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailError("unreachable")
    if not to or any(c.isspace() for c in to) or "," in to:
        raise MailError("rejected")  # one plain address only: nothing can smuggle in another header
    message = EmailMessage(policy=_POLICY)
    sender = sender_address(settings)
    message["From"] = f"{_header_text(from_name)} <{sender}>" if from_name else sender
    message["To"] = to
    message["Subject"] = _header_text(subject)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    context = ssl.create_default_context()
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
        timeout = settings.smtp_timeout_seconds
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(parts.hostname, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(parts.hostname, port, timeout=timeout)
        with client:
            client.ehlo()
            if parts.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError):
        raise MailError("auth") from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        log.warning("mail server refused the message: %s", type(exc).__name__)
        raise MailError("rejected") from None
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("mail server unreachable: %s", type(exc).__name__)
        raise MailError("unreachable") from None
    return str(message["Message-ID"])
