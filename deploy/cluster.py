"""The production topology on one machine: nginx in front of two replicas of each twin, all
sharing one PostgreSQL and one Redis.

    python -m deploy.cluster [--workers N] [--fastapi-port 8000] [--flask-port 5000]

(``make cluster``.) The schema is migrated once, before any replica starts; every replica
runs the production command line of deploy/servers.py on a port of its own on loopback,
trusting nginx's X-Forwarded-For and nobody else's; nginx (deploy/nginx.conf.template) is
started once all answer. Ctrl-C or SIGTERM stops everything it started and removes its run
directory. ``Cluster`` is the same thing as a library, for tests/test_cluster.py.
One process per replica by default (``REPLICA_WORKERS``).
"""

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx2
import psycopg
from psycopg import sql
from sqlalchemy import make_url

from deploy import nginx
from deploy.servers import command, migrate_command

APPS = ("fastapi", "flask")
REPLICAS = 2
READY_PATH = "/api/v1/health"
STARTUP_SECONDS = 60
STOP_SECONDS = 15
# The replicas believe X-Forwarded-For from nginx alone, which reaches them over loopback.
# Nothing else may reach them: they listen on 127.0.0.1 (in compose, on no published port).
TRUSTED_PROXIES = "127.0.0.1/32"


class ClusterError(RuntimeError):
    pass


