"""Attack: a stream place's client share is counted per address, where every rate limit counts
an IPv6 client as its /64 (security/throttle.py ``rate_limit_key``): one subscriber with a /64
takes every place of a process, with sockets that never authenticate, no account needed.
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ServedFactory
from tests.event_clients import READ_SECONDS

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
