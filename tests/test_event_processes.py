"""Events cross processes: a revocation made through one server closes a stream held by
another, through Redis pub/sub (the FastAPI twin and the Flask twin, each its own process,
on one database and one Redis, as two replicas behind a balancer would be)."""

import time
from pathlib import Path

import httpx2
import pytest

from tests.event_clients import authenticate, open_events, open_socket, socket_rest
from tests.support import sign_up
from tests.test_events import CLOSED_WITHIN_SECONDS, logout
from tests.test_shared_counters import two_servers

# Starts servers of its own, in this process's test run only.
pytestmark = pytest.mark.in_process


def root_of(client: httpx2.Client) -> str:
    return str(client.base_url).removesuffix("/").removesuffix("/api/v1")


def test_a_logout_through_one_process_closes_streams_held_by_another(
    tmp_path: Path, redis_url: str
) -> None:
    with two_servers(tmp_path, redis_url) as (fastapi, flask):
        user = sign_up(fastapi)
        with open_events(root_of(flask), user.access_token) as stream:
            logout(fastapi, user)
            logged_out = time.monotonic()
            events = stream.rest()
        # The logout's own event, which only Redis could have carried here: the Flask
        # process's own check would have found the session ended only at its next
        # heartbeat (15 s by default), and said "revoked".
        assert [(e.event, e.data) for e in events] == [("session.revoked", {"reason": "logout"})]
        assert stream.ended_at is not None
        assert stream.ended_at - logged_out < CLOSED_WITHIN_SECONDS


def test_a_socket_on_the_fastapi_process_hears_a_logout_through_the_flask_one(
    tmp_path: Path, redis_url: str
) -> None:
    with two_servers(tmp_path, redis_url) as (fastapi, flask):
        user = sign_up(flask)
        with open_socket(root_of(fastapi)) as ws:
            authenticate(ws, user.access_token)
            logout(flask, user)
            rest = socket_rest(ws)
            assert ws.close_code == 1008
    assert [(m["event"], m["data"]) for m in rest] == [("session.revoked", {"reason": "logout"})]
