"""Which address a request came from, for rate limits and logs.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only when the
peer is one of our own proxies (AUTHTWIN_TRUSTED_PROXIES), and then only as far back as the
chain stays inside them: the first address from the right that is not a trusted proxy is the
client. Anything else would let a client pick a fresh address for every guess.
"""

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address

Networks = Iterable[IPv4Network | IPv6Network]


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Networks) -> str:
    """The client's address given the TCP peer and every ``X-Forwarded-For`` header."""
    trusted = tuple(trusted)
    address = _unmapped(peer) if peer else "unknown"
    if not _is_trusted(address, trusted):
        return address
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if not _is_ip(hop):
            return address  # a garbled chain: stop at the last hop we could vouch for
        hop = _unmapped(hop)
        address = hop
        if not _is_trusted(hop, trusted):
            return hop
    return address


def _unmapped(address: str) -> str:
    """``::ffff:192.0.2.1`` (an IPv4 client on a dual-stack socket) as ``192.0.2.1``."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    mapped = ip.ipv4_mapped if ip.version == 6 else None
    return str(mapped) if mapped else address


def _is_ip(value: str) -> bool:
    try:
        ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
