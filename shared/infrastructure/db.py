"""Declarative base, a UTC-safe datetime type, and the engines: one for writes, one for reads."""

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import URL, DateTime, Engine, MetaData, create_engine, event, exc, make_url
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

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


def _engine_options(url: URL, pool_size: int) -> dict[str, Any]:
    # hide_parameters: a database error's message would otherwise carry the statement's
    # values into the logs, and one of them may be a password hash.
    options: dict[str, Any] = {
        "hide_parameters": True,
        "pool_size": pool_size,
        "max_overflow": pool_size,
    }
    if url.get_backend_name() != "sqlite":
        # connect_timeout: an unreachable server fails /health in seconds, not the OS's minutes.
        timeout = "timeout" if url.get_driver_name() == "asyncpg" else "connect_timeout"
        options["connect_args"] = {timeout: 5}
    return options


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


def _enable_sqlite_integrity(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys are off by default in SQLite; WAL lets readers run beside a writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sync_engine(url: URL, options: dict[str, Any]) -> Engine:
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_integrity)
    return engine


def make_engine(raw_url: str, *, pool_size: int) -> Engine:
    """The engine for transactions: every service that writes."""
    url = database_url(raw_url)
    # pre_ping turns a connection the server closed (restart, idle timeout) into a reconnect
    # instead of a 500; its round trip is small beside a transaction's.
    return _sync_engine(url, {**_engine_options(url, pool_size), "pool_pre_ping": True})


def make_read_engine(raw_url: str, *, pool_size: int) -> Engine:
    """A second pool, for the read-only lookups every authenticated request makes."""
    url = database_url(raw_url)
    return _sync_engine(url, _read_only(_engine_options(url, pool_size)))


def make_async_read_engine(raw_url: str, *, pool_size: int) -> AsyncEngine:
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
    return create_async_engine(url, **_read_only(_engine_options(url, pool_size)))


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
            if not error.connection_invalidated:
                raise
            return read(*args, **kwargs)

    return reading


def retry_once_if_disconnected_async(
    read: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """:func:`retry_once_if_disconnected` for a coroutine function."""

    @functools.wraps(read)
    async def reading(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await read(*args, **kwargs)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            return await read(*args, **kwargs)

    return reading


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: services return them to be serialised.
    return sessionmaker(engine, expire_on_commit=False)
