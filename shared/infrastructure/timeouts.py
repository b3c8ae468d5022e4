"""How long a request may wait for the database, and the bound psycopg itself lacks.

Without these, a server that stops answering holds a request for as long as the OS keeps the
socket: PostgreSQL stopped with SIGSTOP (a hung VM, a storage stall) leaves its sockets open
and the kernel still acknowledges every TCP segment, so neither TCP keepalive nor
``tcp_user_timeout`` nor the server's own ``statement_timeout`` ever fires. Only the client can
notice, so every wait on the server is bounded on the client as well.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen

# Documented by psycopg's ``Connection.wait`` as what its ``timeout`` raises; private by name.
from psycopg.errors import _WaitTimeout

from shared.infrastructure.config import Settings

RV = TypeVar("RV")

# The client's bound is the server's plus this: normally PostgreSQL cancels first, with a
# clean error that keeps the connection usable; the client's bound only fires when the server
# cannot even do that, and then the connection is closed.
CLIENT_MARGIN_SECONDS = 0.5


@dataclass(frozen=True)
class DatabaseTimeouts:
    connect: int
    pool: float
    statement: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "DatabaseTimeouts":
        return cls(
            connect=settings.db_connect_timeout_seconds,
            pool=settings.db_pool_timeout_seconds,
            statement=settings.db_statement_timeout_seconds,
        )

    @property
    def client_statement(self) -> float:
        return self.statement + CLIENT_MARGIN_SECONDS

    @property
    def statement_ms(self) -> int:
        return max(1, round(self.statement * 1000))


class ServerTimeout(psycopg.OperationalError):
    """The server gave no answer in time; the connection was closed (its state is unknown)."""


class CommitOutcomeUnknown(ServerTimeout):
    """COMMIT was sent and no answer came in time: the write may or may not have been made.

    Not an outage (infrastructure/outages.py): a 503 with ``Retry-After`` says "try again",
    and a retry could make a write twice, or, for a refresh, be taken for a stolen token
    replayed and end the session. It is a logged 500, for an operator to look at.
    """


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg 3 connection that gives up on a server that stopped answering.

    Every blocking exchange of a psycopg connection — execute, fetch, commit, rollback, the
    pool's ping — goes through ``Connection.wait``, which takes a ``timeout`` since psycopg
    3.2; nothing passes one for queries, so this class does. There is no other client-side
    bound in psycopg: ``cancel_safe(timeout=)`` sends a cancel *request*, which a frozen
    server cannot act on, and libpq's ``connect_timeout`` only covers connecting (the whole
    start-up handshake, which is why a frozen server fails ``connect`` in time).

    On expiry the protocol is mid-exchange, so the connection is closed: SQLAlchemy's psycopg
    dialect then sees a closed connection, counts the error as a disconnect and throws the
    connection away instead of returning it to the pool.
    """

    answer_timeout: float | None = None  # set by :func:`bounded_connect`

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        try:
            return super().wait(gen, interval, self.answer_timeout if timeout is None else timeout)
        except _WaitTimeout:
            self.pgconn.finish()
            raise ServerTimeout(
                f"no answer from the server in {self.answer_timeout} s; connection closed"
            ) from None

    def commit(self) -> None:
        try:
            super().commit()
        except ServerTimeout as error:
            raise CommitOutcomeUnknown(f"COMMIT sent, {error}: the outcome is unknown") from None


class BoundedAsyncConnection(psycopg.AsyncConnection[Any]):
    """:class:`BoundedConnection` for psycopg's asyncio mode (the FastAPI read path when the
    database URL carries libpq options, which asyncpg does not read)."""

    answer_timeout: float | None = None  # set by :func:`bounded_async_connector`

    async def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        bound = self.answer_timeout if timeout is None else timeout
        try:
            return await super().wait(gen, interval, bound)
        except _WaitTimeout:
            self.pgconn.finish()
            raise ServerTimeout(
                f"no answer from the server in {self.answer_timeout} s; connection closed"
            ) from None


def bounded_async_connector(
    timeouts: DatabaseTimeouts,
) -> Callable[..., Awaitable[BoundedAsyncConnection]]:
    """SQLAlchemy's psycopg_async dialect takes its connect function as ``async_creator_fn``."""

    async def connect(**cparams: Any) -> BoundedAsyncConnection:
        connection = await BoundedAsyncConnection.connect(**cparams)
        connection.answer_timeout = timeouts.client_statement
        return connection

    return connect


def bounded_connect(timeouts: DatabaseTimeouts, cparams: dict[str, Any]) -> BoundedConnection:
    """What SQLAlchemy's ``do_connect`` event returns instead of ``psycopg.connect(...)``."""
    connection = BoundedConnection.connect(**cparams)
    connection.answer_timeout = timeouts.client_statement
    return connection
