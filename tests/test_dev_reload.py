"""``make dev`` and ``make dev-flask`` restart their server when the code changes.

Each case runs the Makefile's own target (not a copy of its command line) on a free port and
a temporary SQLite file, waits for /health, then sets the modification time of a module of
the shared core to now, and changes nothing else: the repository's content is untouched.
Both reloaders take that for an edit, as they would a save from an editor: Werkzeug's stat
reloader compares modification times, and uvicorn's watchfiles hears of it from inotify.
Then the reloader must log the change of that very file, the server's worker process must
have been replaced by a new one, and /health must answer again.
"""

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.live import ServerNotReady, free_port, stop_server, wait_until_healthy

pytestmark = [
    pytest.mark.in_process,  # it starts servers of its own
    pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="reads processes from /proc"),
]

ROOT = Path(__file__).resolve().parents[1]
RELOAD_SECONDS = 30
STOP_SECONDS = 10

# Watched by uvicorn only because of `--reload-dir shared`; by Flask as an imported module.
CHANGED = Path("shared/__init__.py")
# make target: (its port variable, what its reloader logs before the changed file's name)
TARGETS = {
    "dev": ("DEV_PORT", "WatchFiles detected changes in"),
    "dev-flask": ("DEV_FLASK_PORT", "Detected change in"),
}


@pytest.fixture
def one_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each server would also restart for the other case's change, so under pytest-xdist the
    cases take turns, on a lock in the directory that the workers' temporary paths share."""
    with (tmp_path_factory.getbasetemp().parent / "authtwin-dev-reload.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


@pytest.mark.usefixtures("one_at_a_time")
@pytest.mark.parametrize("make_target", TARGETS)
def test_the_dev_server_restarts_when_the_code_changes(make_target: str, tmp_path: Path) -> None:
    port_variable, reloader_says = TARGETS[make_target]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [
        # This environment is installed (pytest runs in it): `-o install` tells make not to
        # reinstall it, as it would whenever pyproject.toml is newer, and BIN serves its scripts.
        "make", "-s", "-o", "install", make_target,
        f"BIN={Path(sys.executable).parent}", f"{port_variable}={port}",
    ]  # fmt: skip
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHTWIN_")}
    env["AUTHTWIN_DATABASE_URL"] = f"sqlite:///{tmp_path / 'dev.db'}"
    env.pop("MAKEFLAGS", None)  # the flags of a `make test` running this are not for this make
    log_path = tmp_path / f"make-{make_target}.log"
    with log_path.open("wb") as log:
        # A session of its own: make, the reloader and its worker are one process group.
        server = subprocess.Popen(  # noqa: S603 — make, on our own Makefile
            command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )

    def fail(reason: str) -> NoReturn:
        output = log_path.read_text(errors="replace")
        pytest.fail(f"{reason}\n--- make {make_target} ---\n{output}", pytrace=False)

    try:
        try:
            wait_until_healthy(base_url, server)
        except ServerNotReady as exc:
            fail(str(exc))
        before = process_group(server.pid)
        logged_before = log_path.stat().st_size

        os.utime(ROOT / CHANGED)

        deadline = time.monotonic() + RELOAD_SECONDS
        while True:
            logged = log_path.read_bytes()[logged_before:].decode(errors="replace")
            # uvicorn logs the path from the checkout, Werkzeug the absolute one: both end so.
            noticed = any(
                reloader_says in line and f"{CHANGED}'" in line for line in logged.splitlines()
            )
            now = process_group(server.pid)
            if noticed and before - now and now - before:  # a worker gone, and a new one
                break
            if time.monotonic() > deadline or server.poll() is not None:
                fail(
                    f"no restart for {CHANGED} within {RELOAD_SECONDS}s (reloader noticed: "
                    f"{noticed}; processes before: {sorted(before)}, now: {sorted(now)})"
                )
            time.sleep(0.2)
        try:
            wait_until_healthy(base_url, server)  # only the new worker can answer now
        except ServerNotReady as exc:
            fail(f"after the restart: {exc}")
    finally:
        stop(server)


def process_group(pgid: int) -> set[int]:
    """The live processes of a process group: here make, its shell, the reloader, its worker.

    Zombies are left out: dead, they wait only for init to reap them, which can take a while.
    """
    members: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the command name (in parentheses): state, parent, process group, ...
            state, _, group = stat.read_text().rpartition(")")[2].split()[:3]
        except OSError:
            continue  # exited since the listing
        if int(group) == pgid and state != "Z":
            members.add(int(stat.parent.name))
    return members


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group; make exits first, so wait for the rest of it too."""
    stop_server(server)
    deadline = time.monotonic() + STOP_SECONDS
    while process_group(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_group(server.pid):  # still there: no more asking
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
