"""The production topology: nginx in front of two replicas of each twin (deploy/cluster.py),
sharing one PostgreSQL database (made for this module, dropped after it) and one Redis (under
a key prefix of this module's own).

What the replicas share must behave as one service: a token ended through one replica is
refused by the other; failed logins and the per-address limit count across replicas; a
replica killed mid-load loses no write it acknowledged. And what only the proxy can do: slow
clients cost nginx a buffer, not a Flask thread; nginx's own errors are the contract's JSON.

Each test talks from a loopback address of its own (127.0.1.N; all of 127/8 is loopback), so
per-address counters never leak between tests, and so the replicas' view of the client's
address through nginx can be checked against the address the test really used.
"""

import asyncio
import itertools
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx2
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url
from websockets.exceptions import InvalidStatus

from deploy import nginx
from deploy.cluster import Cluster, Process
from shared.domain.errors import OUTAGE_RETRY_AFTER
from shared.web.bodies import CONTENT_TOO_LARGE
from shared.web.headers import RESPONSE_HEADERS
from tests.conftest import IN_CI
from tests.event_clients import authenticate, open_events, open_socket, socket_rest
from tests.live import free_port, production_env
from tests.socket_crowd import crowd
from tests.support import PASSWORD, assert_error, assert_unauthorized, sign_up
from tests.test_stream_crowds import HEALTH_P99_SECONDS

# redis_url (conftest) skips without a reachable Redis, and fails instead under CI=true.
# xdist_group: under `pytest -n 2 --dist loadgroup` (make test) one worker runs this whole
# module, so one cluster is started, not one per worker.
pytestmark = [
    pytest.mark.in_process,
    pytest.mark.usefixtures("redis_url"),
    pytest.mark.xdist_group("cluster"),
]

RATE_LIMIT = 10  # per minute, per address, per operation (login here)
MAX_FAILURES = 4
SPOILERS = 40  # rounds of requests answered before their body was read
_addresses = itertools.count(2)


def client_address() -> str:
    return f"127.0.1.{next(_addresses)}"


@contextmanager
def client(base_url: str, address: str) -> Iterator[httpx2.Client]:
    """A client of ``base_url``'s API whose connections come from ``address``."""
    transport = httpx2.HTTPTransport(local_address=address)
    with httpx2.Client(base_url=f"{base_url}/api/v1", transport=transport, timeout=10) as made:
        yield made


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this module's own on the test PostgreSQL server."""
    raw = os.environ.get("AUTHTWIN_TEST_POSTGRES_URL")
    if not raw:
        if IN_CI:
            pytest.fail("CI requires PostgreSQL: AUTHTWIN_TEST_POSTGRES_URL is not set")
        pytest.skip("AUTHTWIN_TEST_POSTGRES_URL is not set")
    url = make_url(raw)
    name = f"authtwin_cluster_{uuid.uuid4().hex[:12]}"
    admin_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(drop)


@pytest.fixture(scope="module")
def cluster(database: str, redis_url: str) -> Iterator[Cluster]:
    env = production_env(
        Path("unused.db"),  # replaced: the replicas share PostgreSQL
        database_url=database,
        redis_url=redis_url,
        redis_key_prefix=f"authtwin-test-cluster-{uuid.uuid4().hex}",
        rate_limit=f"{RATE_LIMIT}/minute",
        login_max_failures=str(MAX_FAILURES),
        # A Flask replica's threads: 8 for requests and one per stream it may hold (deploy/
        # servers.py). Few streams, so that SLOW_CLIENTS can still take every thread.
        events_max_streams=str(EVENT_STREAMS),
    )
    with Cluster(env, workers=1) as started:
        yield started


def replica_urls(cluster: Cluster, app: str) -> tuple[str, str]:
    first, second = cluster.replicas[app]
    return first.url, second.url


# --- state shared by the replicas -------------------------------------------------------


def test_a_token_ended_through_one_replica_is_refused_by_the_other(
    cluster: Cluster, app_name: str
) -> None:
    address = client_address()
    first_url, second_url = replica_urls(cluster, app_name)
    with client(first_url, address) as first, client(second_url, address) as second:
        account = sign_up(first)
        assert second.get("/users/me", headers=account.headers).status_code == 200
        body = {"refresh_token": account.refresh_token}
        assert first.post("/auth/logout", json=body, headers=account.headers).status_code == 204
        assert_unauthorized(second.get("/users/me", headers=account.headers))
        assert_unauthorized(second.post("/auth/refresh", json=body))


