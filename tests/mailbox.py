"""A real SMTP server in the test process (aiosmtpd), to read what the service sends.

``Mailbox`` listens on 127.0.0.1 on a port the system picks, keeps every message it
accepts, and can be stopped and started again on the same port, for outage tests. It can
offer STARTTLS (and then require it), speak TLS from the first byte, require a login, and
refuse chosen recipients, and hold every message at DATA until told to let go (a slow mail
server). The ``mailbox`` fixture is a plain one, stopped after its test.
"""

import asyncio
import re
import ssl
import threading
from collections.abc import Awaitable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from types import TracebackType
from typing import Any, Self

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# The longest a held message waits for ``release``: a test that forgot to let go ends anyway.
HOLD_SECONDS = 60


class Mailbox:
    host = "127.0.0.1"

    def __init__(
        self,
        *,
        starttls: ssl.SSLContext | None = None,
        tls: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        port: int = 0,
    ) -> None:
        """``starttls``: offer STARTTLS with this server context, and refuse mail without it;
        ``tls``: TLS from the first byte; ``credentials``: refuse mail without this login
        (aiosmtpd offers AUTH only over TLS)."""
        # Given, or chosen by the system at the first start; kept for the next ones.
        self.port = port
        self.logins: list[str] = []  # the user names that logged in
        self._starttls, self._tls, self._credentials = starttls, tls, credentials
        self._received: list[tuple[tuple[str, ...], EmailMessage]] = []
        self._refusals: dict[str, str] = {}
        self._arrived = threading.Condition()
        self._holding = threading.Event()
        self._held = 0
        self._controller: _Controller | None = None

    def start(self) -> None:
        assert self._controller is None, "the mailbox is already running"
        # A new controller each time: a stopped one has closed its event loop for good.
        controller = _Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="mailbox.test",  # else aiosmtpd looks this host's name up
            ssl_context=self._tls,
            tls_context=self._starttls,
            require_starttls=self._starttls is not None,
            auth_required=self._credentials is not None,
            authenticator=self._authenticate,
        )
        controller.start()
        self.port, self._controller = controller.port, controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def refuse(self, address: str, reply: str) -> None:
        """Answer ``RCPT TO:<address>`` with ``reply`` ("550 5.1.1 no such user")."""
        self._refusals[address.lower()] = reply

    def hold(self) -> None:
        """From now on, answer DATA only once ``release`` is called: a server that takes each
        message and keeps its sender waiting for the reply."""
        self._holding.set()

    def release(self) -> None:
        self._holding.clear()

    def wait_until_holding(self, count: int, *, timeout: float = 10.0) -> None:
        """Until ``count`` senders wait for their reply to DATA at once."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._held >= count, timeout):
                raise AssertionError(f"{count} held message(s) expected; {self._held} held")

    def holding(self) -> int:
        with self._arrived:
            return self._held

    async def _wait_while_held(self) -> None:
        if not self._holding.is_set():
            return
        with self._arrived:
            self._held += 1
            self._arrived.notify_all()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HOLD_SECONDS
        try:
            while self._holding.is_set() and loop.time() < deadline:
                await asyncio.sleep(0.02)
        finally:
            with self._arrived:
                self._held -= 1
                self._arrived.notify_all()

    def messages(self) -> list[EmailMessage]:
        with self._arrived:
            return [message for _, message in self._received]

    def wait_for(self, *, to: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        """Every message to ``to`` so far, once there are at least ``count``."""

        def to_them() -> list[EmailMessage]:
            return [message for rcpt, message in self._received if to.lower() in rcpt]

        with self._arrived:
            if not self._arrived.wait_for(lambda: len(to_them()) >= count, timeout):
                arrived = [(rcpt, message["Subject"]) for rcpt, message in self._received]
                raise AssertionError(f"{count} message(s) to {to} expected; arrived: {arrived}")
            return to_them()

    def _deliver(self, recipients: list[str], content: bytes) -> None:
        message = BytesParser(_class=EmailMessage, policy=default).parsebytes(content)
        with self._arrived:
            self._received.append((tuple(address.lower() for address in recipients), message))
            self._arrived.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self._credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        if (login, password) != self._credentials:
            return AuthResult(success=False, handled=False)
        self.logins.append(login)
        return AuthResult(success=True)


class _Handler:
    """aiosmtpd's hooks, run on its event loop thread."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if refusal := self._mailbox._refusals.get(address.lower()):
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.original_content, bytes)
        await self._mailbox._wait_while_held()
        if server.transport is None or server.transport.is_closing():
            return "421 the sender left while held: not delivered"
        self._mailbox._deliver(envelope.rcpt_tos, envelope.original_content)
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's controller, bound to port 0 and reading back the port the system chose
    before ``start`` connects to it: no other process can take it in between, as one could
    a port found free, closed, then passed on."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await super()._create_server()
        assert isinstance(server, asyncio.Server)  # what loop.create_server returns
        self.port = server.sockets[0].getsockname()[1]
        return server


def link_token(message: EmailMessage, path: str) -> str:
    """The token of the one ``…{path}#token=<token>`` link in the text part; the HTML part
    must carry the same link."""
    text, html = (_part(message, subtype) for subtype in ("plain", "html"))
    pattern = rf"https?://[^\s\"<>]*?{re.escape(path)}#token=[A-Za-z0-9._~-]+"
    links: set[str] = set(re.findall(pattern, text))
    assert len(links) == 1, f"one {path} link expected in the text part, found {links}"
    link = links.pop()
    assert f'href="{link}"' in html, f"the HTML part does not link to {link}"
    return link.partition("#token=")[2]


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage), f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as running:
        yield running
