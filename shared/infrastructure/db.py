"""Declarative base, a UTC-safe datetime type, and the engines: one for writes, one for reads."""

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import URL, DateTime, Engine, MetaData, create_engine, event, exc, make_url
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from shared.infrastructure.outages import DatabaseUnreachable
from shared.infrastructure.timeouts import (
    DatabaseTimeouts,
    ServerTimeout,
    bounded_async_connector,
    bounded_connect,
)

# Every constraint and index gets a name derived from its table and columns. Left unnamed,
# each database names them its own way (PostgreSQL ``users_email_key``, SQLite nothing at
# all), and a migration that drops or alters one could not say which. SQLite's batch mode
# (shared/migrations/env.py) copies a table to change it, and needs the names to do so.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every table of the service."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend.

    SQLite has no timezone type and hands back naive datetimes; this type stores UTC and
    re-attaches it, so ``created_at`` serialises the same way on SQLite and PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def database_url(raw: str) -> URL:
    """Parse a URL; a bare ``postgresql://`` means psycopg 3 (SQLAlchemy would pick psycopg2)."""
    url = make_url(raw)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _engine_options(url: URL, pool_size: int, timeouts: DatabaseTimeouts) -> dict[str, Any]:
    # hide_parameters: a database error's message would otherwise carry the statement's
    # values into the logs, and one of them may be a password hash.
    options: dict[str, Any] = {
        "hide_parameters": True,
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_timeout": timeouts.pool,
    }
    if url.get_backend_name() == "postgresql":
        options["connect_args"] = _postgresql_timeouts(url, timeouts)
    return options


def _postgresql_timeouts(url: URL, timeouts: DatabaseTimeouts) -> dict[str, Any]:
    """Connect timeout, and ``statement_timeout`` set by the server at connection start-up
    (no extra round trip). asyncpg also bounds each command on the client; psycopg through
    :class:`~shared.infrastructure.timeouts.BoundedConnection` (``_bound_psycopg``), and in
    asyncio mode through ``BoundedAsyncConnection``."""
    if url.get_driver_name() == "asyncpg":
        return {
            "timeout": timeouts.connect,
            "command_timeout": timeouts.client_statement,
            "server_settings": {"statement_timeout": str(timeouts.statement_ms)},
        }
    # Appended to any ``?options=`` of the URL, which connect_args would otherwise replace.
    given = url.query.get("options", "")
    setting = f"-c statement_timeout={timeouts.statement_ms}"
    options = f"{given} {setting}".strip() if isinstance(given, str) else setting
    bounds = {"connect_timeout": timeouts.connect, "options": options}
    if url.get_driver_name() == "psycopg_async":
        return {**bounds, "async_creator_fn": bounded_async_connector(timeouts)}
    return bounds


def _read_only(options: dict[str, Any]) -> dict[str, Any]:
    """Options for a pool that only ever runs single SELECTs.

    Autocommit is set once per connection (an ``execution_options`` copy of another engine
    would switch it at every checkout and back at every return), and there is no transaction
    to roll back on return. There is no pre-ping either: that is one more round trip per
    request; :func:`retry_once_if_disconnected` handles a dead connection instead.
    """
    # A fixed pool (no overflow): an overflow connection is closed when it comes back, so
    # bursts would open and close connections all day (bench/README.md measured the cost).
    return {
        **options,
        "isolation_level": "AUTOCOMMIT",
        "pool_reset_on_return": None,
        "max_overflow": 0,
    }


def _unpooled(options: dict[str, Any]) -> dict[str, Any]:
    pool_only = ("pool_size", "max_overflow", "pool_timeout")
    return {**{k: v for k, v in options.items() if k not in pool_only}, "poolclass": NullPool}


def _sqlite_pragmas(timeouts: DatabaseTimeouts) -> Callable[[Any, Any], None]:
    def enable(dbapi_connection: Any, _record: Any) -> None:
        """Foreign keys are off by default in SQLite; WAL lets readers run beside a writer;
        busy_timeout is how long a writer waits for the lock before "database is locked"."""
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={timeouts.statement_ms}")
        cursor.close()

    return enable


def _bound_psycopg(timeouts: DatabaseTimeouts) -> Callable[..., Any]:
    def connect(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> Any:
        return bounded_connect(timeouts, cparams)

    return connect


def _sync_engine(url: URL, options: dict[str, Any], timeouts: DatabaseTimeouts) -> Engine:
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(timeouts))
    elif url.get_driver_name() == "psycopg":
        event.listen(engine, "do_connect", _bound_psycopg(timeouts))
    return engine


