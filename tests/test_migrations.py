"""Schema migrations, on SQLite and PostgreSQL: the revisions build the models' schema
exactly, undo it, run safely from several processes at once, and start-up uses them as each
environment should (development migrates; production creates nothing and refuses a
database that is not at the code's revision).

Each PostgreSQL case gets a database of its own on the test server, created and dropped
here; the suite's shared databases are never touched.
"""

import logging
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import create_engine, inspect, text

import shared.domain.models  # noqa: F401 — the tables, on Base.metadata
from shared.infrastructure import migrations
from shared.infrastructure.db import Base, database_url
from shared.runtime import Runtime
from tests.conftest import ADMIN_EMAIL, in_process_settings, production_settings

pytestmark = pytest.mark.in_process  # databases and processes of its own
ROOT = Path(__file__).resolve().parent.parent
MIGRATORS = 3  # `authtwin migrate` processes started at once
Fresh = Callable[[], str]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fresh]:
    """``fresh()`` → the URL of a new, empty database of this case's kind."""
    if request.param == "sqlite":
        paths = (tmp_path / f"db{n}.sqlite" for n in range(100))
        yield lambda: f"sqlite:///{next(paths)}"
        return
    raw = os.environ.get("AUTHTWIN_TEST_POSTGRES_URL")
    if not raw:
        pytest.skip("AUTHTWIN_TEST_POSTGRES_URL is not set")
    server = database_url(raw)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    created: list[str] = []

    def make() -> str:
        name = f"authtwin_migrations_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    try:
        psycopg.connect(admin, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is unreachable: {exc}")
    yield make
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        for name in created:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))


def schema_of(url: str) -> dict[str, Any]:
    """Everything the service relies on in a database's schema, as the database reports it:
    each table's columns (type, nullability, default), keys, indexes and constraints by
    name, and on SQLite the statements themselves (which alone show AUTOINCREMENT)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = inspect(connection)
            schema: dict[str, Any] = {
                table: {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in found.get_columns(table)
                    ],
                    "primary key": found.get_pk_constraint(table),
                    "foreign keys": found.get_foreign_keys(table),
                    "indexes": [_comparable(index) for index in found.get_indexes(table)],
                    "unique": found.get_unique_constraints(table),
                }
                for table in found.get_table_names()
                if table != "alembic_version"
            }
            if connection.dialect.name == "sqlite":
                statements = text(
                    "SELECT name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version'"
                )
                # SQLite alters a table by creating a copy, whose name Alembic quotes.
                schema["sqlite_master"] = sorted(
                    (name, re.sub(r'^CREATE TABLE "(\w+)"', r"CREATE TABLE \1", sql or ""))
                    for name, sql in connection.execute(statements).all()
                )
            return schema
    finally:
        engine.dispose()


def _comparable(index: Any) -> dict[str, Any]:
    """A reflected index with its options as text: SQLite reflects a partial index's WHERE
    as a clause object, which compares by identity."""
    options = {name: str(value) for name, value in index.get("dialect_options", {}).items()}
    return {**index, "dialect_options": options}


def differences(url: str) -> list[Any]:
    """What `alembic check` reports: what the models have that the database has not."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={**migrations.COMPARE_OPTIONS})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def revisions_in(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.scalars(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


def test_models_and_migrations_agree(fresh: Fresh) -> None:
    url = fresh()
    migrations.upgrade(in_process_settings(url))
    assert differences(url) == []


def test_the_first_revision_is_the_schema_the_models_describe(fresh: Fresh) -> None:
    """Not only what autogenerate compares: every index, key and ``ON DELETE`` by name."""
    migrated, created = fresh(), fresh()
    migrations.upgrade(in_process_settings(migrated))
    engine = create_engine(created)
    Base.metadata.create_all(engine)
    engine.dispose()
    assert schema_of(migrated) == schema_of(created)


def test_downgrade_to_base_and_upgrade_again_leaves_the_same_schema(fresh: Fresh) -> None:
    url = fresh()
    settings = in_process_settings(url)
    migrations.upgrade(settings)
    before = schema_of(url)
    migrations.downgrade(settings, "base")
    left = {t for t in schema_of(url) if t not in {"sqlite_master", "sqlite_sequence"}}
    assert (left, migrations.current_revision(settings)) == (set(), None)
    migrations.upgrade(settings)
    assert schema_of(url) == before
    assert revisions_in(url) == [migrations.head_revision()]


