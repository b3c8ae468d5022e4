"""Mail transports against a real SMTP server (tests/mailbox.py), and the mail templates.

Nothing is mocked: smtplib talks to aiosmtpd over TCP, in clear, over STARTTLS or TLS with
a certificate made here, to a port with nothing behind it, or to one that never answers.
"""

import base64
import datetime
import ipaddress
import logging
import socket
import ssl
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from shared.infrastructure.config import Settings
from shared.infrastructure.mail import (
    ConsoleBackend,
    MailError,
    OutgoingMail,
    SmtpBackend,
    SmtpSecurity,
    build_message,
    make_mail_backend,
)
from shared.infrastructure.mail_templates import CONTEXT_KEYS, MailKind, render_mail
from tests.mailbox import Mailbox, link_token

TO = "ada@example.com"
LINK = "https://auth.example.com/reset-password#token=Zm9v.YmFy-_baz"
SENDER = "authtwin <no-reply@example.com>"
PASSWORD = "smtp-password-never-shown"


def outgoing(to: str = TO) -> OutgoingMail:
    subject, text, html = render_mail("password_reset", link=LINK, minutes=30)
    return OutgoingMail(
        to=to, subject=subject, text=text, html=html, message_id="<outbox-1.3f9a@authtwin>"
    )


def backend(
    port: int,
    security: SmtpSecurity = "none",
    *,
    ssl_context: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
) -> SmtpBackend:
    return SmtpBackend(
        host="127.0.0.1",
        port=port,
        security=security,
        timeout=5,
        sender=SENDER,
        reply_to="help@example.com",
        username=username,
        password=None if password is None else SecretStr(password),
        ssl_context=ssl_context,
    )


# --- in clear ---


def test_a_message_arrives_with_its_headers_and_both_parts(mailbox: Mailbox) -> None:
    backend(mailbox.port).send(outgoing())

    (message,) = mailbox.wait_for(to=TO)
    assert message["From"] == SENDER
    assert message["To"] == TO
    assert message["Subject"] == "Reset your authtwin password"
    assert message["Message-ID"] == "<outbox-1.3f9a@authtwin>"
    assert message["Reply-To"] == "help@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    assert link_token(message, "/reset-password") == "Zm9v.YmFy-_baz"


def test_without_a_reply_to_the_header_is_left_out() -> None:
    message = build_message(outgoing(), sender=SENDER, reply_to=None)
    assert "Reply-To" not in message


def test_a_line_break_in_an_address_is_refused_for_good(mailbox: Mailbox) -> None:
    """Header injection: the message is never built, so never sent, and retrying won't help."""
    with pytest.raises(MailError) as refused:
        backend(mailbox.port).send(outgoing(to=f"{TO}\r\nBcc: eve@example.com"))
    assert refused.value.permanent
    assert mailbox.messages() == []


@pytest.mark.parametrize(
    ("reply", "permanent"), [("550 5.1.1 no such user", True), ("451 4.3.0 try later", False)]
)
def test_a_refused_recipient_is_permanent_on_5xx_only(
    mailbox: Mailbox, reply: str, permanent: bool
) -> None:
    mailbox.refuse(TO, reply)
    with pytest.raises(MailError) as refused:
        backend(mailbox.port).send(outgoing())
    assert refused.value.permanent is permanent
    assert reply in str(refused.value)
    assert f"127.0.0.1:{mailbox.port}" in str(refused.value)


# --- servers that are down or silent ---


def test_nothing_listening_is_a_transient_failure_at_once(mailbox: Mailbox) -> None:
    mailbox.stop()  # its port is now known to be free
    started = time.monotonic()
    with pytest.raises(MailError) as refused:
        backend(mailbox.port).send(outgoing())
    assert not refused.value.permanent
    assert time.monotonic() - started < 5


