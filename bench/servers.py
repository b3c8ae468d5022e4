"""Each app under its production server, configured alike, and what its workers weigh.

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

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx2

WORKERS = 2
FLASK_THREADS = 8
BACKLOG = 4096
KEEP_ALIVE_SECONDS = 75
STARTUP_SECONDS = 60

READY_PATHS = {
    "fastapi": "/api/v1/health",
    "flask": "/api/v1/health",
    "fastapi-hello": "/hello",
    "flask-hello": "/hello",
}
# app name -> (server, import string)
APPS = {
    "fastapi": ("uvicorn", "fastapi_app:create_app"),
    "flask": ("gunicorn", "flask_app:create_app()"),
    "fastapi-hello": ("uvicorn", "bench.hello_fastapi:create_app"),
    "flask-hello": ("gunicorn", "bench.hello_flask:create_app()"),
}


def command(app: str, port: int, workers: int = WORKERS) -> list[str]:
    """The production command line (docker-compose.yml's too); tests/live.py runs it as well."""
    server, target = APPS[app]
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "--factory", target,
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--backlog", str(BACKLOG), "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
            "--no-server-header", "--no-proxy-headers", "--no-access-log",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "gthread", "--threads", str(FLASK_THREADS),
        # gthread holds at most this many connections per worker; the ramp's 2000 users
        # must all fit on the workers there are.
        "--worker-connections", "2000",
        "--backlog", str(BACKLOG), "--keep-alive", str(KEEP_ALIVE_SECONDS),
        "--timeout", "120",
        # Not the shared $HOME/.gunicorn/gunicorn.ctl, where one gunicorn deletes another's
        # socket: nothing here uses the control interface (tests/test_server_commands.py).
        "--no-control-socket", target,
    ]  # fmt: skip


@dataclass
class Server:
    app: str
    url: str
    process: subprocess.Popen[bytes]
    log: str

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []
        # uvicorn's workers are spawned by multiprocessing, which adds a resource tracker.
        return [pid for pid in pids if b"resource_tracker" not in _cmdline(pid)]

    def peak_rss_mib(self) -> float:
        """The largest worker's peak resident memory since it started (VmHWM): the servers
        stay up across scenarios, so this is the peak of every scenario so far."""
        peaks = [_vm_hwm_kib(pid) for pid in self.worker_pids()]
        return max(peaks, default=0) / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def serve(
    apps: dict[str, str], env: Mapping[str, Mapping[str, str]], log_dir: Path
) -> Iterator[dict[str, Server]]:
    """Start every ``name: app`` at once (start-up is the slow part), yield when all answer."""
    servers: dict[str, Server] = {}
    try:
        for name, app in apps.items():
            port = free_port()
            with (log_dir / f"{app}-{port}.log").open("wb") as log:
                process = subprocess.Popen(  # noqa: S603 — our own interpreter and servers
                    command(app, port), env=dict(env[name]), stdout=log, stderr=log,
                    start_new_session=True,
                )  # fmt: skip
            servers[name] = Server(app, f"http://127.0.0.1:{port}", process, log.name)
        for server in servers.values():
            _wait_until_ready(server)
        yield servers
    finally:
        for server in servers.values():
            stop(server.process)


def _wait_until_ready(server: Server) -> None:
    path = READY_PATHS[server.app]
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.app} exited:\n{Path(server.log).read_text()}")
        with contextlib.suppress(httpx2.TransportError):
            answered = httpx2.get(server.url + path, timeout=2).status_code == 200
            # Every worker must be up before the first run, or it measures start-up.
            if answered and len(server.worker_pids()) >= WORKERS:
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"{server.app} not ready in {STARTUP_SECONDS}s:\n{Path(server.log).read_text()}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers: the whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
