"""A fresh, empty database per twin: a SQLite file, or a PostgreSQL database of its own."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import make_url


@contextlib.contextmanager
def fresh(kind: str, twin: str, workdir: Path, postgres_url: str | None) -> Iterator[str | None]:
    """The URL of an empty database for ``twin``; None when PostgreSQL is not reachable."""
    if kind == "sqlite":
        path = workdir / f"{twin}.db"
        for leftover in workdir.glob(f"{twin}.db*"):
            leftover.unlink()
        yield f"sqlite:///{path}"
        return
    if not postgres_url:
        yield None
        return
    admin = make_url(postgres_url).set(drivername="postgresql")
    name = f"authtwin_bench_{twin}"
    try:
        _recreate(admin.render_as_string(hide_password=False), name)
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        _drop(admin.render_as_string(hide_password=False), name)


def _recreate(admin_url: str, name: str) -> None:
    _drop(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
