"""Each production server on its own, without the nginx front, against hostile clients.

Raw sockets, because an HTTP client library would hide what is tested: a head too large, a
connection reused after an early error, a client that stops halfway, a banner, a shutdown.
The servers run the command lines of deploy/servers.py, one worker process each.
"""

import base64
import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from subprocess import Popen

import pytest

from deploy.servers import (
    LIMIT_REQUEST_FIELD_SIZE,
    LIMIT_REQUEST_FIELDS,
    LIMIT_REQUEST_LINE,
    REQUEST_BODY_SECONDS,
    REQUEST_HEAD_SECONDS,
    WORKERS,
    migrate,
)
from deploy.servers import command as production_command
from tests.live import free_port, production_env, serve, stop_server, wait_until_healthy

# It starts servers of its own; xdist_group: one worker runs the module, so each twin's
# module-scoped server starts once, not once per worker.
pytestmark = [pytest.mark.in_process, pytest.mark.xdist_group("server-hardening")]

APPS = ["fastapi", "flask"]
HEALTH = b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\n\r\n"
READ_SECONDS = 5


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture(scope="module", params=APPS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """One server per twin for the tests that leave it running; yields (app, port)."""
    app: str = request.param
    workdir = tmp_path_factory.mktemp(app)
    with serve(app, production_env(workdir / "server.db"), workdir, workers=1) as base_url:
        yield app, int(base_url.rsplit(":", 1)[1])


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS)