def test_failed_logins_on_both_replicas_add_up_to_one_lockout(
    cluster: Cluster, app_name: str
) -> None:
    address = client_address()
    first_url, second_url = replica_urls(cluster, app_name)
    with client(first_url, address) as first, client(second_url, address) as second:
        email = sign_up(first).email
        wrong = {"email": email, "password": "not the password"}
        for replica in [first, second] * (MAX_FAILURES // 2):
            assert_error(replica.post("/auth/login", json=wrong), 401)
        for replica in (first, second):
            response = replica.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert_error(response, 429, "Too many requests; try again later")
            assert response.headers["retry-after"].isdigit()


def test_the_per_address_limit_counts_across_replicas_and_sees_the_client_through_nginx(
    cluster: Cluster, app_name: str
) -> None:
    address, bystander = client_address(), client_address()
    first_url, second_url = replica_urls(cluster, app_name)
    edge = cluster.urls[app_name]
    with client(edge, address) as through_nginx:
        account = sign_up(through_nginx)  # one login
    credentials = {"email": account.email, "password": PASSWORD}
    with client(first_url, address) as first, client(second_url, address) as second:
        # The rest of the budget, split between the replicas: each alone would allow it all.
        for replica in itertools.islice(itertools.cycle([first, second]), RATE_LIMIT - 1):
            assert replica.post("/auth/login", json=credentials).status_code == 200
    with client(edge, address) as through_nginx:
        # nginx replaces the client's X-Forwarded-For with the address it saw.
        forged = {"X-Forwarded-For": "203.0.113.7"}
        response = through_nginx.post("/auth/login", json=credentials, headers=forged)
        assert_error(response, 429, "Too many requests; try again later")
    with client(edge, bystander) as other:
        # The limit is the client's, not nginx's: another address is still served.
        assert other.post("/auth/login", json=credentials).status_code == 200


def test_an_error_sent_before_the_body_was_read_spoils_no_later_request(
    cluster: Cluster, app_name: str
) -> None:
    """gunicorn answers some errors (here a 404, and a 415 or, once this address's limit is
    spent, a 429) without reading the body. Kept alive, the connection carried the unread
    body into the next request (a 502 within 6 to 26 rounds); closed, the close can reset
    nginx's upload, which with nginx's default max_fails set the replica aside: two such
    requests and the twin had none left (a 502 within 11 to 20 rounds). See upstream_servers
    in deploy/nginx.py and the flask upstream in deploy/nginx.conf.template."""
    spoilers = [  # bodies over nginx's in-memory buffer: spooled to its temporary files
        ("/not-a-route", "application/json", 60_000),  # 404
        ("/auth/login", "text/plain", 50_000),  # 415
    ]
    with client(cluster.urls[app_name], client_address()) as edge:
        statuses = []
        for _ in range(SPOILERS):
            for path, media_type, size in spoilers:
                edge.post(path, content=b"x" * size, headers={"Content-Type": media_type})
            # A POST nginx does not resend: a spoiled connection would show as a 502.
            statuses.append(edge.post("/auth/logout", json={"refresh_token": "x"}).status_code)
    assert statuses == [401] * SPOILERS


# --- a replica killed mid-load -----------------------------------------------------------

BURST_CLIENTS = 6
SIGNUPS_PER_CLIENT = 8  # under RATE_LIMIT: every refusal here is the kill's doing
KILL_AFTER = 12  # answers seen before the kill


@dataclass
class Outcome:
    email: str
    status: int | None  # None: the connection failed
    content_type: str = ""
    body: str = ""


def sign_up_burst(base_url: str, outcomes: list[Outcome]) -> None:
    with client(base_url, client_address()) as burst:
        for _ in range(SIGNUPS_PER_CLIENT):
            email = f"burst-{uuid.uuid4().hex[:12]}@example.com"
            try:
                response = burst.post("/auth/signup", json={"email": email, "password": PASSWORD})
            except httpx2.TransportError as exc:
                outcomes.append(Outcome(email, None, body=repr(exc)))
                continue
            content_type = response.headers.get("content-type", "")
            outcomes.append(Outcome(email, response.status_code, content_type, response.text))


def stored_emails(database: str, emails: list[str]) -> set[str]:
    conninfo = make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, connect_timeout=5) as connection:
        rows = connection.execute("SELECT email FROM users WHERE email = ANY(%s)", (emails,))
        return {email for (email,) in rows}


