"""Readiness: can this process serve requests? Its database and, when configured, Redis.

Liveness (is the process itself alive?) depends on nothing and has no service: each twin's
``/health/live`` answers at once. A probe runs on the runtime's ``probe_engine``, which has
no pool (infrastructure/db.py ``make_probe_engine``), so it never waits behind user traffic.
"""

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.schemas import Health
from shared.infrastructure.outages import DatabaseUnreachable
from shared.security.throttle import Throttle


def check(*, engine: Engine, throttle: Throttle) -> Health:
    """A database error is not caught here: the twins' handlers answer an outage 503 and
    log it, as on every other route, and a bug stays a 500."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    throttle.check()
    return Health()


async def check_database_async(*, engine: AsyncEngine) -> None:
    """The database half of :func:`check`, awaited on the event loop (FastAPI, PostgreSQL)."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    # asyncpg's own connect errors and timeouts reach us as OSError, unwrapped.
    except OSError as error:
        raise DatabaseUnreachable(str(error) or type(error).__name__) from error
