"""Which address a request counts as (framework-free): the rules the rate limits rest on."""

from ipaddress import ip_network

import pytest

from shared.security.throttle import rate_limit_key
from shared.web.client_ip import client_ip

PROXIES = (ip_network("10.0.0.0/8"), ip_network("2001:db8:ffff::/48"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.7", ["203.0.113.9"], "198.51.100.7"),  # untrusted peer: header ignored
        ("10.0.0.2", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.2", ["192.0.2.1, 203.0.113.9, 10.0.0.3"], "203.0.113.9"),  # rightmost untrusted
        ("10.0.0.2", ["192.0.2.1", "203.0.113.9"], "203.0.113.9"),  # two headers, one list
        ("10.0.0.2", ["203.0.113.9:443"], "10.0.0.2"),  # garbled: stop at the proxy
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], "10.0.0.3"),  # all trusted: the farthest one
        ("::ffff:10.0.0.2", ["203.0.113.9"], "203.0.113.9"),  # IPv4 on a dual-stack socket
        ("10.0.0.2", ["::ffff:203.0.113.9"], "203.0.113.9"),
        ("2001:db8:ffff::1", ["2001:db8:1::5"], "2001:db8:1::5"),
        (None, ["203.0.113.9"], "unknown"),
    ],
)
def test_forwarded_for_is_believed_only_as_far_as_trusted_proxies(
    peer: str | None, forwarded: list[str], expected: str
) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_an_ipv6_client_counts_as_its_64() -> None:
    assert rate_limit_key("2001:db8:1:2::1") == rate_limit_key("2001:db8:1:2:ffff::9")
    assert rate_limit_key("2001:db8:1:2::1") != rate_limit_key("2001:db8:1:3::1")
    assert rate_limit_key("192.0.2.1") != rate_limit_key("192.0.2.2")
