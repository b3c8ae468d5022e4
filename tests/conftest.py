"""Targets, databases and accounts for the contract suite.

In-process, every test runs once per app and database (``fastapi-sqlite``, ``flask-postgresql``,
…) on a clean database. With ``--base-url`` it runs once, over HTTP, against that server; the
superuser and signing key it needs then come from the same ``AUTHTWIN_*`` variables the server
was started with.
"""

import atexit
import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx2
import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy import Engine, create_engine, text

from shared.infrastructure import migrations
from shared.infrastructure.config import Settings
from shared.infrastructure.db import Base, database_url
from tests.clients import APPS, live_client
from tests.live import STREAM_SETTINGS
from tests.mailbox import Mailbox, mailbox  # noqa: F401 — a fixture, found by pytest here
from tests.private_services import PrivateRedis, missing_binaries, private_redis
from tests.served import SERVERS
from tests.support import Account, Api, log_in, sign_up

IN_CI = os.environ.get("CI", "").lower() == "true"
# Generated once and fixed, so a failing run can be replayed; it must pass the secret rules.
TEST_SECRET = "NtXSwdn2woyzqsKdmq6g5wwka5GEwUiGQlHxTCN7i5uB"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"
DATABASES = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--base-url",
        default=None,
        help="run the contract suite over HTTP against this live server (e.g. http://127.0.0.1:8000)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name in ("target", "configured", "served"):
        if name in metafunc.fixturenames:
            if metafunc.config.getoption("--base-url"):
                metafunc.parametrize(name, ["live"], indirect=True)
            else:
                ids = [f"{app}-{db}" for app in APPS for db in DATABASES]
                metafunc.parametrize(name, ids, indirect=True)
    if "app_name" in metafunc.fixturenames:
        metafunc.parametrize("app_name", list(APPS))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--base-url"):
        marker, reason = "in_process", "needs the apps in this process; not run against --base-url"
    else:
        marker, reason = "live", "needs a real server's HTTP parsing; run by python -m tests.live"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if marker in item.keywords:
            item.add_marker(skip)


# OWASP's argon2id minimum, the default: production refuses anything cheaper.
OWASP_ARGON2: dict[str, object] = {"argon2_memory_kib": 19_456, "argon2_time_cost": 2}


def in_process_settings(database: str, **overrides: object) -> Settings:
    """Settings for an in-process app: development, for its cheap argon2 (the suite hashes
    thousands of passwords; the production cost is tested on its own). Its secret is given,
    so it is checked as production's is. Development also migrates at start-up, which finds
    the database already migrated; the tests of production's start-up use
    ``production_settings``."""
    values: dict[str, object] = {
        "env": "development",
        "secret_key": TEST_SECRET,
        "database_url": database,
        "argon2_memory_kib": 1024,
        "argon2_time_cost": 1,
        "first_superuser_email": ADMIN_EMAIL,
        "first_superuser_password": ADMIN_PASSWORD,
        "db_pool_size": 5,
        # The suite logs in hundreds of times from one address; the tests of the per-IP
        # limit turn it back on (the per-account lockout cannot be turned off).
        "rate_limit_enabled": False,
    }
    values.update(overrides)
    return Settings.model_validate(values)


def production_settings(database: str, **overrides: object) -> Settings:
    """``in_process_settings`` as a deployment has them: production, at OWASP's cost."""
    return in_process_settings(database, **{"env": "production", **OWASP_ARGON2, **overrides})


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A database of this test process's own, created for the run and dropped after it."""
    raw = os.environ.get("AUTHTWIN_TEST_POSTGRES_URL")
    if not raw:
        _missing_postgres("AUTHTWIN_TEST_POSTGRES_URL is not set")
    url = database_url(raw)
    # Named per process, so two runs at once (two checkouts, a watcher) never share one.
    name = f"authtwin_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _missing_postgres(f"PostgreSQL at {url.render_as_string()} is unreachable: {exc}")
    with admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = create_engine(url.set(database=name))
    # Migrated once; each test then empties the tables (database_for).
    migrations.upgrade(in_process_settings(engine.url.render_as_string(hide_password=False)))
    yield engine
    engine.dispose()
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _missing_postgres(reason: str) -> NoReturn:
    _missing("PostgreSQL", reason)


