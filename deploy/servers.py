"""The production command line of each twin, and the migration before them (tests/live.py,
bench/, deploy/cluster.py and docker-compose.yml run these).

Both twins get the same number of worker processes. The settings that decide whether a
crowd of clients is served or refused are set on both, for the same reasons:

- ``backlog 4096``: connections the kernel queues before a worker accepts them; a burst of
  2000 users must fit (Linux caps it at ``net.core.somaxconn``, 4096 here).
- keep-alive 75 s: longer than any client's pause between requests. A server that closes an
  idle connection just as the client reuses it gives the client a reset, which Locust
  counts as a failure (gunicorn's default is 2 s, uvicorn's 5 s).
- a request timeout of 120 s on gunicorn (default 30 s): under the ramp's queueing a slow
  request is late, not dead; a killed worker would fail every request it held.

Flask runs on gunicorn's ``gthread`` worker: threads let one worker overlap what releases
the GIL (argon2 hashing, database round trips) and keep connections alive, which the
``sync`` worker cannot. ``gevent`` would need the database drivers patched to cooperate.
"""

import subprocess
import sys
from collections.abc import Mapping

WORKERS = 2
FLASK_THREADS = 8
BACKLOG = 4096
KEEP_ALIVE_SECONDS = 75

# app name -> (server, import string)
APPS = {
    "fastapi": ("uvicorn", "fastapi_app:create_app"),
    "flask": ("gunicorn", "flask_app:create_app()"),
    "fastapi-hello": ("uvicorn", "bench.hello_fastapi:create_app"),
    "flask-hello": ("gunicorn", "bench.hello_flask:create_app()"),
}


def command(
    app: str, port: int, workers: int = WORKERS, *, flask_worker: str = "gthread"
) -> list[str]:
    """The production command line of ``app`` on 127.0.0.1:``port``.

    ``flask_worker="sync"``: gunicorn's default worker, one request at a time per process
    and no keep-alive; the benchmark measures it beside gthread (bench/README.md).
    """
    server, target = APPS[app]
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "--factory", target,
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--backlog", str(BACKLOG), "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
            "--no-server-header", "--no-proxy-headers", "--no-access-log",
        ]  # fmt: skip
    if flask_worker == "gthread":
        # gthread holds at most --worker-connections per worker; the ramp's 2000 users must
        # all fit on the workers there are.
        worker = ["--worker-class", "gthread", "--threads", str(FLASK_THREADS),
                  "--worker-connections", "2000"]  # fmt: skip
    elif flask_worker == "sync":
        worker = ["--worker-class", "sync"]
    else:
        raise ValueError(f"unknown gunicorn worker {flask_worker!r}: gthread or sync")
    return [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), *worker,
        "--backlog", str(BACKLOG), "--keep-alive", str(KEEP_ALIVE_SECONDS),
        "--timeout", "120",
        # Not the shared $HOME/.gunicorn/gunicorn.ctl, where one gunicorn deletes another's
        # socket: nothing here uses the control interface (tests/test_server_commands.py).
        "--no-control-socket", target,
    ]  # fmt: skip


def migrate_command() -> list[str]:
    """The one-off deployment step before any server starts: the schema to the code's."""
    return [sys.executable, "-m", "shared.cli", "migrate"]


def migrate(env: Mapping[str, str], timeout: float = 60) -> None:
    """Migrate the database ``env``'s ``AUTHTWIN_*`` settings name, as a deployment would."""
    done = subprocess.run(  # noqa: S603 — our own interpreter and command
        migrate_command(), env=dict(env), capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"authtwin migrate failed ({done.returncode}):\n{done.stderr}")