def make_engine(raw_url: str, *, pool_size: int, timeouts: DatabaseTimeouts) -> Engine:
    """The engine for transactions: every service that writes."""
    url = database_url(raw_url)
    # pre_ping turns a connection the server closed (restart, idle timeout) into a reconnect
    # instead of a 500; its round trip is small beside a transaction's.
    options = {**_engine_options(url, pool_size, timeouts), "pool_pre_ping": True}
    return _sync_engine(url, options, timeouts)


def make_read_engine(raw_url: str, *, pool_size: int, timeouts: DatabaseTimeouts) -> Engine:
    """A second pool, for the read-only lookups every authenticated request makes."""
    url = database_url(raw_url)
    return _sync_engine(url, _read_only(_engine_options(url, pool_size, timeouts)), timeouts)


def make_probe_engine(raw_url: str, *, timeouts: DatabaseTimeouts) -> Engine:
    """For /health alone: no pool, so a probe never waits behind user requests for a
    connection, and each probe proves that a new connection can be made — what a restarted
    process needs. A probe every few seconds costs PostgreSQL one short-lived backend each."""
    url = database_url(raw_url)
    return _sync_engine(url, _unpooled(_engine_options(url, 1, timeouts)), timeouts)


def make_async_read_engine(
    raw_url: str, *, pool_size: int | None, timeouts: DatabaseTimeouts
) -> AsyncEngine:
    """The read pool through an asyncio driver, for an event loop; PostgreSQL only.

    asyncpg: on ``GET /users/me`` it served about 30 % more requests per second than psycopg's
    async mode (bench/README.md). asyncpg does not take libpq's URL options, though
    (``?sslmode=require``, ``application_name``, ...), so a URL with options keeps psycopg,
    which reads them as every other connection of the service does.
    """
    url = database_url(raw_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"no asyncio read engine for {url.get_backend_name()}")
    driver = "psycopg_async" if url.query else "asyncpg"
    url = url.set(drivername=f"postgresql+{driver}")
    if pool_size is None:  # the probe's: no pool (see make_probe_engine)
        return create_async_engine(url, **_unpooled(_engine_options(url, 1, timeouts)))
    return create_async_engine(url, **_read_only(_engine_options(url, pool_size, timeouts)))


P = ParamSpec("P")
R = TypeVar("R")


def retry_once_if_disconnected(read: Callable[P, R]) -> Callable[P, R]:
    """Run a read-only lookup again, once, if it failed on a connection that had died.

    SQLAlchemy's "optimistic" disconnect handling: the failure invalidates the whole pool
    (every connection as old as the dead one), so the retry gets a fresh connection. Only
    for reads: running a write twice is not safe.
    """

    @functools.wraps(read)
    def reading(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return read(*args, **kwargs)
        except exc.DBAPIError as error:
            # A server that did not answer in time will not answer a retry sooner.
            if not error.connection_invalidated or isinstance(error.orig, ServerTimeout):
                raise
            return read(*args, **kwargs)

    return reading


def retry_once_if_disconnected_async(
    read: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """:func:`retry_once_if_disconnected` for a coroutine function.

    asyncpg's own connect errors and its ``command_timeout`` come through SQLAlchemy as bare
    ``OSError`` / ``TimeoutError``: here, where they can only be the database's, they become
    :class:`~shared.infrastructure.outages.DatabaseUnreachable`, and are not retried.
    """

    @functools.wraps(read)
    async def reading(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return await read(*args, **kwargs)
            except exc.DBAPIError as error:
                if not error.connection_invalidated or isinstance(error.orig, ServerTimeout):
                    raise
                return await read(*args, **kwargs)
        except (OSError, TimeoutError) as error:
            raise DatabaseUnreachable(str(error) or type(error).__name__) from error

    return reading


@asynccontextmanager
async def async_read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection of an asyncio read engine that is never pooled again after a timeout.

    asyncpg's ``command_timeout`` leaves the connection mid-exchange, with a cancel request
    pending that a frozen server never answers; SQLAlchemy does not see that as a disconnect.
    """
    async with engine.connect() as connection:
        try:
            yield connection
        except (OSError, TimeoutError):
            await connection.invalidate()
            raise


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: services return them to be serialised.
    return sessionmaker(engine, expire_on_commit=False)
