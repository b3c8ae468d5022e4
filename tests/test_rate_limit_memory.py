"""The throttle's counters stay bounded whatever keys hostile clients make up.

Every address (each IPv6 /64 a subscriber holds) and every email tried gets a counter. An
attacker makes as many as it sends requests, so a store that keeps them all grows without
end: ``limits``' in-process store did (60,000 /64s through a trusted proxy: 48 MiB that never
came back). In memory, a counter is dropped once its window has passed and the store holds at
most a fixed number; in Redis, every counter carries its window as a TTL.

The store's clock is moved on rather than waited for.
"""

import time
import uuid
from typing import cast

import httpx2
import pytest
import redis
from limits import RateLimitItemPerSecond, parse
from limits.strategies import MovingWindowRateLimiter

from shared.domain import errors
from shared.security.memory_counters import BoundedMemoryStorage
from shared.security.throttle import Throttle
from tests.clients import runtime_of
from tests.conftest import ConfiguredApi
from tests.support import unique_email

pytestmark = pytest.mark.in_process

PROXY = ("127.0.0.1/32",)  # the peer every in-process request comes from
HOSTILE = 100  # distinct addresses, each trying a distinct unknown account
WINDOWS = {  # one second each: the per-address limit and the lockout
    "rate_limit": "1/second",
    "rate_limit_enabled": True,
    "trusted_proxies": PROXY,
    "login_lockout_seconds": 1,
}


def guess_from_a_fresh_network(client: httpx2.Client, number: int) -> None:
    """One password guess at an unknown account, from a /64 of its own via the proxy."""
    form = {"grant_type": "password", "username": unique_email("nobody"), "password": "guess"}
    headers = {"X-Forwarded-For": f"2001:db8:{number:x}::1"}
    response = client.post("/auth/token", data=form, headers=headers)
    assert response.json()["error"] == "invalid_grant", response.text


def test_in_memory_the_counters_of_many_clients_go_once_their_window_has_passed(
    configured: ConfiguredApi,
) -> None:
    api = configured(redis_url=None, **WINDOWS)
    counters = runtime_of(api.client).throttle.limiter.storage
    assert isinstance(counters, BoundedMemoryStorage)
    now = time.time()
    counters.clock = lambda: now  # stopped: however long the requests take, all are counted
    for number in range(HOSTILE):
        guess_from_a_fresh_network(api.client, number)
    assert len(counters) == 2 * HOSTILE  # an address and an account each

    now += 1.5  # past both windows
    guess_from_a_fresh_network(api.client, HOSTILE)
    assert len(counters) == 2  # the newcomer's own: the others are gone


def test_in_redis_every_counter_expires_with_its_window(
    configured: ConfiguredApi, redis_url: str
) -> None:
    prefix = f"authtwin-test-{uuid.uuid4().hex}"
    # A minute, not a second: every key is still there when its TTL is read.
    minute = {**WINDOWS, "rate_limit": "1/minute", "login_lockout_seconds": 60}
    api = configured(redis_url=redis_url, redis_key_prefix=prefix, **minute)
    for number in range(HOSTILE // 10):
        guess_from_a_fresh_network(api.client, number)
    store = redis.Redis.from_url(redis_url)
    keys = list(store.scan_iter(match=f"{prefix}*"))
    try:
        assert len(keys) == 2 * (HOSTILE // 10)
        ttls = [cast(int, store.pttl(key)) for key in keys]
        assert all(0 < ttl <= 60_000 for ttl in ttls), ttls
    finally:
        store.delete(*keys)


def small_throttle(counters: BoundedMemoryStorage) -> Throttle:
    return Throttle(
        limiter=MovingWindowRateLimiter(counters),
        per_client=parse("5/second"),
        failures=RateLimitItemPerSecond(3, 60),
        mail=parse("5/hour"),
    )


def test_a_full_store_refuses_newcomers_rather_than_forget_a_lockout() -> None:
    """Evicting the oldest counter to make room would let anyone who sends enough fresh keys
    wipe a lockout; a full store answers 503 to newcomers instead, until counters expire."""
    now = [1_000_000.0]
    counters = BoundedMemoryStorage(max_keys=10, clock=lambda: now[0])
    throttle = small_throttle(counters)
    for _ in range(3):
        throttle.count_login_attempt("victim@example.com")
    with pytest.raises(errors.TooManyRequests):
        throttle.count_login_attempt("victim@example.com")

    for number in range(9):  # the attacker fills the store with fresh addresses
        throttle.limit_client("login", f"198.51.100.{number}")
    with pytest.raises(errors.ThrottleUnavailable):
        throttle.limit_client("login", "198.51.100.200")
    with pytest.raises(errors.TooManyRequests):  # the lockout still holds
        throttle.count_login_attempt("victim@example.com")
    assert len(counters) == 10

    now[0] += 1.5  # the addresses' one-second window has passed; the lockout's has not
    throttle.limit_client("login", "198.51.100.200")
    assert len(counters) == 2
    with pytest.raises(errors.TooManyRequests):
        throttle.count_login_attempt("victim@example.com")