def read_answer(sock: socket.socket) -> Answer | None:
    """The next response on ``sock`` (Content-Length framed), or None if it was closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length])


def exchange(sock: socket.socket, request: bytes) -> Answer | None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(request)  # a server may answer and close before reading all of it
    return read_answer(sock)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def health_with(*header_lines: bytes, target: bytes = b"/api/v1/health") -> bytes:
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", b"Host: test", *header_lines, b"", b""])


REFUSED_HEADS = {
    "not HTTP": (b"HELLO THERE\r\n\r\n", 400),
    "request line over the limit": (
        health_with(target=b"/api/v1/health?q=" + b"a" * LIMIT_REQUEST_LINE),
        414,
    ),
    "header line over the limit": (
        health_with(b"X-Big: " + b"a" * LIMIT_REQUEST_FIELD_SIZE),
        431,
    ),
    "one header of 64 KiB": (health_with(b"X-Big: " + b"a" * 65536), 431),
    # A bearer token of 4 MB: refused at the line limit, never assembled or decoded.
    "an Authorization header of 4 MB": (
        health_with(b"Authorization: Bearer " + b"a" * (4 * 1024 * 1024)),
        431,
    ),
    "more headers than the limit": (
        health_with(*[b"X-H%d: v" % n for n in range(LIMIT_REQUEST_FIELDS + 1)]),
        431,
    ),
}


@pytest.mark.parametrize("case", REFUSED_HEADS)
def test_a_head_unparsable_or_over_the_limits_is_refused_in_json_and_the_connection_closed(
    server: tuple[str, int], case: str
) -> None:
    request, status = REFUSED_HEADS[case]
    with connect(server[1]) as sock:
        answer = exchange(sock, request)
        assert answer is not None
        assert (answer.status, answer.headers.get("connection")) == (status, "close")
        assert answer.headers.get("content-type") == "application/json"
        assert json.loads(answer.body) == {"detail": HTTPStatus(status).phrase}
        assert closed_by_server(sock)


def test_a_malformed_chunked_body_is_a_400_in_json_not_a_500(server: tuple[str, int]) -> None:
    """A chunk size that is not hexadecimal: the request is broken, not the service (gunicorn
    raises its parse error inside the app's read, which Flask took for a bug)."""
    request = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    with connect(server[1]) as sock:
        answer = exchange(sock, request)
        assert answer is not None
        assert answer.status == 400
        assert answer.headers.get("content-type") == "application/json"
        assert json.loads(answer.body) == {"detail": "Bad Request"}


def test_a_head_within_the_limits_is_served(server: tuple[str, int]) -> None:
    # each limit counts a line with its CRLF
    largest_header = b"X-Big: " + b"a" * (LIMIT_REQUEST_FIELD_SIZE - len(b"X-Big: \r\n"))
    longest_target = b"/api/v1/health?q=" + b"a" * (LIMIT_REQUEST_LINE - 40)
    many_headers = [b"X-H%d: v" % n for n in range(LIMIT_REQUEST_FIELDS - 1)]  # and Host
    with connect(server[1]) as sock:
        requests = [health_with(largest_header), health_with(*many_headers)]
        for request in [*requests, health_with(target=longest_target)]:
            answer = exchange(sock, request)
            assert answer is not None
            assert answer.status == 200


def test_a_large_body_does_not_count_as_head(server: tuple[str, int]) -> None:
    """Near the body limit (64 KiB), and larger than the server's reads of the head."""
    body = b'{"email": "a@example.com", "password": "%s"}' % (b"x" * 60_000)
    with connect(server[1]) as sock:
        answer = exchange(sock, post(b"/api/v1/auth/signup", body))
        assert answer is not None
        assert answer.status == 422


def test_a_head_that_never_ends_is_not_read_for_ever(server: tuple[str, int]) -> None:
    """Headers of 8 KiB each, past what the limits allow in all: refused, never stored."""
    endless = health_with()[:-2] + b"".join(
        b"X-H%d: %s\r\n" % (n, b"a" * 8000) for n in range(LIMIT_REQUEST_FIELDS + 10)
    )
    with connect(server[1]) as sock:
        answer = exchange(sock, endless)
        assert answer is not None
        assert answer.status == 431


def post(path: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
    return head % (path, content_type, len(body)) + body


def chunked(path: bytes, chunk: bytes, count: int) -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    return head % path + b"Transfer-Encoding: chunked\r\n\r\n" + frame * count + b"0\r\n\r\n"


EARLY_ERRORS = {
    "413 unread 200 KB body": (post(b"/api/v1/nowhere", b"x" * 200_000), 413),
    "413 declared 2 MB body": (post(b"/api/v1/auth/signup", b"x" * 2_000_000), 413),
    "413 chunked body": (chunked(b"/api/v1/auth/signup", b"x" * 65536, 20), 413),
    "415 small body": (post(b"/api/v1/auth/signup", b"x" * 100, b"text/plain"), 415),
    "405 small body": (
        b"PUT /api/v1/health HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
        405,
    ),
}


@pytest.mark.parametrize("case", EARLY_ERRORS)
def test_after_an_early_error_the_connection_works_or_is_closed_as_announced(
    server: tuple[str, int], case: str
) -> None:
    """A client reuses a kept-alive connection; one the server closes must say so first."""
    request, status = EARLY_ERRORS[case]
    with connect(server[1]) as sock:
        answer = exchange(sock, request)
        assert answer is not None
        assert answer.status == status
        if answer.headers.get("connection") == "close":
            assert closed_by_server(sock)
            return
        followers = [exchange(sock, HEALTH) for _ in range(5)]
        assert [a.status if a else "disconnected" for a in followers] == [200] * 5


def test_no_server_banner(server: tuple[str, int]) -> None:
    with connect(server[1]) as sock:
        answer = exchange(sock, HEALTH)
    assert answer is not None
    assert "server" not in answer.headers


GRACE_SECONDS = 2


@contextlib.contextmanager
def stopping_server(app: str, workdir: Path, workers: int) -> Iterator[tuple[Popen[bytes], int]]:
    """A server sent SIGTERM while a client is halfway through a request body; yields the
    server process and its port, with that client still connected."""
    port = free_port()
    env = production_env(workdir / "server.db")
    migrate(env)
    with (workdir / "server.log").open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 — our own interpreter and servers
            production_command(app, port, workers, graceful_seconds=GRACE_SECONDS),
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server)
        with connect(port) as stalled:
            stalled.sendall(post(b"/api/v1/auth/login", b"x" * 100)[:-50])  # half the body
            with connect(port) as other:  # the server has read what came before
                assert exchange(other, HEALTH) is not None
            os.kill(server.pid, signal.SIGTERM)
            yield server, port
    finally:
        stop_server(server)


@pytest.mark.parametrize("workers", [1, WORKERS])
@pytest.mark.parametrize("app", APPS)
def test_a_stopping_server_refuses_new_connections_and_exits_within_the_grace_period(
    app: str, workers: int, tmp_path: Path
) -> None:
    """A connection the server will never accept must be refused before the client sends a
    request on it: reset later, the client cannot know whether its POST ran. And a client
    stalled mid-body holds the shutdown no longer than the grace period.

    One process, as each replica runs behind the proxy (deploy/cluster.py), and the default
    number of workers, as a server standing on its own runs: gunicorn's arbiter closes its
    copy of the listening socket at once, and its workers theirs as they stop.
    """
    with stopping_server(app, tmp_path, workers=workers) as (server, port):
        started = time.monotonic()
        refused = False
        while not refused and time.monotonic() - started < 1.5 and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                refused = server.poll() is None  # while it still drains the stalled client
            time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=GRACE_SECONDS + 4)
        assert server.returncode is not None, "still running"
        assert time.monotonic() - started < GRACE_SECONDS + 4
    assert refused, "new connections were still accepted 1.5 s after SIGTERM"


