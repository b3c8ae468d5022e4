"""Who holds a process's stream places: an IPv6 client as its /64, as every limit counts it,
and a HEAD request never (it answers a stream's headers and opens none)."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx2
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ServedFactory
from tests.event_clients import READ_SECONDS, events_url, open_events
from tests.support import sign_up

PROXY = ("127.0.0.1/32",)  # the peer every served request comes from


@contextmanager
def socket_from(url: str, forwarded_for: str) -> Iterator[ClientConnection]:
    """A socket that never authenticates, from ``forwarded_for`` as the trusted proxy says."""
    with connect(
        url.replace("http://", "ws://", 1) + "/api/v1/ws",
        additional_headers={"X-Forwarded-For": forwarded_for},
        open_timeout=READ_SECONDS,
        close_timeout=1,
    ) as ws:
        yield ws


def test_one_ipv6_64_cannot_take_all_of_a_servers_stream_places(served: ServedFactory) -> None:
    """One subscriber usually holds a whole /64: counted by address, it would take every
    place of a process with sockets that never authenticate, no account needed."""
    server = served(
        events_max_streams=3,
        events_max_streams_per_client=2,
        events_auth_seconds=30,
        trusted_proxies=PROXY,
    )
    with ExitStack() as held:
        # Two places for 2001:db8:1:2::/64: its share.
        held.enter_context(socket_from(server.url, "2001:db8:1:2::1"))
        held.enter_context(socket_from(server.url, "2001:db8:1:2::2"))
        # A third address of the same /64 is the same client: refused with the 429 of a share.
        with pytest.raises(InvalidStatus) as refused:
            held.enter_context(socket_from(server.url, "2001:db8:1:2::3"))
        assert refused.value.response.status_code == 429
        # And another client still finds the process's last place.
        with socket_from(server.url, "2001:db8:9:9::1"):
            pass


def test_a_head_on_a_kept_alive_connection_opens_no_stream_and_leaves_it_usable(
    served: ServedFactory,
) -> None:
    """A pooling client (a browser, a monitor) keeps its connection after a HEAD: a stream
    opened anyway would hold the user's place, and the connection, for ever."""
    server = served(events_max_streams_per_user=1)
    user = sign_up(server.api.client)
    with httpx2.Client(base_url=server.url, timeout=READ_SECONDS) as client:
        head = client.head(events_url(server.url), headers=user.headers)
        assert head.status_code == 200
        assert head.headers["content-type"] == "text/event-stream; charset=utf-8"
        # The connection stays open in the client's pool: no stream holds the user's one place.
        with open_events(server.url, user.access_token):
            pass
        # And the pooled connection answers the next request.
        me = client.get("/api/v1/users/me", headers=user.headers)
        assert me.status_code == 200, me.text