def _missing(service: str, reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI requires {service}: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis the throttling counters use on the PostgreSQL targets."""
    url = os.environ.get("AUTHTWIN_TEST_REDIS_URL")
    if not url:
        _missing("Redis", "AUTHTWIN_TEST_REDIS_URL is not set")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        _missing("Redis", f"Redis at {url} is unreachable: {exc}")
    return url


def storage_for(request: pytest.FixtureRequest, db: str) -> dict[str, object]:
    """The production pairing: PostgreSQL targets keep their counters in Redis (under a
    prefix of their own, so tests never share a counter); SQLite ones in memory."""
    if db != "postgresql":
        return {}
    url: str = request.getfixturevalue("redis_url")
    return {"redis_url": url, "redis_key_prefix": f"authtwin-test-{uuid.uuid4().hex}"}


@functools.cache
def _sqlite_template() -> Path:
    """A SQLite file migrated to head, once per test process (each xdist worker has one)."""
    directory = Path(tempfile.mkdtemp(prefix="authtwin-schema-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "migrated.db"
    migrations.upgrade(in_process_settings(f"sqlite:///{path}"))
    return path


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite file at ``path`` holding the migrated schema (and, if it already
    existed, whatever else it holds). Production apps create no table, so every in-process
    app gets one. A copy of a file migrated once: the suite builds some 1800 apps, and
    running the migrations for each would cost several times more."""
    if not path.exists():
        shutil.copyfile(_sqlite_template(), path)
    return f"sqlite:///{path}"


@pytest.fixture
def database_for(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``database_for("sqlite" | "postgresql")`` → the URL of a clean, migrated database."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return migrated_sqlite(tmp_path / "authtwin.db")
        engine: Engine = request.getfixturevalue("postgres_engine")
        with engine.begin() as connection:
            tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        return engine.url.render_as_string(hide_password=False)

    return make


@pytest.fixture(scope="session")
def inbox(request: pytest.FixtureRequest) -> Iterator[Mailbox]:
    """The suite's SMTP server, where the target delivers its mail (one for the run; tests
    tell their messages apart by recipient, every account's address being unique).

    In-process, a target's app is pointed at it when its test asks for ``inbox``. A live
    server was started pointing at ``AUTHTWIN_SMTP_HOST``/``AUTHTWIN_SMTP_PORT``, as any
    deployment can be: the suite listens there (tests/live.py sets both).
    """
    port = 0
    if request.config.getoption("--base-url"):
        if not os.environ.get("AUTHTWIN_SMTP_PORT"):
            pytest.skip("set AUTHTWIN_SMTP_HOST=127.0.0.1 and AUTHTWIN_SMTP_PORT for the server")
        port = int(os.environ["AUTHTWIN_SMTP_PORT"])
    with Mailbox(port=port) as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def _live_inbox(request: pytest.FixtureRequest) -> None:
    """Against a live server the inbox listens from the start: the server mails on every
    signup, and one refused delivery would pause its deliveries (services/mail_delivery.py)."""
    if request.config.getoption("--base-url") and os.environ.get("AUTHTWIN_SMTP_PORT"):
        request.getfixturevalue("inbox")


def mail_settings(request: pytest.FixtureRequest) -> dict[str, object]:
    """SMTP to the suite's inbox for a test that reads mail; the console otherwise."""
    if "inbox" not in request.fixturenames:
        return {}
    inbox: Mailbox = request.getfixturevalue("inbox")
    return {
        "mail_backend": "smtp",
        "smtp_host": inbox.host,
        "smtp_port": inbox.port,
        "smtp_security": "none",
        "smtp_timeout": 5,
    }


def live_api(client: httpx2.Client) -> Api:
    """The live server's account and keys, from the settings it was started with."""
    return Api(
        client=client,
        admin_email=os.environ.get("AUTHTWIN_FIRST_SUPERUSER_EMAIL"),
        admin_password=os.environ.get("AUTHTWIN_FIRST_SUPERUSER_PASSWORD"),
        secret_key=os.environ.get("AUTHTWIN_SECRET_KEY"),
        issuer=os.environ.get("AUTHTWIN_JWT_ISSUER", "authtwin"),
        audience=os.environ.get("AUTHTWIN_JWT_AUDIENCE", "authtwin-api"),
        refresh_audience=os.environ.get("AUTHTWIN_JWT_REFRESH_AUDIENCE", "authtwin-refresh"),
        client_id=os.environ.get("AUTHTWIN_JWT_CLIENT_ID", "authtwin"),
    )


@pytest.fixture
def target(request: pytest.FixtureRequest, database_for) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    if request.param == "live":
        with live_client(request.config.getoption("--base-url")) as client:
            yield live_api(client)
        return
    app, db = request.param.split("-")
    settings = in_process_settings(
        database_for(db), **storage_for(request, db), **mail_settings(request)
    )
    with APPS[app](settings) as client:
        yield Api(client, ADMIN_EMAIL, ADMIN_PASSWORD, TEST_SECRET)


ConfiguredApi = Callable[..., Api]


@pytest.fixture
def configured(request: pytest.FixtureRequest, database_for) -> Iterator[ConfiguredApi]:  # type: ignore[no-untyped-def]
    """``configured(**settings)`` → this target's app built with some settings changed.

    For protections whose trigger is a setting (a low rate limit, a CORS origin, an RS256
    key): in-process only, as a live server's settings are fixed when it starts.
    """
    if request.param == "live":
        pytest.skip("builds the app with its own settings; not run against --base-url")
    app, db = request.param.split("-")
    with ExitStack() as stack:

        def build(**overrides: object) -> Api:
            settings = in_process_settings(
                database_for(db),
                **{**storage_for(request, db), **mail_settings(request), **overrides},
            )
            client = stack.enter_context(APPS[app](settings))
            return Api(
                client, ADMIN_EMAIL, ADMIN_PASSWORD, TEST_SECRET, database_url=settings.database_url
            )

        yield build


@pytest.fixture
def client(target: Api) -> httpx2.Client:
    return target.client


@pytest.fixture
def user(client: httpx2.Client) -> Account:
    """A freshly signed-up, logged-in ordinary user."""
    return sign_up(client)


@pytest.fixture
def admin(target: Api) -> Account:
    """The configured first superuser, logged in."""
    if not (target.admin_email and target.admin_password):
        pytest.skip("set AUTHTWIN_FIRST_SUPERUSER_EMAIL/_PASSWORD for the server and the suite")
    tokens = log_in(target.client, target.admin_email, target.admin_password)
    me = target.client.get(
        "/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    return Account.of(me.json(), target.admin_password, tokens)


@pytest.fixture
def secret_key(target: Api) -> str:
    if not target.secret_key:
        pytest.skip("set AUTHTWIN_SECRET_KEY for the server and the suite to forge tokens")
    return target.secret_key


# What the stream tests expect of every target: live servers are started with the same.
STREAM_TEST_SETTINGS = STREAM_SETTINGS


@dataclass(frozen=True)
class Served:
    """A target behind a real socket: ``api`` talks to it over HTTP; ``url`` is its root."""

    api: Api
    url: str


ServedFactory = Callable[..., Served]


@pytest.fixture
def served(request: pytest.FixtureRequest, database_for) -> Iterator[ServedFactory]:  # type: ignore[no-untyped-def]
    """``served(**settings)`` → this target behind a socket (tests/served.py), with
    ``STREAM_TEST_SETTINGS`` and the settings given; a live server is itself, and a test
    that needs other settings skips there."""
    if request.param == "live":
        base_url: str = request.config.getoption("--base-url")
        with live_client(base_url) as client:

            def live(**overrides: object) -> Served:
                if overrides:
                    pytest.skip("needs settings of its own; not run against --base-url")
                return Served(live_api(client), base_url.rstrip("/"))

            yield live
        return
    app, db = request.param.split("-")
    with ExitStack() as stack:

        def build(**overrides: object) -> Served:
            settings = in_process_settings(
                database_for(db),
                **{
                    **storage_for(request, db),
                    **mail_settings(request),
                    **STREAM_TEST_SETTINGS,
                    **overrides,
                },
            )
            url = stack.enter_context(SERVERS[app](settings))
            client = stack.enter_context(live_client(url))
            return Served(Api(client, ADMIN_EMAIL, ADMIN_PASSWORD, TEST_SECRET), url)

        yield build


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    """A Redis of this test's own, to stop under the app (tests/private_services.py)."""
    if reason := missing_binaries():
        _missing("private PostgreSQL and Redis servers", reason)
    with private_redis() as server:
        yield server
