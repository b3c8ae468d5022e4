"""PostgreSQL or Redis down, or frozen, under a running app: answered, bounded, recovered.

Every outage is played on a private server (tests/private_services.py), never on the shared
ones. What a client and an operator depend on, on both twins alike:

- a route that needs the database answers 503 ``{"detail": "Database unavailable"}`` with
  ``Retry-After``, and the log holds one WARNING line for it, no traceback;
- a frozen server (processes stopped, sockets open) costs a request a bounded time, and
  ``/health`` answers while user requests wait;
- a login that failed because a dependency failed does not count towards the lockout;
- Redis down is a 503 with ``Retry-After``, and readiness says so; liveness never fails;
- once the server is back, the same app serves again, without a restart.
"""

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import psycopg
import pytest
from sqlalchemy import Engine, create_engine, exc, text

from shared.infrastructure import migrations
from shared.infrastructure.db import make_engine, make_read_engine
from shared.infrastructure.outages import DatabaseUnreachable, is_database_outage
from shared.infrastructure.timeouts import (
    CLIENT_MARGIN_SECONDS,
    CommitOutcomeUnknown,
    DatabaseTimeouts,
    ServerTimeout,
)
from tests.clients import APPS
from tests.conftest import ConfiguredApi, _missing, in_process_settings
from tests.private_services import (
    PrivatePostgres,
    PrivateRedis,
    missing_binaries,
    private_postgres,
    wait_until,
)
from tests.support import PASSWORD, Account, bearer, log_in, sign_up, unique_email

# It stops servers under the app; xdist_group: the private PostgreSQL and Redis are started
# once for the module, on one worker.
pytestmark = [pytest.mark.in_process, pytest.mark.xdist_group("outages")]

CONNECT_TIMEOUT = 2  # libpq counts whole seconds, from 2
STATEMENT_TIMEOUT = 3.0
# The longest a request may wait on a frozen server: a statement (plus the client's margin,
# infrastructure/timeouts.py) or a pool wait, then one connect attempt (a pre-ping that timed
# out reconnects; SQLAlchemy's pool tries to connect once more when its wait times out).
FROZEN_BOUND = STATEMENT_TIMEOUT + CLIENT_MARGIN_SECONDS + CONNECT_TIMEOUT
SLACK = 1.0  # a loaded 2-core CI machine
RECOVERY_SECONDS = 10.0
LIVE = "/health/live"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PrivatePostgres]:
    if reason := missing_binaries():
        _missing("private PostgreSQL and Redis servers", reason)
    with private_postgres() as server:
        migrations.upgrade(in_process_settings(server.url))
        yield server


