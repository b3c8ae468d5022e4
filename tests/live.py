"""Run the contract suite over HTTP against a real server of either twin.

    python -m tests.live fastapi|flask [extra pytest arguments]

Migrates the database first, as a deployment would (``authtwin migrate``: production
servers create no table), then starts the app under its production server (uvicorn /
gunicorn, two worker processes, the command lines of deploy/servers.py, which
docker-compose.yml also runs) on a fresh SQLite file (or ``AUTHTWIN_DATABASE_URL`` if set),
waits for ``/health``, runs
``pytest --base-url`` with the same ``AUTHTWIN_*`` settings, and stops the server.

The throttling counters live in the Redis at ``AUTHTWIN_TEST_REDIS_URL`` when that is set
(under a key prefix of this run's own), so the two workers share one lockout count.
``start_server`` and ``stop_server`` are also used by tests/test_shared_counters.py.
"""

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import httpx2

from bench.servers import stop as stop_server
from deploy.servers import command as production_command
from deploy.servers import migrate

__all__ = [
    "ServerNotReady",
    "free_port",
    "migrate",
    "production_env",
    "serve",
    "start_server",
    "stop_server",
    "wait_until_healthy",
]
WORKERS = 2
STARTUP_SECONDS = 60
# A heartbeat, a socket's deadline to authenticate and a write deadline of a second: the
# stream tests wait for them (tests/conftest.py gives in-process targets the same).
STREAM_SETTINGS: dict[str, object] = {
    "events_heartbeat_seconds": 1,
    "events_auth_seconds": 1,
    # A write the client has not taken in a second ends the stream: tests/test_events.py
    # checks that a quiet client who takes every write outlives it.
    "events_write_seconds": 1,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(
    app: str, port: int, workers: int = WORKERS, env: Mapping[str, str] | None = None
) -> list[str]:
    if app not in ("fastapi", "flask"):
        raise SystemExit(f"unknown app {app!r}: use fastapi or flask")
    return production_command(app, port, workers, env=env)


def start_server(
    app: str, port: int, env: Mapping[str, str], log: IO[bytes], workers: int = WORKERS
) -> subprocess.Popen[bytes]:
    """``app`` under its production server, in a process group of its own (see stop_server)."""
    return subprocess.Popen(  # noqa: S603 — our own interpreter and servers
        server_command(app, port, workers, env),
        env=dict(env),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


class ServerNotReady(Exception):
    pass


@contextlib.contextmanager
def serve(
    app: str, env: Mapping[str, str], workdir: Path, workers: int = 1, port: int | None = None
) -> Iterator[str]:
    """``app`` under its production server until the block ends; yields its base URL.

    The database is migrated first, as a deployment would. The server's log is in
    ``workdir``, and shown if it never becomes healthy. ``port``: one chosen beforehand, for
    settings that name the server's own URL (``AUTHTWIN_PUBLIC_URL``); else a free one.
    """
    migrate(env)
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = workdir / f"{app}-server.log"
    with log_path.open("wb") as log:
        server = start_server(app, port, env, log, workers)
    try:
        try:
            wait_until_healthy(base_url, server)
        except ServerNotReady as exc:
            raise ServerNotReady(f"{exc}\n{log_path.read_text(errors='replace')}") from None
        yield base_url
    finally:
        stop_server(server)


def production_env(database: Path, **settings: str) -> dict[str, str]:
    """This environment without inherited ``AUTHTWIN_*``, plus production settings (hashing
    at their default, OWASP's minimum, as production refuses less) and a random secret,
    overridable by name."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHTWIN_")}
    env.update(
        {
            "AUTHTWIN_ENV": "production",
            "AUTHTWIN_SECRET_KEY": secrets.token_urlsafe(48),
            "AUTHTWIN_DATABASE_URL": f"sqlite:///{database}",
        }
    )
    env.update({f"AUTHTWIN_{name.upper()}": value for name, value in settings.items()})
    return env


def wait_until_healthy(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerNotReady(f"the server exited with status {server.returncode}")
        try:
            if httpx2.get(f"{base_url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    raise ServerNotReady(f"the server was not healthy within {STARTUP_SECONDS}s")


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    if "," in argv[0]:
        return run_at_once(argv[0].split(","), argv[1:])
    app, pytest_args = argv[0], argv[1:]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="authtwin-live-") as workdir:
        env = {
            **os.environ,
            "AUTHTWIN_ENV": "production",
            "AUTHTWIN_SECRET_KEY": secrets.token_urlsafe(48),
            "AUTHTWIN_FIRST_SUPERUSER_EMAIL": "live-admin@example.com",
            "AUTHTWIN_FIRST_SUPERUSER_PASSWORD": secrets.token_urlsafe(16),
            # The suite is one address hammering one server: the per-address limit would soon
            # answer everything with 429. It is tested in-process (tests/test_throttling.py,
            # with settings of its own); the per-account lockout cannot be turned off.
            "AUTHTWIN_RATE_LIMIT_ENABLED": "false",
            # The suite's inbox (tests/conftest.py) listens here, and reads the links.
            "AUTHTWIN_PUBLIC_URL": base_url,
            "AUTHTWIN_MAIL_BACKEND": "smtp",
            "AUTHTWIN_SMTP_HOST": "127.0.0.1",
            "AUTHTWIN_SMTP_PORT": str(free_port()),
            "AUTHTWIN_SMTP_SECURITY": "none",
            # What tests/test_events.py expects of every target (STREAM_TEST_SETTINGS).
            **{f"AUTHTWIN_{name.upper()}": str(value) for name, value in STREAM_SETTINGS.items()},
        }
        env.setdefault("AUTHTWIN_DATABASE_URL", f"sqlite:///{workdir}/live.db")
        if redis_url := os.environ.get("AUTHTWIN_TEST_REDIS_URL"):
            # Two workers must share the lockout counters: in memory each would count alone.
            env["AUTHTWIN_REDIS_URL"] = redis_url
            env["AUTHTWIN_REDIS_KEY_PREFIX"] = f"authtwin-live-{uuid.uuid4().hex}"
        elif not env.get("AUTHTWIN_REDIS_URL"):
            print(
                "AUTHTWIN_TEST_REDIS_URL is not set: each worker keeps a lockout count of its "
                "own, so a client that reconnects may get more guesses than the limit",
                file=sys.stderr,
            )
        log_path = os.path.join(workdir, "server.log")
        migrate(env)
        with open(log_path, "wb") as log:
            server = start_server(app, port, env, log)
        try:
            wait_until_healthy(base_url, server)
            tests = [sys.executable, "-m", "pytest", "tests", "--base-url", base_url, *pytest_args]
            returncode = subprocess.run(tests, env=env, check=False).returncode  # noqa: S603
        except ServerNotReady as exc:
            print(exc, file=sys.stderr)
            returncode = 1
        finally:
            stop_server(server)
        if returncode != 0:  # the server's side of the story, kept out of the way otherwise
            with open(log_path, encoding="utf-8", errors="replace") as log:
                print(f"--- {app} server log ---", log.read(), sep="\n")
        return returncode


def run_at_once(apps: list[str], pytest_args: list[str]) -> int:
    """``fastapi,flask``: each app's run in a process of its own, at the same time; each
    output shown whole when all are done. A run is a server and a client taking turns, so two
    at once keep two cores busier than one after the other (make test)."""
    runs = []
    for app in apps:
        output = tempfile.TemporaryFile()  # noqa: SIM115 — closed below, after the run
        command = [sys.executable, "-m", "tests.live", app, *pytest_args]
        runs.append((app, output, subprocess.Popen(command, stdout=output, stderr=output)))  # noqa: S603
    returncode = 0
    for app, output, run in runs:
        returncode = max(returncode, run.wait())
        output.seek(0)
        print(f"=== live: {app} (exit {run.returncode}) ===", flush=True)
        sys.stdout.buffer.write(output.read())
        output.close()
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