def test_a_server_that_never_answers_fails_after_the_timeout() -> None:
    # The kernel accepts the connection into the backlog; no one ever reads or writes it.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        silent_backend = SmtpBackend(
            host="127.0.0.1", port=port, security="none", timeout=0.5, sender=SENDER
        )
        started = time.monotonic()
        with pytest.raises(MailError) as refused:
            silent_backend.send(outgoing())
    assert not refused.value.permanent
    assert time.monotonic() - started < 10


def test_the_mailbox_comes_back_on_the_same_port(mailbox: Mailbox) -> None:
    port = mailbox.port
    mailbox.stop()
    with pytest.raises(MailError):
        backend(mailbox.port).send(outgoing())
    mailbox.start()
    assert mailbox.port == port
    backend(mailbox.port).send(outgoing())
    assert len(mailbox.wait_for(to=TO)) == 1


# --- TLS ---


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authtwin test mail server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """What a client gets from SSL_CERT_FILE pointing at the test certificate."""
    return ssl.create_default_context(cafile=certificate[0])


@pytest.fixture
def starttls_mailbox(server_tls: ssl.SSLContext) -> Iterator[Mailbox]:
    with Mailbox(starttls=server_tls, credentials=("mailer", PASSWORD)) as running:
        yield running


def test_starttls_then_login_delivers(starttls_mailbox: Mailbox, trusting: ssl.SSLContext) -> None:
    """The mailbox refuses mail before STARTTLS, and offers AUTH only after it."""
    login = backend(
        starttls_mailbox.port,
        "starttls",
        ssl_context=trusting,
        username="mailer",
        password=PASSWORD,
    )
    login.send(outgoing())
    assert len(starttls_mailbox.wait_for(to=TO)) == 1
    assert starttls_mailbox.logins == ["mailer"]


def test_tls_from_the_first_byte_delivers(
    server_tls: ssl.SSLContext, trusting: ssl.SSLContext
) -> None:
    with Mailbox(tls=server_tls) as box:
        backend(box.port, "tls", ssl_context=trusting).send(outgoing())
        assert len(box.wait_for(to=TO)) == 1


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_an_untrusted_certificate_is_refused(
    server_tls: ssl.SSLContext, security: SmtpSecurity
) -> None:
    """The default context checks the certificate: a self-signed one is not trusted."""
    starttls = server_tls if security == "starttls" else None
    tls = server_tls if security == "tls" else None
    with Mailbox(starttls=starttls, tls=tls) as box:
        with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED") as refused:
            backend(box.port, security).send(outgoing())
        assert not refused.value.permanent
        assert box.messages() == []


def test_starttls_not_offered_stops_before_anything_is_sent_in_clear(mailbox: Mailbox) -> None:
    in_clear = backend(mailbox.port, "starttls", username="mailer", password=PASSWORD)
    with pytest.raises(MailError, match="STARTTLS") as refused:
        in_clear.send(outgoing())
    assert not refused.value.permanent
    assert mailbox.messages() == []
    assert mailbox.logins == []


def test_a_refused_login_never_shows_the_password(
    starttls_mailbox: Mailbox,
    trusting: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "wrong-" + PASSWORD
    caplog.set_level(logging.DEBUG, logger="authtwin")
    refused_login = backend(
        starttls_mailbox.port, "starttls", ssl_context=trusting, username="mailer", password=wrong
    )
    with pytest.raises(MailError, match="login as 'mailer' failed: 535") as refused:
        refused_login.send(outgoing())
    assert not refused.value.permanent  # a fixed password delivers the backlog
    shown = [
        "".join(traceback.format_exception(refused.value)),
        repr(refused.value),
        caplog.text,
        *capsys.readouterr(),
    ]
    plain_auth = base64.b64encode(f"\0mailer\0{wrong}".encode()).decode()
    for secret in (wrong, plain_auth, base64.b64encode(wrong.encode()).decode()):
        assert not any(secret in text for text in shown)
    assert starttls_mailbox.messages() == []


def test_a_username_without_a_password_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="password"):
        SmtpBackend(
            host="localhost", port=25, security="none", timeout=5, sender=SENDER, username="mailer"
        )