def test_a_replica_killed_mid_load_loses_no_acknowledged_signup(
    cluster: Cluster, app_name: str, database: str
) -> None:
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=sign_up_burst, args=(cluster.urls[app_name], outcomes))
        for _ in range(BURST_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(outcomes) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.005)
        cluster.kill(app_name, 0)
        for thread in threads:
            thread.join(timeout=60)
    finally:
        cluster.restart(app_name, 0)
    assert len(outcomes) == BURST_CLIENTS * SIGNUPS_PER_CLIENT
    acknowledged = [outcome.email for outcome in outcomes if outcome.status == 201]
    assert stored_emails(database, acknowledged) == set(acknowledged)
    refused = [outcome for outcome in outcomes if outcome.status != 201]
    for outcome in refused:  # nginx's JSON 502 (the replica died holding it), or no answer
        if outcome.status is not None:
            assert (outcome.status, outcome.content_type) == (502, "application/json"), outcome
            assert outcome.body == '{"detail":"Bad Gateway"}'
    print(
        f"\n{app_name}: {len(acknowledged)} signups answered 201, all stored; "
        f"{sum(o.status == 502 for o in refused)} answered 502 by nginx; "
        f"{sum(o.status is None for o in refused)} connection errors",
        *(o.body for o in refused if o.status is None),
    )


# --- slow clients ------------------------------------------------------------------------

# What stalled the Flask twin under gunicorn gthread (issue 11): each connection takes one of
# the worker's threads, which blocks reading it with no timeout.
EVENT_STREAMS = 4  # per replica: more than the streams test below holds at once
SLOW_CLIENTS = {"headers": 16, "body": 14}  # over the 12 threads of a Flask replica
CROWD_SOCKETS = 300  # sockets that never authenticate, from one address
PROBE_SECONDS = 1.5


@contextmanager
def slow_clients(url: str, kind: str) -> Iterator[None]:
    """``SLOW_CLIENTS[kind]`` connections that send part of a request and then nothing."""
    host, port = url.removeprefix("http://").split(":")
    if kind == "headers":
        start = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: "
    else:
        start = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    connections = []
    try:
        for _ in range(SLOW_CLIENTS[kind]):
            connection = socket.create_connection((host, int(port)), timeout=5)
            connections.append(connection)
            connection.sendall(start)
        yield
    finally:
        for connection in connections:
            connection.close()


def health_in(url: str) -> float:
    """Seconds until ``url`` answers its health check; TimeoutException after PROBE_SECONDS."""
    began = time.monotonic()
    response = httpx2.get(f"{url}/api/v1/health", timeout=PROBE_SECONDS)
    assert response.status_code == 200, response.text
    return time.monotonic() - began


@pytest.mark.parametrize("kind", SLOW_CLIENTS)
def test_slow_clients_on_nginx_do_not_stop_a_twin_answering(
    cluster: Cluster, app_name: str, kind: str
) -> None:
    with slow_clients(cluster.urls[app_name], kind):
        assert health_in(cluster.urls[app_name]) < PROBE_SECONDS


@pytest.mark.parametrize("kind", SLOW_CLIENTS)
def test_without_nginx_slow_clients_stop_a_flask_replica_answering(
    cluster: Cluster, kind: str
) -> None:
    """The case for the proxy, kept as a test so that it is measured, not remembered: the
    same clients sent to a Flask replica directly leave it answering nobody (until they go).
    The FastAPI twin's event loop holds them (the test above, without nginx, would pass)."""
    replica = cluster.replicas["flask"][1]
    with slow_clients(replica.url, kind), pytest.raises(httpx2.TimeoutException):
        health_in(replica.url)
    health_in(replica.url)  # and answers again once they are gone


# --- nginx's own answers -----------------------------------------------------------------


def raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def json_error(status: int) -> bytes:
    """The servers' own body for ``status``: {"detail":<reason phrase>}, compact JSON (413 in
    RFC 9110's words: shared/web/bodies.py)."""
    detail = CONTENT_TOO_LARGE if status == 413 else HTTPStatus(status).phrase
    return json.dumps({"detail": detail}, separators=(",", ":")).encode()


def assert_raw_error(answer: bytes, status: int) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert b"\r\nContent-Type: application/json\r\n" in head + b"\r\n", answer
    assert body == json_error(status), answer