@dataclass
class Process:
    """One process we started (a replica or nginx), in a process group of its own."""

    name: str
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: signal.Signals) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL, the whole group (a gunicorn master and its workers): a crash, not a stop."""
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """Ask the group to stop; kill it if it has not within STOP_SECONDS."""
        if self.process is None or self.process.poll() is not None:
            return
        self.signal_group(signum)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Cluster:
    """nginx and ``replicas`` of each twin, for as long as the ``with`` block lasts.

    ``env`` is the replicas' whole environment (database, Redis, secret: the same for all).
    ``urls`` are nginx's, one per twin; ``replicas[app][i].url`` reaches one directly (as
    only a test should). ``kill`` and ``restart`` act on one replica.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        workers: int = 1,
        replicas: int = REPLICAS,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        self.env = {**env, "AUTHTWIN_TRUSTED_PROXIES": TRUSTED_PROXIES}
        self.workers = workers
        self.ports = dict(ports) if ports else {app: free_port() for app in APPS}
        self.run_dir = Path(tempfile.mkdtemp(prefix="authtwin-cluster-"))
        self.replicas = {
            app: [
                Process(f"{app}-{n}", self.run_dir / f"{app}-{n}.log", free_port())
                for n in range(1, replicas + 1)
            ]
            for app in APPS
        }
        self.proxy = Process("nginx", self.run_dir / "nginx.log")

    @property
    def urls(self) -> dict[str, str]:
        return {app: f"http://127.0.0.1:{port}" for app, port in self.ports.items()}

    def all_replicas(self) -> list[Process]:
        return [replica for app in APPS for replica in self.replicas[app]]

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        migrate(self.env, self.run_dir / "migrate.log")
        for replica in self.all_replicas():  # all at once: start-up is the slow part
            self._launch(replica)
        for replica in self.all_replicas():
            wait_until_ready(replica, replica.url)
        upstreams = {
            app: [f"127.0.0.1:{replica.port}" for replica in self.replicas[app]] for app in APPS
        }
        config = nginx.write_config(
            self.run_dir, nginx.local_values(self.run_dir, self.ports, upstreams)
        )
        nginx.check(config)
        # Appending: nginx reopens /dev/stdout (its access log) with O_APPEND, and "wb" let
        # its error log, on the inherited stderr, overwrite those lines.
        with self.proxy.log.open("ab") as log:
            self.proxy.process = nginx.start(config, log)
        for url in self.urls.values():
            wait_until_ready(self.proxy, url)

    def _launch(self, replica: Process) -> None:
        app = replica.name.rsplit("-", 1)[0]
        with replica.log.open("ab") as log:
            replica.process = subprocess.Popen(  # noqa: S603 — our interpreter, our servers
                command(app, replica.port, self.workers, env=self.env),
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill(self, app: str, index: int) -> None:
        """SIGKILL one replica, as a crash or an OOM kill would."""
        self.replicas[app][index].kill()

    def restart(self, app: str, index: int) -> None:
        replica = self.replicas[app][index]
        replica.stop()
        self._launch(replica)
        wait_until_ready(replica, replica.url)

    def stop(self) -> None:
        """nginx first (SIGQUIT: it finishes the requests it holds), then every replica at
        once; then the run directory."""
        self.proxy.stop(signal.SIGQUIT)
        stop_all(self.all_replicas())
        shutil.rmtree(self.run_dir, ignore_errors=True)


def stop_all(processes: Sequence[Process]) -> None:
    """SIGTERM to every group, then wait for each (their shutdowns overlap)."""
    running = [process for process in processes if process.running()]
    for process in running:
        process.signal_group(signal.SIGTERM)
    for process in running:
        process.stop()


def wait_until_ready(process: Process, url: str) -> None:
    """Until ``url`` answers its health check 200; ClusterError, with the log, if ``process``
    exits or STARTUP_SECONDS pass."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if not process.running():
            raise ClusterError(f"{process.name} exited:\n{process.output()}")
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(url + READY_PATH, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise ClusterError(f"{process.name} not ready in {STARTUP_SECONDS}s:\n{process.output()}")


def migrate(env: Mapping[str, str], log_path: Path) -> None:
    """``authtwin migrate``, once, before any replica starts (two replicas migrating at once
    is what the migration lock is for, not something to rely on at every start)."""
    if _run_logged(migrate_command(), env, log_path) != 0:
        output = log_path.read_text(encoding="utf-8", errors="replace")
        raise ClusterError(f"the migration failed:\n{output}")


def _run_logged(step: list[str], env: Mapping[str, str], log_path: Path) -> int:
    with log_path.open("wb") as log:
        return subprocess.run(  # noqa: S603 — our own interpreter
            step, env=env, stdout=log, stderr=log, check=False, timeout=STARTUP_SECONDS
        ).returncode


# One worker per replica: the replicas are the unit of scale, and nginx balances them. A
# stopping replica refuses new connections at once (gunicorn's arbiter and its workers close
# the listening socket as they stop), and nginx tries the next (docker-compose.yml alike).
REPLICA_WORKERS = 1

LOCAL_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/authtwin"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def production_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with production settings: the database and Redis it names (else the local
    ones, said so), and a signing secret (else one made for this run, shared by every
    replica: tokens then die with the cluster)."""
    env = {**environ, "AUTHTWIN_ENV": "production"}
    for name, local in (
        ("AUTHTWIN_DATABASE_URL", LOCAL_DATABASE),
        ("AUTHTWIN_REDIS_URL", LOCAL_REDIS),
    ):
        if not env.get(name):
            env[name] = local
            print(f"{name} is not set: using {local}", file=sys.stderr)
    if not env.get("AUTHTWIN_SECRET_KEY"):
        env["AUTHTWIN_SECRET_KEY"] = secrets.token_urlsafe(48)
        print(
            "AUTHTWIN_SECRET_KEY is not set: a random one for this run (tokens end with it)",
            file=sys.stderr,
        )
    return env


def create_database_if_missing(url: str) -> None:
    """The local default's database, made on first use (a given URL is used as it is)."""
    target = make_url(url)
    name = target.database or "authtwin"
    maintenance = target.set(drivername="postgresql", database="postgres")
    with psycopg.connect(
        maintenance.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
    ) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created the database {name!r}", file=sys.stderr)


def watch(cluster: Cluster) -> None:
    """Until a signal: say when a replica dies (nginx sends its requests to the others);
    stop when nginx does, as then nothing is served."""
    reported: set[str] = set()
    while cluster.proxy.running():
        for replica in cluster.all_replicas():
            if not replica.running() and replica.name not in reported:
                reported.add(replica.name)
                print(f"{replica.name} exited; the other replicas serve", file=sys.stderr)
        time.sleep(0.5)
    raise ClusterError(f"nginx exited:\n{cluster.proxy.output()}")


def _unwind(_signum: int, _frame: object) -> None:
    """SIGTERM or Ctrl-C: leave the ``with Cluster`` block, which stops everything on the way
    out, and ignore both from now on: a second signal (timeout(1) repeats it to its group;
    an impatient Ctrl-C) must not cut the clean-up short and orphan the replicas."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__)
    parser.add_argument(
        "--workers", type=int, default=REPLICA_WORKERS, help="worker processes per replica"
    )
    parser.add_argument("--fastapi-port", type=int, default=8000)
    parser.add_argument("--flask-port", type=int, default=5000)
    args = parser.parse_args(argv)
    env = production_environment(os.environ)
    if env["AUTHTWIN_DATABASE_URL"] == LOCAL_DATABASE:
        create_database_if_missing(LOCAL_DATABASE)
    signal.signal(signal.SIGTERM, _unwind)
    signal.signal(signal.SIGINT, _unwind)
    ports = {"fastapi": args.fastapi_port, "flask": args.flask_port}
    try:
        with Cluster(env, workers=args.workers, ports=ports) as cluster:
            for app, url in cluster.urls.items():
                print(
                    f"{app:8} {url}  (replicas: {', '.join(r.url for r in cluster.replicas[app])})"
                )
            print(f"logs in {cluster.run_dir}; Ctrl-C stops everything", flush=True)
            watch(cluster)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
