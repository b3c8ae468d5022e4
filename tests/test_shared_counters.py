"""The lockout holds across processes: its counters are shared through Redis.

NIST SP 800-63B §5.2.2 and OWASP ASVS v5 6.3.x limit consecutive failed attempts per
*account*. A deployment runs several processes (workers, replicas, both twins behind one
balancer); were each to count in its own memory, an attacker would get N guesses per process.

Here two separate servers, the FastAPI twin under uvicorn and the Flask twin under gunicorn
(one worker each, on one SQLite file, with one signing key), keep their counters in one Redis:
failures on either add up to one lockout, which then holds on both. The control run, the same
two servers without Redis, lets the same failures pass, which shows that the test can fail and
that Redis is what shares the count.
"""

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2
import pytest

from tests.clients import live_client
from tests.live import (
    ServerNotReady,
    free_port,
    migrate,
    start_server,
    stop_server,
    wait_until_healthy,
)
from tests.support import PASSWORD, assert_error, log_in, sign_up

# redis_url (conftest) skips without a reachable Redis, and fails instead under CI=true.
pytestmark = [pytest.mark.in_process, pytest.mark.usefixtures("redis_url")]

MAX_FAILURES = 4
APPS = ("fastapi", "flask")


def server_env(database: Path, redis_url: str | None) -> dict[str, str]:
    """This environment without any inherited ``AUTHTWIN_*``, plus the servers' settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHTWIN_")}
    env.update(
        {
            "AUTHTWIN_ENV": "production",
            "AUTHTWIN_SECRET_KEY": secrets.token_urlsafe(48),
            "AUTHTWIN_DATABASE_URL": f"sqlite:///{database}",
            "AUTHTWIN_RATE_LIMIT_ENABLED": "false",  # one address sends everything
            "AUTHTWIN_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        }
    )
    if redis_url:
        env["AUTHTWIN_REDIS_URL"] = redis_url
        env["AUTHTWIN_REDIS_KEY_PREFIX"] = f"authtwin-test-shared-{uuid.uuid4().hex}"
    return env


@contextmanager
def two_servers(
    workdir: Path, redis_url: str | None
) -> Iterator[tuple[httpx2.Client, httpx2.Client]]:
    """Clients of a FastAPI and a Flask server, started together, stopped (groups and all)
    on the way out."""
    env = server_env(workdir / "shared.db", redis_url)
    migrate(env)
    with ExitStack() as stack:
        started = []
        for app in APPS:
            port, log_path = free_port(), workdir / f"{app}.log"
            with log_path.open("wb") as log:
                server = start_server(app, port, env, log, workers=1)
            stack.callback(stop_server, server)
            started.append((app, f"http://127.0.0.1:{port}", server, log_path))
        for app, base_url, server, log_path in started:
            try:
                wait_until_healthy(base_url, server)
            except ServerNotReady as exc:
                output = log_path.read_text(errors="replace")
                pytest.fail(f"{app}: {exc}\n--- {app} server log ---\n{output}", pytrace=False)
        first, second = (stack.enter_context(live_client(url)) for _, url, _, _ in started)
        yield first, second


def wrong_password(client: httpx2.Client, email: str) -> None:
    response = client.post("/auth/login", json={"email": email, "password": "not the password"})
    assert_error(response, 401, "Incorrect email or password")


def fail_on_both(fastapi: httpx2.Client, flask: httpx2.Client) -> str:
    """An account both servers know, then half the lockout's failures on each; its email."""
    email = sign_up(fastapi).email
    log_in(flask, email, PASSWORD)
    for client in (fastapi, fastapi, flask, flask):
        wrong_password(client, email)
    return email


def right_password(client: httpx2.Client, email: str) -> httpx2.Response:
    return client.post("/auth/login", json={"email": email, "password": PASSWORD})


def test_failures_on_two_processes_add_up_to_one_lockout_through_redis(
    tmp_path: Path, redis_url: str
) -> None:
    with two_servers(tmp_path, redis_url) as (fastapi, flask):
        email = fail_on_both(fastapi, flask)
        for client in (fastapi, flask):
            response = right_password(client, email)
            assert_error(response, 429, "Too many requests; try again later")
            assert response.headers["retry-after"].isdigit()


def test_without_redis_each_process_counts_alone(tmp_path: Path) -> None:
    # The control: the same sequence, counted in each process's memory, locks nothing.
    with two_servers(tmp_path, None) as (fastapi, flask):
        email = fail_on_both(fastapi, flask)
        for client in (fastapi, flask):
            response = right_password(client, email)
            assert response.status_code == 200, response.text