def test_nginx_answers_its_own_errors_in_the_contracts_json(
    cluster: Cluster, app_name: str
) -> None:
    with httpx2.Client(base_url=f"{cluster.urls[app_name]}/api/v1", timeout=10) as edge:
        huge_header = edge.get("/users/me", headers={"X-Huge": "a" * 16_384})
        too_long = edge.get("/users/" + "9" * 10_000)
        # Over AUTHTWIN_MAX_BODY_BYTES: refused as the replicas would, with their words.
        too_big = edge.post(
            "/auth/signup",
            content=b"x" * 2 * 1024 * 1024,
            headers={"Content-Type": "application/json"},
        )
        trace = edge.request("TRACE", "/health")  # nginx refuses TRACE itself
    for response, status in ((huge_header, 431), (too_long, 414), (too_big, 413), (trace, 405)):
        assert_error(response, status, json.loads(json_error(status))["detail"])
        assert response.content == json_error(status)
    url = cluster.urls[app_name]
    assert_raw_error(raw_request(url, b"NOT HTTP\r\n\r\n"), 400)
    gzipped = b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    assert_raw_error(raw_request(url, gzipped), 501)
    assert_raw_error(raw_request(url, b"GET /api/v1/health HTTP/2.0\r\nHost: x\r\n\r\n"), 505)


def test_every_error_page_of_nginx_is_the_servers_json_with_retry_after_on_5xx() -> None:
    """Each of the template's error pages, including those no test provokes (408, 500, 503,
    504): the servers' exact body, and Retry-After: 5 on 502, 503 and 504 as on the replicas'
    own 503s (OUTAGE_RETRY_AFTER)."""
    template = nginx.TEMPLATE.read_text(encoding="utf-8")
    pages = re.findall(r"location = /\.errors/(\d+) \{((?:[^}']|'[^']*')*)\}", template)
    codes = {int(code) for code in re.findall(r"^\s*error_page (\d+) ", template, re.MULTILINE)}
    assert {int(code) for code, _ in pages} == (codes - {494, 418}) | {431}
    for code, block in pages:
        assert f"return {code} '{json_error(int(code)).decode()}';" in block, code
    retry_after = re.search(r"map \$status \$retry_after \{([^}]*)\}", template)
    assert retry_after
    seconds = OUTAGE_RETRY_AFTER["Retry-After"]
    entries = {tuple(line.strip(" ;").split()) for line in retry_after[1].strip().splitlines()}
    assert entries == {("default", '""'), *((str(code), seconds) for code in (502, 503, 504))}
    assert "add_header Retry-After $retry_after always;" in template


def wait_until_listening(proxy: Process, url: str) -> None:
    deadline = time.monotonic() + 10
    while proxy.running() and time.monotonic() < deadline:
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen at {url}:\n{proxy.output()}", pytrace=False)


@contextmanager
def nginx_in_front_of(run_dir: Path, upstreams: list[str]) -> Iterator[dict[str, str]]:
    """The cluster's nginx config, both twins' upstreams ``upstreams`` (addresses)."""
    ports = {"fastapi": free_port(), "flask": free_port()}
    values = nginx.local_values(run_dir, ports, {"fastapi": upstreams, "flask": upstreams})
    config = nginx.write_config(run_dir, values)
    proxy = Process("nginx", run_dir / "nginx.log")
    # Appending: nginx writes its access log to /dev/stdout, which it opens again itself
    # (O_APPEND), and its error log to the inherited stderr; "wb" would let the one
    # overwrite the other.
    with proxy.log.open("ab") as log:
        proxy.process = nginx.start(config, log)
    try:
        urls = {app: f"http://127.0.0.1:{port}" for app, port in ports.items()}
        for url in urls.values():
            wait_until_listening(proxy, url)
        yield urls
    finally:
        proxy.stop()


def nginx_without_replicas(run_dir: Path) -> AbstractContextManager[dict[str, str]]:
    """The cluster's nginx config, its upstreams a port where nothing listens."""
    return nginx_in_front_of(run_dir, [f"127.0.0.1:{free_port()}"])


def test_with_no_replica_up_nginx_answers_502_in_json(tmp_path: Path) -> None:
    with nginx_without_replicas(tmp_path) as urls:
        for url in urls.values():
            response = httpx2.post(f"{url}/api/v1/auth/login", json={}, timeout=10)
            assert_error(response, 502, "Bad Gateway")
            assert response.headers["retry-after"] == "5"


