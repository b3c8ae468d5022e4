"""Handing one message to a mail server: by SMTP, or to the log in development.

This is the only module that speaks SMTP. A send returns once the server has accepted the
message, or raises :class:`MailError`, which says whether trying again could help; when to
try again is the outbox's decision, not this module's.

TLS is verified against the system's trust store (``ssl.create_default_context``). A relay
with a self-signed certificate, such as a test server, is trusted by pointing the standard
``SSL_CERT_FILE`` variable at a file holding it, never by turning verification off.
"""

import functools
import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal, Protocol

from pydantic import SecretStr

from shared.infrastructure.config import Settings

logger = logging.getLogger("authtwin.mail")

SmtpSecurity = Literal["none", "starttls", "tls"]
# How much of a server's reply an error quotes: enough to say why, not a whole transcript.
MAX_REPLY_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class OutgoingMail:
    """One rendered message, as the outbox stores it."""

    to: str
    subject: str
    # Left out of repr: the body holds a reset or verification link, a live credential, and
    # a repr ends up in logs and assertion messages.
    text: str = field(repr=False)
    html: str = field(repr=False)
    # Stable per outbox row ("<outbox-12.3f9a…@authtwin>"): if the process dies after the
    # server accepted a message but before the outbox recorded it, the resend carries the
    # same id, and receivers can drop the duplicate.
    message_id: str


class MailError(Exception):
    """A send that failed. ``permanent``: retrying this message cannot help (its recipient or
    its content was refused with a 5xx reply, or its address cannot be sent as is); else
    transient: the server or our configuration of it may be fixed (connection refused,
    timeout, TLS failure, a 4xx reply, a refused login or sender address)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class MailBackend(Protocol):
    def send(self, mail: OutgoingMail) -> None:
        """Return once the server accepted ``mail``; raise :class:`MailError` otherwise."""


class ConsoleBackend:
    """Development's backend: each message is logged instead of sent, so that its link can
    be followed from the terminal. Production refuses it (config.py): the link in the body
    is a credential, and logs are read by more people than mailboxes are."""

    def send(self, mail: OutgoingMail) -> None:
        logger.info(
            "mail to %s (console backend: not sent)\nSubject: %s\n\n%s",
            mail.to,
            mail.subject,
            mail.text,
        )


def build_message(mail: OutgoingMail, *, sender: str, reply_to: str | None) -> EmailMessage:
    """The MIME message: text and HTML as alternatives, so every mail client shows one.

    Raises ``ValueError`` for a header that would break the message, such as a line break in
    an address or the subject (header injection): ``email`` refuses those.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = mail.message_id
    # RFC 3834: no vacation or out-of-office auto-replies to a machine's message; Exchange
    # ignores that header and reads its own.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


