"""Schema migrations: bring a database to the code's schema, or check that it is there.

The revisions live in shared/migrations/ (Alembic's environment). Everything runs them
through here: ``authtwin migrate``, start-up in development, the tests. The database is the
one the apps use (``Settings.database_url``), and one migration runs at a time (see
:func:`_serialised`).
"""

import contextlib
import functools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy import Connection, Engine, create_engine, exc, inspect, text
from sqlalchemy.pool import NullPool

from shared.infrastructure.config import Settings
from shared.infrastructure.db import database_url

# Raised when no connection could be opened: start-up goes on, and /health reports it.
from shared.infrastructure.outages import DatabaseUnreachable

logger = logging.getLogger("authtwin")

SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"
# The PostgreSQL advisory lock every migration holds: "authtwin" in ASCII, as a bigint. Any
# fixed number does, as long as nothing else in the database locks the same one.
LOCK_KEY = 0x6175_7468_7477_696E
# How long a second migration waits on SQLite for the first to finish (the driver's default
# is 5 s; a migration copying a big table in batch mode takes longer).
SQLITE_WAIT_SECONDS = 60


class CompareOptions(TypedDict):
    """How Alembic compares the models with a database (autogenerate, and the tests' `alembic
    check`): column types and server defaults too, not only tables, columns and indexes."""

    compare_type: bool
    compare_server_default: bool


COMPARE_OPTIONS = CompareOptions(compare_type=True, compare_server_default=True)


class SchemaNotCurrent(Exception):
    """The database is reachable but not at the code's revision: refuse to serve it."""


def _config(connection: Connection | None = None) -> Config:
    # Built in code, not from an alembic.ini: the URL is the apps' setting, and nothing else
    # here is configurable. env.py takes the connection from `attributes`.
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    # A new revision is formatted as the rest of the code (ruff, a dev dependency).
    config.set_section_option("post_write_hooks", "hooks", "fix, format")
    for hook, arguments in (("fix", "check --fix --quiet"), ("format", "format --quiet")):
        config.set_section_option("post_write_hooks", f"{hook}.type", "exec")
        config.set_section_option("post_write_hooks", f"{hook}.executable", _RUFF)
        config.set_section_option(
            "post_write_hooks", f"{hook}.options", f"{arguments} REVISION_SCRIPT_FILENAME"
        )
    return config


_RUFF = str(Path(sys.executable).with_name("ruff"))


def _engine(settings: Settings) -> Engine:
    """An engine for one migration: a single connection, without the apps' pool.

    Unlike the apps' engines, SQLite's foreign keys stay off: batch mode rebuilds a table by
    copying it and dropping the original, and with foreign keys on, dropping ``users`` would
    cascade to every refresh token. :func:`_serialised` checks the keys once it is done.
    """
    url = database_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return create_engine(url, poolclass=NullPool, connect_args={"timeout": SQLITE_WAIT_SECONDS})
    timeout = settings.db_connect_timeout_seconds  # the apps' setting: one answer to "how long"
    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": timeout})


@contextlib.contextmanager
def _connection(settings: Settings) -> Iterator[Connection]:
    engine = _engine(settings)
    try:
        try:
            connection = engine.connect()
        except exc.DBAPIError as error:
            raise DatabaseUnreachable(str(error.orig)) from error
        with connection:
            yield connection
    finally:
        engine.dispose()


@contextlib.contextmanager
def _serialised(connection: Connection) -> Iterator[None]:
    """One migration at a time: a second one waits, then finds the work done.

    Without this, two processes (two replicas, a deploy job and a developer) both see no
    ``alembic_version`` table and both create the tables; one of them fails half-way.

    - PostgreSQL: a session-level advisory lock (``LOCK_KEY``) on the migration's own
      connection, held from before Alembic reads the current revision until after it
      committed the last one. It is released if the process dies (the session ends), and
      it blocks no one but another migration.
    - SQLite has no advisory locks, so the whole migration is one ``BEGIN EXCLUSIVE``
      transaction: SQLite's DDL is transactional, and the second process waits for the
      first to commit (``SQLITE_WAIT_SECONDS``). A lock file beside the database would work
      too, but could be left behind by a killed process; the database's own lock cannot.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        connection.commit()  # Alembic then runs its own transaction; the lock outlives it
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            connection.commit()
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN EXCLUSIVE")  # Alembic joins this transaction
        yield
        if broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all():
            connection.rollback()
            raise RuntimeError(f"the migration broke foreign keys, rolled back: {broken}")
        connection.commit()
    else:
        raise RuntimeError(f"no migration lock for {connection.dialect.name}")


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the code's, by default), one migration at a time."""
    _refuse_tables_without_history(settings)
    with _connection(settings) as connection, _serialised(connection):
        command.upgrade(_config(connection), revision)


def _refuse_tables_without_history(settings: Settings) -> None:
    """A database whose tables were created before migrations existed (by start-up's old
    ``create_all``) would fail half-way with "table users already exists"; say why instead.

    Checked before the lock: a migration running meanwhile has either committed (there is a
    revision) or not (there are no tables yet, as far as this connection can see).
    """
    with _connection(settings) as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
    if revision is None and tables:
        raise SchemaNotCurrent(
            f"the database has tables ({', '.join(sorted(tables))}) but no migration "
            "history: it was created before migrations existed. In development, delete it "
            "(e.g. ./authtwin.db) and start again; its data cannot be migrated."
        )


def downgrade(settings: Settings, revision: str) -> None:
    """Take the database back to ``revision`` (``base``: no tables at all)."""
    with _connection(settings) as connection, _serialised(connection):
        command.downgrade(_config(connection), revision)


def new_revision(settings: Settings, message: str) -> Path:
    """Write the next revision: what the models have that the database (at head) has not.

    Read it before committing it: autogenerate cannot see a renamed column (it writes a drop
    and an add) and does not compare everything (e.g. SQLite's AUTOINCREMENT).
    """
    with _connection(settings) as connection:
        check(settings)
        config = _config(connection)
        # Numbered in order (0002_add_x.py), easier to follow than Alembic's random ids.
        number = len(list(ScriptDirectory.from_config(config).walk_revisions())) + 1
        script = command.revision(
            config, message=message, autogenerate=True, rev_id=f"{number:04d}"
        )
    if script is None or isinstance(script, list):
        raise RuntimeError("Alembic wrote no single revision")
    return Path(script.path)


@functools.cache
def head_revision() -> str | None:
    """The revision the code needs; the files do not change while the process runs."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(settings: Settings) -> str | None:
    """The database's revision; None when no migration ever ran there."""
    with _connection(settings) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's (an unknown one was written later)."""
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except AlembicCommandError:
        return False


def check(settings: Settings) -> None:
    """Raise :class:`SchemaNotCurrent` unless the database is at the code's revision, or at
    one newer than this code knows.

    Newer is allowed for rolling deploys: the new release migrates, and the old release's
    replicas keep running (and restarting) until they are replaced. That holds only if every
    revision is backward compatible with the release before it — add first, remove a release
    later (expand, then contract) — which is the rule for writing them (README: Operations).
    """
    current, head = current_revision(settings), head_revision()
    if current is not None and current != head and not _known(current):
        logger.warning(
            "database at revision %s, newer than this code's %s: starting, as revisions "
            "stay compatible with the release before them",
            current,
            head,
        )
        return
    if current != head:
        found = f"at revision {current}" if current else "not migrated (no revision)"
        raise SchemaNotCurrent(
            f"the database is {found}; this code needs revision {head}. "
            "Run `authtwin migrate` (the same AUTHTWIN_* settings) before starting the server."
        )