# What nginx answers by itself, each provoked on a socket of its own: requests it refuses
# before any replica sees them, and the 502 of a twin with no replica up.
CLOSE = b"Host: x\r\nConnection: close\r\n"
NGINX_OWN_ANSWERS = {
    400: b"NOT HTTP\r\n\r\n",
    405: b"TRACE /api/v1/health HTTP/1.1\r\n" + CLOSE + b"\r\n",
    413: b"POST /api/v1/auth/login HTTP/1.1\r\n" + CLOSE
    + b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n" + b"x" * 70_000,
    414: b"GET /api/v1/users/" + b"9" * 10_000 + b" HTTP/1.1\r\n" + CLOSE + b"\r\n",
    431: b"GET /api/v1/users/me HTTP/1.1\r\n" + CLOSE + b"X-Huge: " + b"a" * 16_384
    + b"\r\n\r\n",
    501: b"POST /api/v1/auth/login HTTP/1.1\r\n" + CLOSE + b"Transfer-Encoding: gzip\r\n\r\n",
    502: b"GET /api/v1/health HTTP/1.1\r\n" + CLOSE + b"\r\n",
    505: b"GET /api/v1/health HTTP/2.0\r\n" + CLOSE + b"\r\n",
}  # fmt: skip


def header_fields(answer: bytes) -> list[tuple[str, str]]:
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
    fields = [line.split(":", 1) for line in head.split("\r\n")[1:]]
    return [(name.strip().lower(), value.strip()) for name, value in fields]


def assert_security_headers_once(answer: bytes) -> None:
    """Each of the headers every answer of the apps carries (shared/web/headers.py), once."""
    fields = header_fields(answer)
    for name, value in RESPONSE_HEADERS.items():
        assert [v for n, v in fields if n == name.lower()] == [value], (name, answer[:2000])


def test_nginx_answers_of_its_own_carry_the_apps_security_headers(tmp_path: Path) -> None:
    """An error nginx answers itself is as uncacheable, unsniffable and unframeable as the
    replicas' answers (OWASP REST Security Cheat Sheet, security headers)."""
    with nginx_without_replicas(tmp_path) as urls:
        for status, request in NGINX_OWN_ANSWERS.items():
            answer = raw_request(urls["flask"], request)
            assert_raw_error(answer, status)
            assert_security_headers_once(answer)


def test_the_replicas_answers_pass_nginx_with_their_headers_once(
    cluster: Cluster, app_name: str
) -> None:
    request = b"GET /api/v1/users/me HTTP/1.1\r\n" + CLOSE + b"\r\n"
    answer = raw_request(cluster.urls[app_name], request)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert_security_headers_once(answer)