@pytest.fixture
def pg(pg_server: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private server, running and thawed before and after each test."""
    yield pg_server
    pg_server.thaw()
    if not pg_server.accepts_connections():
        if not (pg_server.data / "postmaster.pid").exists():
            pg_server.start()
        wait_until(pg_server.accepts_connections, seconds=10, what="PostgreSQL back")


def app_on(app_name: str, pg: PrivatePostgres, **overrides: object):  # type: ignore[no-untyped-def]
    settings = in_process_settings(
        pg.url,
        db_connect_timeout_seconds=CONNECT_TIMEOUT,
        db_statement_timeout_seconds=STATEMENT_TIMEOUT,
        db_pool_timeout_seconds=STATEMENT_TIMEOUT,
        **overrides,
    )
    return APPS[app_name](settings)


def assert_unavailable(response: httpx2.Response, detail: str = "Database unavailable") -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    assert response.json() == {"detail": detail}
    assert int(response.headers["retry-after"]) > 0


def assert_one_warning(records: list[logging.LogRecord]) -> None:
    """One line at WARNING for the outage; nothing logged as a bug, no traceback anywhere."""
    loud = [record for record in records if record.levelno >= logging.WARNING]
    assert [(r.levelname, r.exc_info is None) for r in loud] == [("WARNING", True)], [
        (r.name, r.levelname, r.getMessage()[:200]) for r in loud
    ]


def requests_needing_the_database(account: Account) -> list[tuple[str, str, dict[str, Any]]]:
    credentials = {"email": account.email, "password": PASSWORD}
    form = {"grant_type": "password", "username": account.email, "password": PASSWORD}
    return [
        ("GET", "/users/me", {"headers": account.headers}),
        ("POST", "/auth/login", {"json": credentials}),
        ("POST", "/auth/token", {"data": form}),
        ("POST", "/auth/signup", {"json": {"email": unique_email(), "password": PASSWORD}}),
        ("POST", "/auth/refresh", {"json": {"refresh_token": account.refresh_token}}),
        ("GET", "/health", {}),
    ]


def test_database_down_is_a_503_with_retry_after_and_one_warning_then_recovers(
    app_name: str, pg: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    with app_on(app_name, pg) as client:
        account = sign_up(client)
        pg.stop()
        for method, path, options in requests_needing_the_database(account):
            caplog.clear()
            with caplog.at_level(logging.INFO):
                response = client.request(method, path, **options)
            assert_unavailable(response)
            assert_one_warning(caplog.records)
        assert client.get(LIVE).status_code == 200

        pg.start()
        wait_until(
            lambda: client.get("/users/me", headers=account.headers).status_code == 200,
            seconds=RECOVERY_SECONDS,
            what="the app serving again after PostgreSQL restarted",
        )
        assert client.get("/health").status_code == 200


def test_a_correct_password_retried_during_an_outage_does_not_lock_the_account(
    app_name: str, pg: PrivatePostgres
) -> None:
    with app_on(app_name, pg, login_max_failures=3) as client:
        account = sign_up(client)
        pg.stop()
        credentials = {"email": account.email, "password": PASSWORD}
        for _ in range(6):  # twice the lockout's threshold
            assert_unavailable(client.post("/auth/login", json=credentials))
        pg.start()
        wait_until(pg.accepts_connections, seconds=RECOVERY_SECONDS, what="PostgreSQL back")
        deadline = time.monotonic() + RECOVERY_SECONDS
        while (response := client.post("/auth/login", json=credentials)).status_code == 503:
            assert time.monotonic() < deadline, response.text
        assert response.status_code == 200, response.text


def test_a_frozen_database_fails_fast_and_health_answers_meanwhile(
    app_name: str, pg: PrivatePostgres
) -> None:
    with app_on(app_name, pg, db_read_pool_size=2, db_pool_size=2) as client:
        account = sign_up(client)
        assert client.get("/health").status_code == 200
        pg.freeze()
        answers: list[tuple[int, float]] = []

        def timed(method: str, path: str, **options: object) -> None:
            started = time.monotonic()
            status = client.request(method, path, **options).status_code
            answers.append((status, time.monotonic() - started))

        credentials = {"email": account.email, "password": PASSWORD}
        users = [
            *(
                threading.Thread(
                    target=timed,
                    args=("GET", "/users/me"),
                    kwargs={"headers": bearer(account.access_token)},
                )
                for _ in range(4)
            ),
            *(
                threading.Thread(
                    target=timed, args=("POST", "/auth/login"), kwargs={"json": credentials}
                )
                for _ in range(2)
            ),
        ]
        for thread in users:
            thread.start()
        time.sleep(0.3)  # the user requests hold every pooled connection by now
        started = time.monotonic()
        health = client.get("/health")
        health_seconds = time.monotonic() - started
        assert len(answers) < len(users), answers  # answered while user requests still wait
        assert_unavailable(health)
        # One connect attempt of its own, not a place in a pool the user requests hold.
        assert health_seconds < CONNECT_TIMEOUT + SLACK, health_seconds
        assert client.get(LIVE).status_code == 200
        for thread in users:
            thread.join(timeout=30)
        assert [status for status, _ in answers] == [503] * len(users), answers
        assert max(seconds for _, seconds in answers) < FROZEN_BOUND + SLACK, answers

        pg.thaw()
        wait_until(
            lambda: client.get("/users/me", headers=account.headers).status_code == 200,
            seconds=RECOVERY_SECONDS,
            what="the app serving again after PostgreSQL thawed",
        )


@pytest.mark.parametrize("options", ["", "?application_name=authtwin-outages"])
def test_every_engine_sets_the_servers_statement_timeout(pg: PrivatePostgres, options: str) -> None:
    timeouts = DatabaseTimeouts(connect=2, pool=1, statement=STATEMENT_TIMEOUT)
    for engine in (
        make_engine(pg.url + options, pool_size=1, timeouts=timeouts),
        make_read_engine(pg.url + options, pool_size=1, timeouts=timeouts),
    ):
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "3s"
            name = connection.execute(text("SHOW application_name")).scalar()
        engine.dispose()
        assert name == ("authtwin-outages" if options else "")


def test_a_frozen_database_fails_fast_through_a_url_with_libpq_options(
    app_name: str, pg: PrivatePostgres
) -> None:
    # With libpq options in the URL, FastAPI reads through psycopg's asyncio mode, not asyncpg.
    url = pg.url + "?application_name=authtwin-outages"
    settings = in_process_settings(
        url,
        db_connect_timeout_seconds=CONNECT_TIMEOUT,
        db_statement_timeout_seconds=STATEMENT_TIMEOUT,
        db_pool_timeout_seconds=STATEMENT_TIMEOUT,
    )
    with APPS[app_name](settings) as client:
        account = sign_up(client)
        assert client.get("/users/me", headers=account.headers).status_code == 200
        pg.freeze()
        started = time.monotonic()
        assert_unavailable(client.get("/users/me", headers=account.headers))
        assert time.monotonic() - started < FROZEN_BOUND + SLACK


def test_redis_down_is_a_503_with_retry_after_and_readiness_says_so_then_recovers(
    app_name: str, pg: PrivatePostgres, redis_server: PrivateRedis
) -> None:
    with app_on(app_name, pg, redis_url=redis_server.url) as client:
        account = sign_up(client)
        redis_server.stop()
        credentials = {"email": account.email, "password": PASSWORD}
        assert_unavailable(client.post("/auth/login", json=credentials), "Rate limiter unavailable")
        assert_unavailable(client.get("/health"), "Rate limiter unavailable")
        assert client.get(LIVE).status_code == 200

        redis_server.start()
        wait_until(
            lambda: client.post("/auth/login", json=credentials).status_code == 200,
            seconds=RECOVERY_SECONDS,
            what="the app serving again after Redis restarted",
        )
        assert client.get("/health").status_code == 200


def test_a_commit_left_unanswered_is_not_an_outage_and_is_not_retried(
    pg: PrivatePostgres,
) -> None:
    """A COMMIT the server finishes after the client gave up: the write was made, so the
    answer must not be "503, try again" (a retried signup would find its own account; a
    retried refresh would be taken for a replayed token and end the session)."""
    timeouts = DatabaseTimeouts(connect=2, pool=1, statement=0.2)  # the client waits 0.7 s
    engine = make_engine(pg.url, pool_size=1, timeouts=timeouts)
    with engine.begin() as connection:  # a deferred trigger: COMMIT itself takes 1.5 s
        for statement in SLOW_COMMIT_SCHEMA:
            connection.execute(text(statement))
    try:
        with pytest.raises(exc.OperationalError) as raised:
            _insert_with_a_slow_commit(engine)
        assert isinstance(raised.value.orig, CommitOutcomeUnknown)
        assert not is_database_outage(raised.value)
        wait_until(lambda: _slow_commit_rows(pg.url) == 1, seconds=5, what="the late COMMIT")
    finally:
        engine.dispose()


SLOW_COMMIT_SCHEMA = (
    "CREATE TABLE slow_commit (id int)",
    "CREATE FUNCTION slow_commit_sleep() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$",
    "CREATE CONSTRAINT TRIGGER slow_commit_late AFTER INSERT ON slow_commit "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit_sleep()",
)


def _insert_with_a_slow_commit(engine: Engine) -> None:
    with engine.begin() as connection:
        # The server's own bound would cancel the COMMIT (a clean rollback: an outage);
        # lifted here, so that only the client's fires, as for a stalled server.
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text("INSERT INTO slow_commit VALUES (1)"))


def _slow_commit_rows(url: str) -> int:
    checker = create_engine(url)
    try:
        with checker.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM slow_commit")).scalar_one())
    finally:
        checker.dispose()


def dbapi_error(driver_error: Exception) -> exc.StatementError:
    """The error SQLAlchemy raises for ``driver_error`` (a DBAPIError subclass)."""
    return exc.DBAPIError.instance("SELECT 1", None, driver_error, type(driver_error))


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (exc.TimeoutError("QueuePool limit reached"), True),
        (DatabaseUnreachable("Connect call failed"), True),
        (dbapi_error(psycopg.OperationalError("connection refused")), True),
        (dbapi_error(ServerTimeout("no answer")), True),
        (dbapi_error(psycopg.errors.QueryCanceled("statement timeout")), True),
        (dbapi_error(psycopg.errors.AdminShutdown("terminating")), True),
        (dbapi_error(psycopg.errors.TooManyConnections("too many")), True),
        (dbapi_error(sqlite3.OperationalError("database is locked")), True),
        # Connecting with a wrong password or to no such database: asyncpg gives a SQLSTATE,
        # psycopg none; the twins' read paths must agree (both cannot reach the database).
        (dbapi_error(psycopg.errors.InvalidPassword("password authentication failed")), True),
        (dbapi_error(psycopg.errors.InvalidCatalogName("no such database")), True),
        (dbapi_error(CommitOutcomeUnknown("COMMIT sent, no answer")), False),
        # Bugs, or a schema that does not match: a logged 500, not an outage.
        (dbapi_error(psycopg.errors.UndefinedTable("no such relation")), False),
        (dbapi_error(psycopg.errors.SyntaxError("syntax error")), False),
        (dbapi_error(sqlite3.OperationalError("no such table: users")), False),
        (exc.ArgumentError("bad argument"), False),
        (OSError("a file, not the database"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_a_dependency_failure_counts_as_an_outage(error: Exception, outage: bool) -> None:
    assert is_database_outage(error) is outage


def test_every_route_that_counts_answers_503_while_redis_is_down(
    configured: ConfiguredApi, redis_server: PrivateRedis
) -> None:
    """Fail closed, on every route the contract documents a 503 for: without its counters
    the service cannot limit guessing nor mail, so it answers none of them."""
    api = configured(redis_url=redis_server.url, rate_limit_enabled=True)
    client = api.client
    account = sign_up(client)
    assert api.admin_email
    assert api.admin_password
    admin = bearer(log_in(client, api.admin_email, api.admin_password)["access_token"])
    credentials = {"email": account.email, "password": PASSWORD}
    form = {"grant_type": "password", "username": account.email, "password": PASSWORD}
    new_email = {"email": unique_email(), "current_password": PASSWORD}
    passwords = {"current_password": PASSWORD, "new_password": "another long passphrase"}
    confirm = {"token": "x" * 43, "new_password": "another long passphrase"}
    counting: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/auth/signup", {"json": {"email": unique_email(), "password": PASSWORD}}),
        ("POST", "/auth/login", {"json": credentials}),
        ("POST", "/auth/token", {"data": form}),
        ("POST", "/auth/refresh", {"json": {"refresh_token": account.refresh_token}}),
        ("POST", "/auth/password-reset", {"json": {"email": account.email}}),
        ("POST", "/auth/password-reset/confirm", {"json": confirm}),
        ("POST", "/auth/verify", {"json": {"token": "x" * 43}}),
        ("POST", "/auth/verify/request", {"headers": account.headers}),
        ("PATCH", "/users/me", {"json": new_email, "headers": account.headers}),
        ("PUT", "/users/me/password", {"json": passwords, "headers": account.headers}),
        ("PATCH", f"/users/{account.id}", {"json": {"email": unique_email()}, "headers": admin}),
    ]
    redis_server.stop()
    for method, path, arguments in counting:
        response = client.request(method, path, **arguments)
        assert_unavailable(response, "Rate limiter unavailable")