def trickle_until_answered(sock: socket.socket, seconds: float) -> Answer | None:
    """Send a request head a byte at a time, twice a second, until the server answers or
    closes (its answer, or None), or ``seconds`` pass (the test fails)."""
    head = health_with(*[b"X-H%d: v" % n for n in range(50)])
    started = time.monotonic()
    for byte in head:
        assert time.monotonic() - started < seconds, "the head is still being read"
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return read_answer(sock)
        readable, _, _ = select.select([sock], [], [], 0.5)
        if readable:
            return read_answer(sock)
    raise AssertionError("the whole head was sent within the deadline: trickle it slower")


@pytest.mark.parametrize("client", ["silent", "trickling"])
def test_uvicorn_gives_a_request_head_a_deadline(client: str, tmp_path: Path) -> None:
    """A connection that sends nothing, or its head a byte at a time, is answered 408 and
    closed once ``REQUEST_HEAD_SECONDS`` have passed: each such client would otherwise hold
    its connection, and its memory, for ever (uvicorn has no deadline of its own).

    The FastAPI server only: gunicorn's threaded worker has none either, and a thread per
    connection besides; README (Operations) says what fronts the Flask server.
    """
    env = production_env(tmp_path / "server.db")
    with serve("fastapi", env, tmp_path, workers=1) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with connect(port) as sock:
            sock.settimeout(REQUEST_HEAD_SECONDS + 5)
            started = time.monotonic()
            if client == "silent":
                answer = read_answer(sock)
            else:
                answer = trickle_until_answered(sock, REQUEST_HEAD_SECONDS + 5)
            waited = time.monotonic() - started
            assert answer is not None, "closed without an answer"
            assert (answer.status, answer.headers.get("connection")) == (408, "close")
            assert json.loads(answer.body) == {"detail": "Request Timeout"}
            assert closed_by_server(sock)
    assert REQUEST_HEAD_SECONDS - 1 < waited < REQUEST_HEAD_SECONDS + 3


def test_uvicorn_gives_a_request_body_a_deadline(tmp_path: Path) -> None:
    """A body still coming ``REQUEST_BODY_SECONDS`` after its head is answered 408 and its
    connection closed: a client trickling its body (a byte every half second, within the
    size limit for over a day) would otherwise hold its connection, and the request, for
    ever. The FastAPI server only, as above."""
    env = production_env(tmp_path / "server.db")
    head = post(b"/api/v1/auth/login", b"x" * 60_000)[: -60_000 + 10]  # declares 60 kB
    with serve("fastapi", env, tmp_path, workers=1) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with connect(port) as sock:
            sock.settimeout(REQUEST_BODY_SECONDS + 5)
            started = time.monotonic()
            sock.sendall(head)
            while time.monotonic() - started < REQUEST_BODY_SECONDS + 5:
                try:
                    sock.sendall(b"x")
                except (BrokenPipeError, ConnectionResetError):
                    break
                if select.select([sock], [], [], 0.5)[0]:
                    break
            answer = read_answer(sock)
            waited = time.monotonic() - started
            assert answer is not None, "closed without an answer"
            assert (answer.status, answer.headers.get("connection")) == (408, "close")
            assert json.loads(answer.body) == {"detail": "Request Timeout"}
            assert closed_by_server(sock)
    assert REQUEST_BODY_SECONDS - 1 < waited < REQUEST_BODY_SECONDS + 3
    # The request waiting for the body saw its client leave: no error of the application's.
    assert "Traceback" not in (tmp_path / "fastapi-server.log").read_text(errors="replace")


def reset_socket_handshake(port: int) -> None:
    """A WebSocket handshake whose client resets the connection before reading the 101."""
    with socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            b"GET /api/v1/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: " + key.encode() + b"\r\n\r\n"
        )
        # Linger 0: close sends a reset, not a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("app", APPS)
def test_a_socket_handshake_its_client_resets_is_no_error(app: str, tmp_path: Path) -> None:
    """A client gone before its handshake's answer has left nothing to answer: no error is
    logged for it, or anyone could fill the error log at will."""
    with serve(app, production_env(tmp_path / "server.db"), tmp_path, workers=1) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        for _ in range(10):
            reset_socket_handshake(port)
        with socket.create_connection(("127.0.0.1", port), timeout=READ_SECONDS) as sock:
            sock.sendall(HEALTH)
            answer = read_answer(sock)
        assert answer is not None
        assert answer.status == 200
    # The server has stopped, after finishing what it had accepted: its log is complete.
    log = (tmp_path / f"{app}-server.log").read_text(errors="replace")
    assert '"level": "ERROR"' not in log, log[-2000:]
    assert "Traceback" not in log, log[-2000:]