class SilentReplica:
    """A fake replica: accepts a connection, reads one request (head and Content-Length
    body), records it, and closes without answering, as a replica dying while holding it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.received: list[tuple[str, bytes]] = []  # (method, body)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # shut down: the test is over
                return
            with connection:
                connection.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := connection.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
                length = int(fields.get("content-length", "0"))
                while len(body) < length and (chunk := connection.recv(65536)):
                    body += chunk
                if lines[0]:
                    self.received.append((lines[0].split(" ")[0], body))

    def count(self, method: str) -> int:
        return sum(received == method for received, _ in self.received)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone would not)
        self.listener.close()
        self.thread.join(timeout=5)


@contextmanager
def silent_replicas(count: int) -> Iterator[list[SilentReplica]]:
    replicas = [SilentReplica() for _ in range(count)]
    try:
        yield replicas
    finally:
        for replica in replicas:
            replica.close()


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def test_nginx_resends_only_a_get_or_head_a_replica_failed_holding(tmp_path: Path) -> None:
    """Two replicas that read each request and close without answering: what nginx sent to
    the first, it may send to the second only if it is a GET or a HEAD. A password change
    (PUT) or a deletion replayed on the second replica is a second write."""
    with (
        silent_replicas(2) as replicas,
        nginx_in_front_of(tmp_path, [replica.address for replica in replicas]) as urls,
    ):
        for replica in replicas:  # nginx_in_front_of's own GETs, waiting for nginx
            replica.received.clear()
        for method in METHODS:
            content = b"" if method in ("GET", "HEAD") else b'{"n": 1}'
            headers = {"Content-Type": "application/json"} if content else {}
            response = httpx2.request(
                method,
                f"{urls['fastapi']}/api/v1/users/me",
                content=content,
                headers=headers,
                timeout=10,
            )
            assert response.status_code == 502, (method, response.text)
            if method != "HEAD":
                assert response.json() == {"detail": "Bad Gateway"}
    arrivals = {method: sum(r.count(method) for r in replicas) for method in METHODS}
    print("\narrivals per method:", arrivals)
    assert arrivals == {method: 2 if method in ("GET", "HEAD") else 1 for method in METHODS}
    bodies = {body for replica in replicas for method, body in replica.received if method == "PUT"}
    assert bodies == {b'{"n": 1}'}  # the body still reaches the replica


def test_a_replica_refusing_the_connection_is_skipped_for_every_method(tmp_path: Path) -> None:
    """A replica that refuses the connection was sent nothing, so nginx tries another: for a
    POST by its own rule (location /), for a PUT or DELETE through @no_resend_retry
    (deploy/nginx.conf.template). Each request reaches the listening replica exactly once."""
    refused = f"127.0.0.1:{free_port()}"  # nothing listens there
    attempts = 6
    methods = ("POST", "PUT", "DELETE")
    with (
        silent_replicas(1) as (replica,),
        nginx_in_front_of(tmp_path, [refused, replica.address]) as urls,
    ):
        replica.received.clear()
        for method in methods:
            for _ in range(attempts):
                response = httpx2.request(
                    method, f"{urls['fastapi']}/api/v1/users/me", json={}, timeout=10
                )
                # The listening replica closed without answering: nginx's 502.
                assert_error(response, 502, "Bad Gateway")
                assert response.headers["retry-after"] == "5"
        log = (tmp_path / "nginx.log").read_text(encoding="utf-8")
    access = [line for line in log.splitlines() if " upstream=" in line]  # log_format edge
    for method in methods:
        # Per request, the replicas nginx tried, in order ("a, b" within one location,
        # "a : b" across @no_resend and @no_resend_retry).
        tried = [
            re.split(r", | : ", line.split(" upstream=")[1].split(" status=")[0])
            for line in access
            if f'"{method} ' in line
        ]
        assert len(tried) == attempts, (method, access)
        assert [refused, replica.address] in tried, (method, tried)  # some met the refusal
        assert all(attempt[-1] == replica.address for attempt in tried), (method, tried)
        assert replica.count(method) == attempts, method


def test_no_banner_through_nginx(cluster: Cluster, app_name: str) -> None:
    """gunicorn says ``Server: gunicorn``; nginx, with headers-more, says nothing."""
    if not nginx.HEADERS_MORE.exists():
        reason = f"{nginx.HEADERS_MORE} is missing (libnginx-mod-http-headers-more-filter)"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with httpx2.Client(base_url=cluster.urls[app_name], timeout=10) as edge:
        for response in (edge.get("/api/v1/health"), edge.get("/api/v1/users/me")):
            assert "server" not in response.headers, response.headers


# --- account events through nginx -------------------------------------------------------


def test_streams_pass_through_nginx_and_end_with_a_logout_on_either_replica(
    cluster: Cluster, app_name: str
) -> None:
    """nginx neither buffers the event stream nor refuses the socket's upgrade, and the
    replica that logs out is not the one holding the streams: Redis carries the event."""
    front = cluster.urls[app_name]
    address = client_address()
    with client(replica_urls(cluster, app_name)[1], address) as replica:
        user = sign_up(replica)
        with open_events(front, user.access_token) as stream, open_socket(front) as ws:
            authenticate(ws, user.access_token)
            body = {"refresh_token": user.refresh_token}
            assert replica.post("/auth/logout", json=body, headers=user.headers).status_code == 204
            logged_out = time.monotonic()
            assert [e.event for e in stream.rest()] == ["session.revoked"]
            assert [m["event"] for m in socket_rest(ws)] == ["session.revoked"]
            assert ws.close_code == 1008
    assert stream.ended_at is not None
    assert stream.ended_at - logged_out < 1.0


def test_sockets_that_never_authenticate_leave_the_api_answering_through_nginx(
    cluster: Cluster, app_name: str
) -> None:
    """Each replica counts the sockets nginx hands it by the client's own address: past the
    replica's places the handshake is refused, and the API's threads stay free."""
    front = cluster.urls[app_name]
    address = client_address()
    report = asyncio.run(crowd(front, CROWD_SOCKETS, seconds=6, source=address))
    assert report.answers[101] > 0, report.answers
    assert report.p99 < HEALTH_P99_SECONDS, (report.p99, report.answers)
    assert set(report.answers) <= {101, 429, 503}, report.answers
    # Their places are free again once the crowd has gone, for the tests that follow.
    deadline = time.monotonic() + 10
    for replica in cluster.replicas[app_name]:
        while True:
            try:
                with open_socket(replica.url, source=address):
                    break
            except InvalidStatus:
                assert time.monotonic() < deadline, "the crowd's places are still held"
                time.sleep(0.1)
