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
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.strategies import MovingWindowRateLimiter

from shared.domain import errors
from shared.security.memory_counters import BoundedMemoryStorage
from shared.security.throttle import LinkPurpose, Throttle
from tests.clients import runtime_of
from tests.conftest import ConfiguredApi
from tests.support import PASSWORD, sign_up, unique_email

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


CEILINGS: dict[LinkPurpose, RateLimitItem] = {
    "password_reset": parse("5/30 minutes"),
    "verify_email": parse("20/hour"),
}


def small_throttle(counters: BoundedMemoryStorage) -> Throttle:
    return Throttle(
        limiter=MovingWindowRateLimiter(counters),
        per_client=parse("5/second"),
        failures=RateLimitItemPerSecond(3, 60),
        mail=parse("5/hour"),
        mail_ceilings=CEILINGS,
    )


def mail_to(throttle: Throttle, address: str, client_ip: str) -> None:
    """One reset mail to ``address``, asked for from ``client_ip``."""
    throttle.limit_link_mail("password_reset", address, client_ip=client_ip)


def test_a_flood_of_fresh_keys_neither_denies_a_newcomer_nor_wipes_a_lockout() -> None:
    """The store stays bounded, yet a client who sends more fresh keys than it holds neither
    keeps newcomers out (a 503 for everyone not yet counted) nor evicts a lockout."""
    now = [1_000_000.0]
    counters = BoundedMemoryStorage(max_keys=10, clock=lambda: now[0])
    throttle = small_throttle(counters)
    for _ in range(3):
        throttle.count_login_attempt("victim@example.com")
    with pytest.raises(errors.TooManyRequests):
        throttle.count_login_attempt("victim@example.com")

    for number in range(100):  # fresh addresses, accounts and recipients, far past the room
        address = f"198.51.100.{number}"
        throttle.limit_client("login", address)
        throttle.count_login_attempt(f"flood-{number}@example.com")
        mail_to(throttle, f"flood-{number}@example.com", address)
    assert len(counters) <= 3 * 10  # a budget per kind of key

    throttle.limit_client("login", "192.0.2.1")  # the newcomer is counted, not refused
    throttle.count_login_attempt("newcomer@example.com")
    mail_to(throttle, "newcomer@example.com", "192.0.2.1")
    with pytest.raises(errors.TooManyRequests):  # and the lockout still holds
        throttle.count_login_attempt("victim@example.com")


def test_thirty_five_addresses_at_the_documented_limits_do_not_deny_a_newcomer() -> None:
    """35 IPv4 clients, each at the default 20 requests a minute of reset, signup, login and
    token, every one naming a fresh address, for an hour (the mail window): a reset or
    signup leaves a key for an hour, a login one for the lockout's 15 minutes. At the
    default size that filled the store, and every client not yet counted got 503."""
    now = [1_000_000.0]
    counters = BoundedMemoryStorage(clock=lambda: now[0])
    throttle = Throttle(
        limiter=MovingWindowRateLimiter(counters),
        per_client=parse("20/minute"),
        failures=RateLimitItemPerSecond(10, 900),
        mail=parse("5/hour"),
        mail_ceilings=CEILINGS,
    )
    clients = [f"203.0.113.{number}" for number in range(35)]
    step = 60 * 1.02 / (20 * len(clients))  # each client a little under 20 a minute
    for minute in range(60):
        for turn in range(20):
            for number, address in enumerate(clients):
                now[0] += step
                fresh = f"{minute}-{turn}-{number}@example.com"
                throttle.limit_client("password_reset", address)
                mail_to(throttle, f"reset-{fresh}", address)
                throttle.limit_client("signup", address)
                mail_to(throttle, f"signup-{fresh}", address)
                for operation in ("login", "token"):
                    throttle.limit_client(operation, address)
                    throttle.count_login_attempt(f"{operation}-{fresh}")

    throttle.limit_client("login", "192.0.2.1")
    throttle.count_login_attempt("newcomer@example.com")
    throttle.limit_client("password_reset", "192.0.2.1")
    mail_to(throttle, "newcomer@example.com", "192.0.2.1")


def test_a_flood_of_fresh_keys_through_the_api_leaves_newcomers_served(
    configured: ConfiguredApi,
) -> None:
    """Both twins, with the store made small: a victim locked, then clients naming fresh
    addresses until the store is over-full; a newcomer signs up, logs in and asks for a reset,
    and the victim's lockout holds."""
    api = configured(redis_url=None, trusted_proxies=PROXY, login_max_failures=3)
    counters = runtime_of(api.client).throttle.limiter.storage
    assert isinstance(counters, BoundedMemoryStorage)
    counters.max_keys = 20
    victim = sign_up(api.client)
    for _ in range(3):
        wrong = {"email": victim.email, "password": "a guess"}
        assert api.client.post("/auth/login", json=wrong).status_code == 401
    right = {"email": victim.email, "password": PASSWORD}
    assert api.client.post("/auth/login", json=right).status_code == 429

    for number in range(5):
        headers = {"X-Forwarded-For": f"198.51.100.{number}"}
        for _ in range(10):
            fresh = {"email": unique_email("flood"), "password": "a guess"}
            answer = api.client.post("/auth/login", json=fresh, headers=headers)
            assert answer.status_code in (401, 503), answer.text
            answer = api.client.post("/auth/password-reset", json={"email": fresh["email"]})
            assert answer.status_code in (202, 503), answer.text

    newcomer = {"X-Forwarded-For": "192.0.2.1"}
    email = unique_email("newcomer")
    signed = api.client.post(
        "/auth/signup", json={"email": email, "password": PASSWORD}, headers=newcomer
    )
    assert signed.status_code == 201, signed.text
    own = {"email": email, "password": PASSWORD}
    assert api.client.post("/auth/login", json=own, headers=newcomer).status_code == 200
    reset = api.client.post("/auth/password-reset", json={"email": email}, headers=newcomer)
    assert reset.status_code == 202, reset.text
    assert api.client.post("/auth/login", json=right).status_code == 429


def test_a_flood_of_fresh_accounts_evicts_its_own_keys_before_a_count_of_failures() -> None:
    """Keys hit once go first: an account two failures from its lockout keeps them."""
    counters = BoundedMemoryStorage(max_keys=10, clock=lambda: 1_000_000.0)
    throttle = small_throttle(counters)
    for _ in range(2):
        throttle.count_login_attempt("victim@example.com")
    for number in range(100):
        throttle.count_login_attempt(f"flood-{number}@example.com")
    throttle.count_login_attempt("victim@example.com")  # the third failure: locked
    with pytest.raises(errors.TooManyRequests):
        throttle.count_login_attempt("victim@example.com")
