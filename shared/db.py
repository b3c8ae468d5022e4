"""Declarative base, a UTC-safe datetime type and engine factories (sync and async)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import URL, DateTime, Engine, create_engine, event, exc, make_url
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    """Every table of the service."""


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
    if url.get_backend_name() == "sqlite":
        return {"hide_parameters": True}
    # pre_ping turns a connection the server closed (restart, idle timeout) into a reconnect
    # instead of a 500 on the next request.
    # connect_timeout: an unreachable server fails /health in seconds, not the OS's minutes.
    return {
        "hide_parameters": True,
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_pre_ping": True,
        "connect_args": {"connect_timeout": 5},
    }


def _enable_sqlite_integrity(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys are off by default in SQLite; WAL lets readers run beside a writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(raw_url: str, *, pool_size: int) -> Engine:
    url = database_url(raw_url)
    engine = create_engine(url, **_engine_options(url, pool_size))
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_integrity)
    return engine


def make_async_engine(raw_url: str, *, pool_size: int) -> AsyncEngine:
    """The same database through an asyncio driver (psycopg's async mode, or aiosqlite)."""
    url = database_url(raw_url)
    if url.get_backend_name() == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    engine = create_async_engine(url, **_engine_options(url, pool_size))
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _enable_sqlite_integrity)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: services return them to be serialised.
    return sessionmaker(engine, expire_on_commit=False)


def create_tables(engine: Engine, *, attempts: int = 5) -> None:
    """Create missing tables. Workers starting together race table by table (one creates
    ``users`` while another checks it), so each attempt resumes where the last one lost."""
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            return
        except exc.DBAPIError:
            if attempt == attempts - 1:
                raise
