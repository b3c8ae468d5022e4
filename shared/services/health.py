"""Readiness: a process that cannot reach its database cannot serve a single request."""

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain import errors
from shared.domain.schemas import Health
from shared.infrastructure.db import retry_once_if_disconnected, retry_once_if_disconnected_async


def check(*, engine: Engine) -> Health:
    try:
        _select_one(engine)
    except SQLAlchemyError:
        raise errors.DatabaseUnavailable from None
    return Health()


async def check_async(*, engine: AsyncEngine) -> Health:
    try:
        await _select_one_async(engine)
    # asyncpg's own connect errors (refused, timed out) reach us as OSError, unwrapped.
    except (SQLAlchemyError, OSError):
        raise errors.DatabaseUnavailable from None
    return Health()


# A pooled connection the server has closed is not an outage; a retry on a fresh one tells.
@retry_once_if_disconnected
def _select_one(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


@retry_once_if_disconnected_async
async def _select_one_async(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
