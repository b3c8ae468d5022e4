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

Both run under gunicorn's arbiter, which starts the workers, restarts one that dies, and on
SIGTERM closes the listening socket at once. FastAPI runs on uvicorn's worker
(deploy/uvicorn_worker.py, the arrangement of FastAPI's deployment guide), not under
uvicorn's own ``--workers`` supervisor, which keeps the socket open while its workers drain:
a connection made then is accepted, left unanswered, and reset when they exit.

Flask runs on gunicorn's ``gthread`` worker: threads let one worker overlap what releases
the GIL (argon2 hashing, database round trips) and keep connections alive, which the
``sync`` worker cannot. ``gevent`` would need the database drivers patched to cooperate.

Each server also stands on its own, without the nginx front (tests/test_server_hardening.py):

- the same limits on a request head, gunicorn's defaults, stated here so that both twins
  share them: a request line of ``LIMIT_REQUEST_LINE`` bytes (414 over it),
  ``LIMIT_REQUEST_FIELDS`` header lines of ``LIMIT_REQUEST_FIELD_SIZE`` bytes each (431 over
  them). uvicorn's httptools has no limit at all (a 64 MiB header was read whole):
  deploy/uvicorn_protocol.py applies these, and gives a head ``REQUEST_HEAD_SECONDS`` from
  its first byte and a body ``REQUEST_BODY_SECONDS`` from its head (408 after), which uvicorn
  does not either: a client trickling its request, or sending nothing, would hold its
  connection for ever.
- a graceful shutdown of at most ``GRACEFUL_SHUTDOWN_SECONDS``: on SIGTERM both stop
  accepting, finish the requests they hold and close what is still open after it (a client
  trickling a body held uvicorn, which has no default, for ever; gunicorn's is 30 s). Each
  worker refuses new connections at once (deploy/gunicorn_worker.py for gthread), and ends
  its event streams with a last word instead of waiting for them (shared/web/server_stop.py).
- no ``Server`` banner, the contract's JSON for the errors the servers answer themselves,
  and ``Connection: close`` before a body gunicorn could not drain (deploy/gunicorn_conf.py).

What no server setting fixes, the nginx front does: gunicorn's threads read a request with
no deadline, so a few hundred clients trickling their requests hold every thread of the
Flask server.
"""

import os
import subprocess
import sys
from collections.abc import Mapping

from shared.infrastructure.config import Settings

WORKERS = 2
FLASK_THREADS = 8
FLASK_CONNECTIONS = 2000
BACKLOG = 4096
KEEP_ALIVE_SECONDS = 75
GRACEFUL_SHUTDOWN_SECONDS = 10
LIMIT_REQUEST_LINE = 4094
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190
REQUEST_HEAD_SECONDS = 10
REQUEST_BODY_SECONDS = 10

UVICORN_WORKER = "deploy.uvicorn_worker.AuthtwinUvicornWorker"

# app name -> (gunicorn worker kind, import string): both run under gunicorn's arbiter, which
# calls the factory the import string names; an ASGI app in uvicorn's worker, a WSGI app in
# gunicorn's thread worker.
APPS = {
    "fastapi": ("uvicorn-worker", "fastapi_app:create_app()"),
    "flask": ("gthread", "flask_app:create_app()"),
    "fastapi-hello": ("uvicorn-worker", "bench.hello_fastapi:create_app()"),
    "flask-hello": ("gthread", "bench.hello_flask:create_app()"),
}


def command(
    app: str,
    port: int,
    workers: int = WORKERS,
    *,
    graceful_seconds: int = GRACEFUL_SHUTDOWN_SECONDS,
    flask_worker: str = "gthread",
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """The production command line of ``app`` on 127.0.0.1:``port``, for a server started
    with the settings of ``env`` (by default this process's environment).

    ``flask_worker="sync"``: gunicorn's default worker, one request at a time per process
    and no keep-alive; the benchmark measures it beside gthread (bench/README.md).
    """
    kind, target = APPS[app]
    if kind == "uvicorn-worker":
        # uvicorn's worker under gunicorn's arbiter (deploy/uvicorn_worker.py): the worker
        # takes uvicorn's settings there; these are the arbiter's and the worker's.
        return [
            sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", UVICORN_WORKER,
            "--backlog", str(BACKLOG), "--keep-alive", str(KEEP_ALIVE_SECONDS),
            "--timeout", "120", "--graceful-timeout", str(graceful_seconds),
            "--no-control-socket", target,
        ]  # fmt: skip
    if flask_worker == "gthread":
        # gthread, see deploy/gunicorn_worker.py. It holds at most --worker-connections per
        # worker, streams included, and keeps alive what its threads are not serving: the
        # ramp's 2000 users must all fit beside the streams a worker may hold.
        threads = flask_threads(env)
        worker = ["--worker-class", "deploy.gunicorn_worker.DrainingThreadWorker",
                  "--threads", str(threads),
                  "--worker-connections", str(FLASK_CONNECTIONS + threads)]  # fmt: skip
    elif flask_worker == "sync":
        worker = ["--worker-class", "sync"]
    else:
        raise ValueError(f"unknown gunicorn worker {flask_worker!r}: gthread or sync")
    return [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), *worker,
        "--backlog", str(BACKLOG), "--keep-alive", str(KEEP_ALIVE_SECONDS),
        "--timeout", "120", "--graceful-timeout", str(graceful_seconds),
        "--limit-request-line", str(LIMIT_REQUEST_LINE),
        "--limit-request-fields", str(LIMIT_REQUEST_FIELDS),
        "--limit-request-field_size", str(LIMIT_REQUEST_FIELD_SIZE),
        "--config", "python:deploy.gunicorn_conf",
        # Not the shared $HOME/.gunicorn/gunicorn.ctl, where one gunicorn deletes another's
        # socket: nothing here uses the control interface.
        "--no-control-socket", target,
    ]  # fmt: skip


def flask_threads(env: Mapping[str, str] | None = None) -> int:
    """The API's threads, and one more for each event stream a worker may hold
    (``AUTHTWIN_EVENTS_MAX_STREAMS``): a stream holds its thread while open, and streams
    must never take the threads requests need (flask_app/streams.py)."""
    env = os.environ if env is None else env
    default = Settings.model_fields["events_max_streams"].default
    return FLASK_THREADS + int(env.get("AUTHTWIN_EVENTS_MAX_STREAMS", default))


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
