"""A crowd of WebSocket handshakes that never authenticate, against each twin's production
server (deploy/servers.py): the API answers beside them as it does without them.

Each socket that is not yet authenticated takes one of the process's stream places (and, on
the Flask twin, the thread that place stands for); a client holds only so many. The rest of
the crowd is refused at the handshake, so the threads the API needs stay free.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import production_env, serve
from tests.socket_crowd import crowd

# It starts servers of its own; xdist_group: one worker runs the module.
pytestmark = [pytest.mark.in_process, pytest.mark.xdist_group("stream-crowds")]

SOCKETS = 300
# /health/live's p99 beside the crowd. Generous for a loaded 2-core machine: the answer
# takes a few milliseconds alone, and seconds when the crowd holds the server's threads.
HEALTH_P99_SECONDS = 0.5


@pytest.fixture(params=["fastapi", "flask"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    app: str = request.param
    with serve(app, production_env(tmp_path / "server.db"), tmp_path, workers=1) as base_url:
        yield base_url


def test_sockets_that_never_authenticate_leave_the_api_answering(server: str) -> None:
    report = asyncio.run(crowd(server, SOCKETS, seconds=6))
    assert report.answers[101] > 0, report.answers  # the crowd was there
    assert report.p99 < HEALTH_P99_SECONDS, (report.p99, report.answers)
    # Refused at the handshake, with the contract's 429 (a client's share) or 503 (full).
    assert set(report.answers) <= {101, 429, 503}, report.answers