# --- the console, and choosing a backend ---


def test_the_console_backend_logs_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authtwin.mail")
    ConsoleBackend().send(outgoing())
    (record,) = [r for r in caplog.records if r.name == "authtwin.mail"]
    assert record.levelno == logging.INFO
    assert TO in record.getMessage()
    assert "Reset your authtwin password" in record.getMessage()
    assert LINK in record.getMessage()


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "development",
        "secret_key": "NtXSwdn2woyzqsKdmq6g5wwka5GEwUiGQlHxTCN7i5uB",
        "database_url": "sqlite:////tmp/x.db",
        # Given, so that a live run's AUTHTWIN_MAIL_BACKEND (settings also read the
        # environment) does not decide for the test.
        "mail_backend": None,
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.mark.parametrize(
    ("overrides", "chosen"),
    [
        ({}, ConsoleBackend),
        ({"mail_backend": "smtp"}, SmtpBackend),
        ({"env": "production"}, SmtpBackend),
    ],
)
def test_the_backend_follows_the_settings(overrides: dict[str, object], chosen: type) -> None:
    assert type(make_mail_backend(settings(**overrides))) is chosen


def test_the_smtp_settings_reach_the_server(mailbox: Mailbox) -> None:
    configured = settings(
        mail_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_security="none",
        mail_from=SENDER,
        mail_reply_to="help@example.com",
    )
    make_mail_backend(configured).send(outgoing())
    (message,) = mailbox.wait_for(to=TO)
    assert (message["From"], message["Reply-To"]) == (SENDER, "help@example.com")


# --- templates ---

CONTEXTS: dict[MailKind, dict[str, str | int]] = {
    "verify_email": {"link": "https://auth.example.com/verify-email#token=abc", "hours": 48},
    "password_reset": {"link": LINK, "minutes": 30},
    "password_changed": {"public_url": "https://auth.example.com"},
    "email_changed": {
        "new_email_hint": "j***@example.com",
        "public_url": "https://auth.example.com",
    },
    "signup_attempt": {"public_url": "https://auth.example.com"},
    "confirm_email_change": {"link": "https://auth.example.com/verify-email#token=c", "hours": 48},
}


def test_every_kind_has_a_context_here() -> None:
    assert CONTEXTS.keys() == CONTEXT_KEYS.keys()
    assert all(CONTEXTS[kind].keys() == keys for kind, keys in CONTEXT_KEYS.items())


@pytest.mark.parametrize("kind", list(CONTEXTS))
def test_each_kind_renders_a_subject_and_both_bodies(kind: MailKind) -> None:
    subject, text, html = render_mail(kind, **CONTEXTS[kind])
    assert subject
    assert "\n" not in subject
    for value in CONTEXTS[kind].values():
        assert str(value) in text
        assert str(value) in html
    if "link" in CONTEXTS[kind]:
        assert f'href="{CONTEXTS[kind]["link"]}"' in html
    # No script, no remote image or style sheet: nothing runs, nothing tells who opened it.
    assert not any(tag in html.lower() for tag in ("<script", "<img", "<link", "src="))


def test_html_is_escaped_and_text_is_not() -> None:
    hint = "<script>alert(1)</script>@example.com"
    _, text, html = render_mail("email_changed", new_email_hint=hint, public_url="https://a.b")
    assert hint in text
    assert hint not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@example.com" in html


def test_a_missing_name_raises() -> None:
    with pytest.raises(jinja2.UndefinedError, match="minutes"):
        render_mail("password_reset", link=LINK)


def test_a_name_the_kind_does_not_take_is_refused() -> None:
    with pytest.raises(TypeError, match="password"):
        render_mail("password_changed", public_url="https://a.b", password="hunter2")