class SmtpBackend:
    """One SMTP connection per message, closed after it.

    ``security``: ``starttls`` upgrades the connection before anything else is said and
    fails if the server does not offer it, rather than carrying the login and the link in
    clear; ``tls`` speaks TLS from the first byte (port 465); ``none`` is for a relay on
    the same host. ``timeout`` bounds the connection and each command, so a server that
    stops answering cannot hold the sender for longer. ``ssl_context`` defaults to the
    system's trust store with certificate and host name checks.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: SmtpSecurity,
        timeout: float,
        sender: str,
        reply_to: str | None = None,
        username: str | None = None,
        password: SecretStr | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if username is not None and password is None:
            raise ValueError("an SMTP username needs a password (AUTHTWIN_SMTP_PASSWORD)")
        self._host, self._port, self._security, self._timeout = host, port, security, timeout
        self._sender, self._reply_to = sender, reply_to
        self._username, self._password = username, password
        self._given_context = ssl_context
        # Once, not at each connection, where smtplib would look this host's name up again.
        self._local_hostname = socket.getfqdn()

    @functools.cached_property
    def _context(self) -> ssl.SSLContext:
        """Made at the first TLS connection, not with the backend: loading the system's trust
        store takes tens of milliseconds, which a relay on the same host ("none") never needs."""
        return ssl.create_default_context() if self._given_context is None else self._given_context

    def send(self, mail: OutgoingMail) -> None:
        try:
            message = build_message(mail, sender=self._sender, reply_to=self._reply_to)
        except ValueError as error:
            raise MailError(f"the message cannot be built: {error}", permanent=True) from error
        smtp = self._connect()
        try:
            self._secure(smtp)
            self._log_in(smtp)
            self._submit(smtp, message, mail.to)
        finally:
            _close(smtp)

    @property
    def _where(self) -> str:
        return f"SMTP server {self._host}:{self._port}"

    def _connect(self) -> smtplib.SMTP:
        try:
            if self._security == "tls":
                return smtplib.SMTP_SSL(
                    self._host,
                    self._port,
                    local_hostname=self._local_hostname,
                    timeout=self._timeout,
                    context=self._context,
                )
            return smtplib.SMTP(
                self._host, self._port, local_hostname=self._local_hostname, timeout=self._timeout
            )
        except (OSError, smtplib.SMTPException) as error:  # ssl.SSLError is an OSError
            raise MailError(f"{self._where}: cannot connect: {_describe(error)}") from error

    def _secure(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.ehlo_or_helo_if_needed()
            if self._security == "starttls":
                # Raises SMTPNotSupportedError if the server does not offer STARTTLS: we
                # stop there, before any login or message crosses the network in clear.
                smtp.starttls(context=self._context)
                smtp.ehlo_or_helo_if_needed()  # RFC 3207: what the server said before TLS is void
        except (OSError, smtplib.SMTPException) as error:
            raise MailError(f"{self._where}: greeting or TLS failed: {_describe(error)}") from error

    def _log_in(self, smtp: smtplib.SMTP) -> None:
        if self._username is None or self._password is None:
            return
        try:
            smtp.login(self._username, self._password.get_secret_value())
        except (OSError, smtplib.SMTPException) as error:
            # Of a server's reply to AUTH, only the code: the rest is no place we want to
            # quote, and the cause is dropped (from None) so a logged traceback cannot either.
            # Anything else (no AUTH offered, a timeout) is smtplib's words, not the server's.
            if isinstance(error, smtplib.SMTPResponseException):
                detail = str(error.smtp_code)
            else:
                detail = _describe(error)
            who = f"{self._where}: login as {self._username!r}"
            raise MailError(f"{who} failed: {detail}") from None

    def _submit(self, smtp: smtplib.SMTP, message: EmailMessage, to: str) -> None:
        try:
            smtp.send_message(message, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()))
            raise MailError(
                f"{self._where}: recipient refused: {code} {_text(reply)}", permanent=code >= 500
            ) from error
        except smtplib.SMTPDataError as error:
            raise MailError(
                f"{self._where}: message refused: {_describe(error)}",
                permanent=error.smtp_code >= 500,
            ) from error
        except smtplib.SMTPNotSupportedError as error:
            # An address needs SMTPUTF8, which this server does not offer: never for this one.
            raise MailError(f"{self._where}: {error}", permanent=True) from error
        except (OSError, smtplib.SMTPException) as error:
            # A refused sender (MAIL FROM) is our configuration, not this message: the same
            # refusal would lose every queued message, which fixing AUTHTWIN_MAIL_FROM saves.
            raise MailError(f"{self._where}: sending failed: {_describe(error)}") from error


def make_mail_backend(settings: Settings) -> MailBackend:
    if settings.mail_transport == "console":
        return ConsoleBackend()
    return SmtpBackend(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        timeout=settings.smtp_timeout,
        sender=settings.mail_from,
        reply_to=settings.mail_reply_to,
        username=settings.smtp_username,
        password=settings.smtp_password,
    )


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely; a server that does not answer it changes nothing: the message was
    accepted, or has already failed. The socket is closed either way."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return f"{type(error).__name__}: {error}"


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:MAX_REPLY_CHARS]
