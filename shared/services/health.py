"""Readiness: a process that cannot reach its database cannot serve a single request."""

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from shared import errors
from shared.schemas import Health


def check(*, engine: Engine) -> Health:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        raise errors.DatabaseUnavailable from None
    return Health()
