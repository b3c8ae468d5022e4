"""A PostgreSQL and a Redis of a test's own, to stop, restart and freeze under the apps.

The shared servers (127.0.0.1:5432 and :6379) serve every other test and every other
checkout on the machine: an outage is only ever played on one of these. Each runs on a free
port, in a temporary directory, and is ended (by its own process ids) even when a test fails.

PostgreSQL comes from Debian's server binaries (``initdb``, ``pg_ctl``), run as the
``postgres`` user since the server refuses to run as root; Redis from ``redis-server``.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import redis

from tests.live import free_port

READY_SECONDS = 15  # a slow CI machine starting a server while others run


def postgres_binary(name: str) -> str | None:
    """``initdb`` or ``pg_ctl``: on PATH, or where Debian puts them (/usr/lib/postgresql/N/bin,
    which is not on PATH: Debian's wrappers manage clusters of their own)."""
    if found := shutil.which(name):
        return found
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return str(versions[-1]) if versions else None


def missing_binaries() -> str | None:
    """Why the private servers cannot run here, or None."""
    for binary in ("initdb", "pg_ctl"):
        if postgres_binary(binary) is None:
            return f"{binary} is not installed (Debian package: postgresql)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian package: redis-server)"
    return None


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``, from /proc (no procps needed)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def wait_until(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds``, never sleep and hope."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {seconds} s")
        time.sleep(0.05)


def _as_postgres(name: str, *arguments: str) -> list[str]:
    command = [postgres_binary(name) or name, *arguments]
    # PostgreSQL refuses to run as root; the tests run as root in CI and in containers.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PrivatePostgres:
    """One PostgreSQL cluster: ``stop``/``start`` (an outage) and ``freeze``/``thaw``
    (every server process SIGSTOPped: sockets stay open and the kernel still acknowledges
    TCP, so only the client's own timeouts can notice)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._frozen: list[int] = []

    def initdb(self) -> None:
        command = ("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._run(*command, "--no-sync", "--no-instructions")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self.thaw()  # a stopped process cannot act on a signal to exit
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def freeze(self) -> None:
        """SIGSTOP the postmaster first (no new backends), then every backend it started."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)
        self._frozen = [postmaster, *children_of(postmaster)]
        for pid in self._frozen[1:]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self._frozen):
            with suppress(ProcessLookupError):  # it may have exited meanwhile
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def accepts_connections(self) -> bool:
        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        try:
            psycopg.connect(conninfo, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def _run(self, *command: str) -> None:
        subprocess.run(  # noqa: S603 — Debian's PostgreSQL binaries, fixed arguments
            _as_postgres(*command),
            check=True,
            capture_output=True,
            timeout=READY_SECONDS,
        )


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="authtwin-pg-"))
    server = PrivatePostgres(root)
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        server.initdb()
        server.start()
        yield server
    finally:
        try:
            if (server.data / "postmaster.pid").exists():
                server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


class PrivateRedis:
    """One redis-server, by default without persistence; ``stop``/``start`` on the same port
    and directory (so a server given persistence ``options`` restarts with its data)."""

    def __init__(self, root: Path, options: tuple[str, ...] = NO_PERSISTENCE) -> None:
        self.root = root
        self.options = options
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        where = ("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root))
        self._process = subprocess.Popen(  # noqa: S603 — Debian's redis-server, given arguments
            ["redis-server", *self.options, *where],  # noqa: S607
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, seconds=READY_SECONDS, what="redis-server start")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=READY_SECONDS)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False


@contextmanager
def private_redis(options: tuple[str, ...] = NO_PERSISTENCE) -> Iterator[PrivateRedis]:
    root = Path(tempfile.mkdtemp(prefix="authtwin-redis-"))
    server = PrivateRedis(root, options)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
