"""How Alembic reaches the database: through the connection the runner hands it.

shared/infrastructure/migrations.py opens that connection from the service's own Settings
(``AUTHTWIN_DATABASE_URL``) and takes the migration lock on it first, so there is no second
place to configure the URL, and no way to migrate without the lock.
"""

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlalchemy.types import TypeDecorator

import shared.domain.models  # noqa: F401 — defining the models puts their tables in TARGET
from shared.infrastructure.db import Base
from shared.infrastructure.migrations import COMPARE_OPTIONS

TARGET = Base.metadata


def render_item(kind: str, item: Any, _autogen: AutogenContext) -> str | Literal[False]:
    """Write a column of a custom type (``UTCDateTime``) as the type the database stores.

    A revision is history: it must create today the table it created then, so it never
    imports the service's code, which will change.
    """
    if kind == "type" and isinstance(item, TypeDecorator):
        return f"sa.{item.impl!r}"
    return False  # Alembic's own rendering


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=TARGET,
        # Every revision runs on SQLite and PostgreSQL. SQLite cannot ALTER most things, so
        # autogenerate writes `with op.batch_alter_table(...)`: on SQLite Alembic then copies
        # the table with the change, on PostgreSQL it runs plain ALTERs.
        render_as_batch=True,
        render_item=render_item,
        **COMPARE_OPTIONS,
    )


def run() -> None:
    if context.is_offline_mode():
        raise SystemExit("SQL scripts (--sql) are not supported: run `authtwin migrate`")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise SystemExit("run migrations with `authtwin migrate`, which opens the connection")
    configure(connection)
    with context.begin_transaction():
        context.run_migrations()


run()