# `authtwin migrate`, held at the start line once imported (a second or two, more on a busy
# machine) until every process is there: started by Popen alone they would arrive one by
# one, and rarely meet. The start signal is the end of their shared standard input.
MIGRATE_ON_GO = (
    "import sys; from shared.cli import main; print('ready', flush=True); "
    "sys.stdin.read(); sys.exit(main(['migrate']))"
)


def migrator(env: dict[str, str], stdin: int) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 — our own interpreter and command
        [sys.executable, "-c", MIGRATE_ON_GO], env=env, cwd=ROOT, text=True, stdin=stdin,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def migrators(url: str, count: int) -> list[subprocess.Popen[str]]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHTWIN_")}
    # The servers' settings, as a deploy job has them: production, so a secret too.
    env["AUTHTWIN_DATABASE_URL"] = url
    env["AUTHTWIN_SECRET_KEY"] = secrets.token_urlsafe(32)
    start_line, go = os.pipe()
    try:
        processes = [migrator(env, start_line) for _ in range(count)]
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
    finally:
        os.close(start_line)
        os.close(go)  # every one of them reads the end of its input at once
    return processes


def test_migrations_started_at_once_all_succeed_and_migrate_once(fresh: Fresh) -> None:
    """Replicas (or a deploy job and a developer) migrating one new database together: the
    lock makes each wait for the one before, which then finds the work done. Without it
    (`_serialised` a no-op), this failed in 5 runs out of 5 on each database: a process
    or two exited with a traceback, creating a table another had just created."""
    url = fresh()
    processes = migrators(url, MIGRATORS)
    outcomes = []
    for process in processes:
        output, _ = process.communicate(timeout=60)
        outcomes.append((process.returncode, output))
    assert [code for code, _ in outcomes] == [0] * MIGRATORS, outcomes
    assert revisions_in(url) == [migrations.head_revision()]
    assert differences(url) == []


def test_production_start_up_creates_nothing_and_names_the_command(fresh: Fresh) -> None:
    url = fresh()
    runtime = Runtime.build(production_settings(url))
    try:
        with pytest.raises(migrations.SchemaNotCurrent, match="Run `authtwin migrate`"):
            runtime.prepare()
    finally:
        runtime.dispose()
    assert schema_of(url) in ({}, {"sqlite_master": []})


def test_production_start_up_refuses_a_database_behind_the_code(fresh: Fresh) -> None:
    url = fresh()
    settings = production_settings(url)
    migrations.upgrade(settings)
    migrations.downgrade(settings, "base")  # as a database an older release left would be
    runtime = Runtime.build(settings)
    try:
        with pytest.raises(migrations.SchemaNotCurrent, match="not migrated"):
            runtime.prepare()
    finally:
        runtime.dispose()


def test_a_database_newer_than_the_code_is_served_for_rolling_deploys(
    fresh: Fresh, caplog: pytest.LogCaptureFixture
) -> None:
    """The next release migrated; this one's replicas must still (re)start until replaced."""
    url = fresh()
    settings = production_settings(url)
    migrations.upgrade(settings)
    engine = create_engine(url)
    with engine.begin() as connection:  # as a revision this code has never seen would leave it
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0002'"))
    engine.dispose()
    runtime = Runtime.build(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="authtwin"):
            runtime.prepare()
    finally:
        runtime.dispose()
    assert any("newer than this code's" in r.getMessage() for r in caplog.records)


def test_tables_from_before_migrations_are_refused_with_the_reason(fresh: Fresh) -> None:
    """A database `create_all` made at start-up (before this release) has no history:
    upgrading it would fail on "table users already exists"."""
    url = fresh()
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    with pytest.raises(migrations.SchemaNotCurrent, match="created before migrations existed"):
        migrations.upgrade(in_process_settings(url))


def test_development_start_up_migrates(fresh: Fresh) -> None:
    """So that `make run` works on a fresh checkout; the first superuser comes after."""
    url = fresh()
    settings = in_process_settings(url, env="development")
    runtime = Runtime.build(settings)
    try:
        runtime.prepare()
        with runtime.sessions() as session:
            admins = session.scalars(text("SELECT email FROM users")).all()
    finally:
        runtime.dispose()
    assert migrations.current_revision(settings) == migrations.head_revision()
    assert admins == [ADMIN_EMAIL]


def test_an_unreachable_database_at_start_up_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refusing to start would turn an outage into a crash loop; /health reports it."""
    runtime = Runtime.build(production_settings("postgresql+psycopg://postgres@127.0.0.1:9/x"))
    try:
        with caplog.at_level(logging.WARNING, logger="authtwin"):
            runtime.prepare()
    finally:
        runtime.dispose()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "database unreachable at start-up"
    ]
