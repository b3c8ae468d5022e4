"""Each app under its production server (deploy/servers.py), and what its workers weigh."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx2

from deploy import nginx
from deploy.servers import WORKERS, command

STARTUP_SECONDS = 60

READY_PATHS = {
    "fastapi": "/api/v1/health",
    "flask": "/api/v1/health",
    "fastapi-hello": "/hello",
    "flask-hello": "/hello",
}
# What is measured: contender -> (app in deploy.servers.APPS, gunicorn worker for Flask).
# Flask runs under both of gunicorn's thread-free and threaded workers, and the FastAPI
# twin is compared with the faster of the two (bench/README.md).
CONTENDERS = {
    "fastapi": ("fastapi", "gthread"),
    "flask": ("flask", "gthread"),
    "flask-sync": ("flask", "sync"),
    "fastapi-hello": ("fastapi-hello", "gthread"),
    "flask-hello": ("flask-hello", "gthread"),
    "flask-sync-hello": ("flask-hello", "sync"),
}


@dataclass
class Server:
    app: str
    url: str
    process: subprocess.Popen[bytes]
    log: str
    workers: int = WORKERS

    def worker_pids(self) -> list[int]:
        # Both twins run under gunicorn's arbiter: the workers are its children.
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []
        return pids

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
    contenders: list[str],
    env: Mapping[str, Mapping[str, str]],
    log_dir: Path,
    workers: int = WORKERS,
) -> Iterator[dict[str, Server]]:
    """Start every contender at once (start-up is the slow part), yield when all answer.

    ``workers=1``: the per-worker figures of the streams scenario."""
    servers: dict[str, Server] = {}
    try:
        for name in contenders:
            app, worker = CONTENDERS[name]
            port = free_port()
            with (log_dir / f"{name}-{port}.log").open("wb") as log:
                process = subprocess.Popen(  # noqa: S603 — our own interpreter and servers
                    command(app, port, workers, flask_worker=worker, env=env[name]),
                    env=dict(env[name]),
                    stdout=log, stderr=log, start_new_session=True,
                )  # fmt: skip
            servers[name] = Server(app, f"http://127.0.0.1:{port}", process, log.name, workers)
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
            if answered and len(server.worker_pids()) >= server.workers:
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


@contextlib.contextmanager
def fronted(servers: Mapping[str, Server], log_dir: Path) -> Iterator[dict[str, str]]:
    """Each twin behind nginx, as the production topology puts it (deploy/nginx.conf.template,
    one server per upstream): ``{contender: nginx URL}``. One nginx per Flask worker class,
    as the template has one Flask upstream."""
    fronts: dict[str, str] = {}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for flask in ("flask", "flask-sync"):
            run_dir = log_dir / f"nginx-{flask}"
            run_dir.mkdir(exist_ok=True)
            ports = {"fastapi": free_port(), "flask": free_port()}
            upstreams = {
                "fastapi": [servers["fastapi"].url.removeprefix("http://")],
                "flask": [servers[flask].url.removeprefix("http://")],
            }
            config = nginx.write_config(run_dir, nginx.local_values(run_dir, ports, upstreams))
            nginx.check(config)
            with (run_dir / "nginx.log").open("wb") as log:
                processes.append(nginx.start(config, log))
            fronts[flask] = f"http://127.0.0.1:{ports['flask']}"
            fronts.setdefault("fastapi", f"http://127.0.0.1:{ports['fastapi']}")
        for url in fronts.values():
            _wait_for_front(url, processes)
        yield fronts
    finally:
        for process in processes:
            stop(process)


def _wait_for_front(url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError(f"nginx exited (logs in {url})")
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(url + READY_PATHS["fastapi"], timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nginx at {url} not ready in {STARTUP_SECONDS}s")
