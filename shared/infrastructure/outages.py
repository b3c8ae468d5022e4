"""Which failures are the database being unavailable (an outage), and which are bugs.

An outage is answered 503 with ``Retry-After`` and logged as one WARNING line: the service is
fine, its database is not, and a traceback per request would bury the one line that says so.
Anything else stays a bug: a 500 with its traceback. The twins' error handlers ask
:func:`is_database_outage`; nothing else decides.
"""

import logging
import sqlite3

import psycopg
from sqlalchemy import exc

from shared.infrastructure.timeouts import CommitOutcomeUnknown

logger = logging.getLogger("authtwin")

# PostgreSQL SQLSTATE classes that mean "not now", not "wrong": 08 connection exception,
# 53 insufficient resources (too many connections, out of memory, disk full), 57 operator
# intervention (57014 query_canceled — our statement_timeout —, 57P01 admin_shutdown,
# 57P03 cannot_connect_now while the server starts or recovers). And the two that only
# connecting raises: 28 invalid authorization (a wrong password) and 3D invalid catalog name
# (no such database). psycopg reports those without a SQLSTATE, as it does a refused
# connection, asyncpg with one; the twins must answer them alike: the service cannot reach
# its database, whatever the reason, and the log line says which.
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "28", "3D"})
# SQLite's "not now": another connection holds the write lock past busy_timeout, or the
# file's storage is gone (a volume not mounted, a directory removed or made unreadable).
SQLITE_UNAVAILABLE = ("database is locked", "database is busy", "unable to open database file")


class DatabaseUnreachable(Exception):
    """asyncpg's own connection errors and timeouts, which SQLAlchemy passes on unwrapped as
    plain ``OSError`` / ``TimeoutError``; raised only around a database call, so that a
    plain ``OSError`` anywhere else is still a bug."""


def is_database_outage(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnreachable | exc.TimeoutError):  # TimeoutError: pool checkout
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    if isinstance(error.orig, CommitOutcomeUnknown):  # closed, but must not be retried
        return False
    if error.connection_invalidated:  # refused, reset, closed, or our client-side timeout
        return True
    return error.orig is not None and _is_outage(error.orig)


def _is_outage(driver_error: BaseException) -> bool:
    if isinstance(driver_error, sqlite3.OperationalError):
        return str(driver_error).startswith(SQLITE_UNAVAILABLE)
    sqlstate = getattr(driver_error, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in OUTAGE_SQLSTATE_CLASSES
    # psycopg: an OperationalError without a SQLSTATE never reached the server (refused,
    # unreachable, connect timeout, connection lost, timeouts.ServerTimeout).
    return isinstance(driver_error, psycopg.OperationalError)


def log_outage(error: BaseException) -> None:
    """One line, no traceback: what failed and the driver's first line about it."""
    cause = error.orig if isinstance(error, exc.DBAPIError) else (error.__cause__ or error)
    first_line = (str(cause).strip().splitlines() or [""])[0]
    logger.warning("database unavailable: %s: %s", type(cause).__name__, first_line[:200])
