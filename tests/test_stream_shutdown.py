"""A production server stopped while event streams are open (SIGTERM, as a deploy stops a
replica): every stream ends at once with a last word the client can act on, the server exits
well within its grace period, and nothing is logged as an error.

The servers run the command lines of deploy/servers.py with their production grace period;
the clients are tests/event_clients.py's, an SSE reader and the ``websockets`` client.
"""

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from deploy.servers import GRACEFUL_SHUTDOWN_SECONDS
from tests.clients import live_client
from tests.event_clients import (
    EventReader,
    authenticate,
    open_events,
    open_socket,
    socket_rest,
)
from tests.live import (
    free_port,
    migrate,
    production_env,
    start_server,
    stop_server,
    wait_until_healthy,
)
from tests.support import sign_up

# It starts servers of its own; one xdist worker runs the module.
pytestmark = [pytest.mark.in_process, pytest.mark.xdist_group("stream-shutdown")]

APPS = ["fastapi", "flask"]
STREAMS_OF_EACH_KIND = 3
# The servers stop in well under a second with streams open; this leaves room for a loaded
# machine and stays far below the grace period a server waiting on its streams would take.
EXIT_SECONDS = 4
LOGGED_AS_ERRORS = ("Traceback", "Exception in ASGI application", "[ERROR]", "ERROR:")


@pytest.mark.parametrize("app", APPS)
def test_sigterm_ends_every_open_stream_at_once_with_a_last_word(app: str, tmp_path: Path) -> None:
    assert GRACEFUL_SHUTDOWN_SECONDS > 2 * EXIT_SECONDS  # what this test tells apart
    env = production_env(
        tmp_path / "server.db",
        rate_limit_enabled="false",
        events_max_streams_per_user=str(2 * STREAMS_OF_EACH_KIND),
        events_heartbeat_seconds="1",  # a reader waiting on a held stream hears it is held
    )
    with ExitStack() as stack:
        server, base_url = stack.enter_context(production_server(app, env, tmp_path))
        with live_client(base_url) as client:
            user = sign_up(client)
        readers: list[EventReader] = []
        sockets = []
        for _ in range(STREAMS_OF_EACH_KIND):
            readers.append(stack.enter_context(open_events(base_url, user.access_token)))
            ws = stack.enter_context(open_socket(base_url))
            authenticate(ws, user.access_token)
            sockets.append(ws)

        server.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        # The SSE client's last word: an event, before the stream ends (its EventSource then
        # reconnects, to another replica).
        for reader in readers:
            assert [(e.event, e.data) for e in reader.rest()] == [("server.stopping", {})]
            assert reader.ended_at is not None
            assert reader.ended_at - stopped < EXIT_SECONDS
        # The socket client's: 1012, service restart (IANA's WebSocket close code registry).
        for ws in sockets:
            assert socket_rest(ws) == []
            assert ws.close_code == 1012
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=EXIT_SECONDS)
        exited = time.monotonic() - stopped
        assert server.returncode is not None, "still running with its streams closed"
        assert exited < EXIT_SECONDS
    log = (tmp_path / f"{app}-server.log").read_text(errors="replace")
    assert not [line for line in log.splitlines() if any(e in line for e in LOGGED_AS_ERRORS)]


@contextlib.contextmanager
def production_server(
    app: str, env: dict[str, str], workdir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``app`` under its production command, one worker process; yields the process and
    its base URL, and stops what is left of it on the way out."""
    migrate(env)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with (workdir / f"{app}-server.log").open("wb") as log:
        server = start_server(app, port, env, log, workers=1)
    try:
        wait_until_healthy(base_url, server)
        yield server, base_url
    finally:
        stop_server(server)
