"""Brute-force protection: the per-account lockout and the per-client-address rate limit.

NIST SP 800-63B §5.2.2 (rate limiting: at most 100 consecutive failed attempts on one account;
the project locks after 10), OWASP ASVS v5 6.3.x (anti-automation for authentication) and the
OWASP Authentication and Credential Stuffing Prevention Cheat Sheets:

* the lockout counts failures per *account*, from any address and through either login
  endpoint, refuses even the right password while it holds, and lifts after its window;
* a success starts the count again (the failures must be consecutive);
* an unknown email locks exactly like a real one, so a lockout tells nothing about who has an
  account, and a 429 never echoes the password;
* the per-address limit counts each operation (signup, login, token, refresh) separately and
  believes ``X-Forwarded-For`` only from a trusted proxy, so a client cannot pick a fresh
  address for every guess.

The refusal is 429 with ``Retry-After`` in delay-seconds (RFC 6585 §4, RFC 9110 §10.2.3).
Tests with default settings also run against a live server; those that need a setting changed
use ``configured`` (in-process only).
"""

import os
import time

import httpx2
import pytest

from tests.conftest import ConfiguredApi
from tests.support import (
    PASSWORD,
    Account,
    all_at_once,
    assert_error,
    sign_up,
    unique_email,
)

TOO_MANY = "Too many requests; try again later"
# The contract's defaults; a live server started with other values tells the suite the same
# way it tells it the secret key (tests/live.py passes the server's environment on).
MAX_FAILURES = int(os.environ.get("AUTHTWIN_LOGIN_MAX_FAILURES", "10"))
LOCKOUT_SECONDS = int(os.environ.get("AUTHTWIN_LOGIN_LOCKOUT_SECONDS", "900"))
WRONG_PASSWORD = "not the password"

LOGIN_ENDPOINTS = ("login", "token")
REJECTED = {"login": 401, "token": 400}  # "Incorrect email or password" / invalid_grant
PROXY = ("127.0.0.1/32",)  # the peer every in-process request comes from


def forwarded_for(chain: str) -> dict[str, str]:
    return {"X-Forwarded-For": chain}


def attempt(
    client: httpx2.Client,
    endpoint: str,
    email: str,
    password: str,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """One login through ``/auth/login`` (JSON) or ``/auth/token`` (OAuth2 password form)."""
    if endpoint == "login":
        return client.post(
            "/auth/login", json={"email": email, "password": password}, headers=headers
        )
    form = {"grant_type": "password", "username": email, "password": password}
    return client.post("/auth/token", data=form, headers=headers)


def fail(
    client: httpx2.Client,
    endpoint: str,
    email: str,
    times: int,
    headers: dict[str, str] | None = None,
) -> None:
    """``times`` wrong passwords for ``email``, each refused as wrong (not yet as locked)."""
    for number in range(1, times + 1):
        response = attempt(client, endpoint, email, WRONG_PASSWORD, headers)
        assert response.status_code == REJECTED[endpoint], (number, response.text)


def assert_too_many_requests(response: httpx2.Response, *, window: int) -> int:
    """429 with the contract's body and a ``Retry-After`` of 1..``window`` seconds; that delay."""
    assert_error(response, 429, TOO_MANY)
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after  # delay-seconds: digits only, no date, no fraction
    seconds = int(retry_after)
    assert 0 < seconds <= window, seconds
    return seconds


def assert_locked(response: httpx2.Response) -> int:
    return assert_too_many_requests(response, window=LOCKOUT_SECONDS)


def assert_reveals_nothing(response: httpx2.Response, email: str, password: str) -> None:
    """Neither the password nor whose account it is, in the body or any header."""
    for secret in (password, email, email.split("@")[0]):
        assert secret not in response.text
        for name, value in response.headers.items():
            assert secret not in value, name


def same_headers(response: httpx2.Response) -> dict[str, str]:
    """The headers two answers must share; Date and Retry-After tick with the clock."""
    ticking = {"date", "retry-after"}
    return {name: value for name, value in response.headers.items() if name not in ticking}


# --- The per-account lockout --------------------------------------------------------------


@pytest.mark.parametrize("lock_via", ["login", "token", "alternating"])
@pytest.mark.parametrize("then", LOGIN_ENDPOINTS)
def test_after_too_many_wrong_passwords_even_the_right_one_is_refused(
    client: httpx2.Client, user: Account, lock_via: str, then: str
) -> None:
    for number in range(MAX_FAILURES):
        endpoint = LOGIN_ENDPOINTS[number % 2] if lock_via == "alternating" else lock_via
        # Every one of the N failures is still answered as a wrong password...
        fail(client, endpoint, user.email, 1)
    # ...and the next attempt, right password and all, is refused until the window passes.
    assert_locked(attempt(client, then, user.email, user.password))
    assert_locked(attempt(client, then, user.email, user.password))


def test_guesses_sent_at_the_same_moment_are_counted_one_by_one(
    client: httpx2.Client, user: Account
) -> None:
    """Counting is one atomic step per attempt, so a burst gets exactly N answers."""
    guesses = MAX_FAILURES + 5
    statuses = all_at_once(guesses, lambda: attempt(client, "login", user.email, WRONG_PASSWORD))
    assert statuses == [401] * MAX_FAILURES + [429] * 5


def test_the_lockout_counts_the_account_whatever_the_email_s_case(
    client: httpx2.Client, user: Account
) -> None:
    fail(client, "login", user.email.upper(), MAX_FAILURES // 2)
    fail(client, "token", user.email.swapcase(), MAX_FAILURES - MAX_FAILURES // 2)
    assert_locked(attempt(client, "login", user.email, user.password))


def test_failures_from_many_addresses_still_lock_the_account(configured: ConfiguredApi) -> None:
    # A per-address limit of 3 proves each failure below comes from an address of its own:
    # were they one client, the 4th would already be refused by that limit.
    api = configured(rate_limit="3/minute", rate_limit_enabled=True, trusted_proxies=PROXY)
    account = sign_up(api.client)
    for number in range(1, MAX_FAILURES + 1):
        fail(api.client, "login", account.email, 1, forwarded_for(f"198.51.100.{number}"))
    response = attempt(api.client, "login", account.email, PASSWORD, forwarded_for("203.0.113.5"))
    assert_locked(response)


def test_a_success_starts_the_count_again(client: httpx2.Client, user: Account) -> None:
    fail(client, "login", user.email, MAX_FAILURES - 1)
    assert attempt(client, "token", user.email, user.password).status_code == 200
    fail(client, "login", user.email, MAX_FAILURES - 1)
    response = attempt(client, "login", user.email, user.password)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("endpoint", LOGIN_ENDPOINTS)
def test_unknown_emails_lock_exactly_like_real_ones(
    client: httpx2.Client, user: Account, endpoint: str
) -> None:
    nobody = unique_email("nobody")
    for _ in range(MAX_FAILURES):  # side by side, so both locks start (and end) together
        fail(client, endpoint, user.email, 1)
        fail(client, endpoint, nobody, 1)
    real = attempt(client, endpoint, user.email, user.password)
    unknown = attempt(client, endpoint, nobody, user.password)
    real_wait, unknown_wait = assert_locked(real), assert_locked(unknown)
    assert real.content == unknown.content
    assert same_headers(real) == same_headers(unknown)
    assert abs(real_wait - unknown_wait) <= 1


@pytest.mark.parametrize("endpoint", LOGIN_ENDPOINTS)
def test_a_lockout_429_says_nothing_of_the_account_or_the_password(
    client: httpx2.Client, user: Account, endpoint: str
) -> None:
    fail(client, endpoint, user.email, MAX_FAILURES)
    response = attempt(client, endpoint, user.email, user.password)
    assert_locked(response)
    assert response.json() == {"detail": TOO_MANY}
    assert_reveals_nothing(response, user.email, user.password)


def test_the_lock_lifts_once_its_window_has_passed(configured: ConfiguredApi) -> None:
    api = configured(login_max_failures=2, login_lockout_seconds=1)
    account = sign_up(api.client)
    fail(api.client, "login", account.email, 2)
    retry_after = assert_too_many_requests(
        attempt(api.client, "login", account.email, account.password), window=1
    )
    time.sleep(retry_after + 0.25)  # the deadline the server gave, and a little more
    response = attempt(api.client, "login", account.email, account.password)
    assert response.status_code == 200, response.text


def test_locking_one_account_leaves_the_others_alone(client: httpx2.Client, user: Account) -> None:
    other = sign_up(client)
    fail(client, "login", user.email, MAX_FAILURES)
    assert_locked(attempt(client, "login", user.email, user.password))
    for endpoint in LOGIN_ENDPOINTS:
        response = attempt(client, endpoint, other.email, other.password)
        assert response.status_code == 200, response.text


def test_turning_the_rate_limit_off_leaves_the_lockout_on(configured: ConfiguredApi) -> None:
    # Were the (1/minute) per-address limit applied, the second login would already be a 429.
    api = configured(rate_limit="1/minute", rate_limit_enabled=False)
    account = sign_up(api.client)
    fail(api.client, "login", account.email, MAX_FAILURES)
    assert_locked(attempt(api.client, "login", account.email, account.password))


# --- The per-client-address rate limit ----------------------------------------------------

PER_ADDRESS = 3
LIMITED = {"rate_limit": f"{PER_ADDRESS}/minute", "rate_limit_enabled": True}
OPERATIONS = ("signup", "login", "token", "refresh")
SUCCESS = {"signup": 201, "login": 200, "token": 200, "refresh": 200}
ELSEWHERE = "192.0.2.77"  # where test accounts are set up, out of the way of the budget tested


def account_from_elsewhere(client: httpx2.Client) -> Account:
    """Signed up and logged in from ``ELSEWHERE`` (through the trusted proxy)."""
    email, headers = unique_email(), forwarded_for(ELSEWHERE)
    body = {"email": email, "password": PASSWORD}
    created = client.post("/auth/signup", json=body, headers=headers)
    assert created.status_code == 201, created.text
    tokens = client.post("/auth/login", json=body, headers=headers)
    assert tokens.status_code == 200, tokens.text
    return Account.of(created.json(), PASSWORD, tokens.json())


def perform(
    client: httpx2.Client,
    operation: str,
    account: Account,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    """One well-formed ``operation`` that succeeds unless throttled (refresh rotates the
    account's token)."""
    if operation == "signup":
        body = {"email": unique_email(), "password": PASSWORD}
        return client.post("/auth/signup", json=body, headers=headers)
    if operation in LOGIN_ENDPOINTS:
        return attempt(client, operation, account.email, account.password, headers)
    response = client.post(
        "/auth/refresh", json={"refresh_token": account.refresh_token}, headers=headers
    )
    if response.status_code == 200:
        account.refresh_token = response.json()["refresh_token"]
    return response


def guess(client: httpx2.Client, operation: str, headers: dict[str, str]) -> httpx2.Response:
    """What a client guessing at accounts or tokens sends: it counts even when it fails."""
    if operation == "signup":
        body = {"email": unique_email(), "password": PASSWORD}
        return client.post("/auth/signup", json=body, headers=headers)
    if operation in LOGIN_ENDPOINTS:
        return attempt(client, operation, unique_email("guess"), WRONG_PASSWORD, headers)
    return client.post("/auth/refresh", json={"refresh_token": "guessed.token"}, headers=headers)


def spend_budget(
    client: httpx2.Client,
    operation: str,
    account: Account,
    headers: dict[str, str] | None = None,
) -> None:
    for number in range(1, PER_ADDRESS + 1):
        response = perform(client, operation, account, headers)
        assert response.status_code == SUCCESS[operation], (number, response.text)


def assert_rate_limited(response: httpx2.Response) -> None:
    assert_too_many_requests(response, window=60)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_address_over_its_limit_is_refused_with_429(
    configured: ConfiguredApi, operation: str
) -> None:
    api = configured(**LIMITED, trusted_proxies=PROXY)
    account = account_from_elsewhere(api.client)
    spend_budget(api.client, operation, account)
    response = perform(api.client, operation, account)
    assert_rate_limited(response)
    assert_reveals_nothing(response, account.email, PASSWORD)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_operation_has_a_budget_of_its_own(configured: ConfiguredApi, operation: str) -> None:
    api = configured(**LIMITED, trusted_proxies=PROXY)
    account = account_from_elsewhere(api.client)
    spend_budget(api.client, operation, account)
    assert_rate_limited(perform(api.client, operation, account))
    for other in OPERATIONS:
        if other != operation:
            response = perform(api.client, other, account)
            assert response.status_code == SUCCESS[other], (other, response.text)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    configured: ConfiguredApi, operation: str
) -> None:
    api = configured(**LIMITED, trusted_proxies=PROXY)
    account = account_from_elsewhere(api.client)
    first, second = forwarded_for("203.0.113.10"), forwarded_for("203.0.113.20")
    spend_budget(api.client, operation, account, first)
    assert_rate_limited(perform(api.client, operation, account, first))
    response = perform(api.client, operation, account, second)
    assert response.status_code == SUCCESS[operation], response.text
    assert_rate_limited(perform(api.client, operation, account, first))


@pytest.mark.parametrize("operation", OPERATIONS)
def test_without_a_trusted_proxy_a_forged_x_forwarded_for_buys_no_fresh_budget(
    configured: ConfiguredApi, operation: str
) -> None:
    api = configured(**LIMITED)  # no trusted proxies: the header is the client's own words
    for number in range(1, PER_ADDRESS + 1):
        response = guess(api.client, operation, forwarded_for(f"198.51.100.{number}"))
        assert response.status_code != 429, (number, response.text)
    response = guess(api.client, operation, forwarded_for("198.51.100.99"))
    assert_rate_limited(response)
    assert PASSWORD not in response.text
    assert WRONG_PASSWORD not in response.text


@pytest.mark.parametrize(
    "chain",
    ["203.0.113.9, 127.0.0.1", "198.51.100.66, 203.0.113.9, 127.0.0.1"],
    ids=["client-then-proxy", "forged-entry-client-then-proxy"],
)
def test_a_forwarded_chain_counts_as_its_rightmost_untrusted_address(
    configured: ConfiguredApi, chain: str
) -> None:
    # Entries left of the first untrusted one were written by the client, and are ignored.
    api = configured(**LIMITED, trusted_proxies=PROXY)
    account = account_from_elsewhere(api.client)
    spend_budget(api.client, "login", account, forwarded_for("203.0.113.9"))
    assert_rate_limited(perform(api.client, "login", account, forwarded_for(chain)))
    # Not counted against the proxy itself (the TCP peer), whose budget is untouched.
    assert perform(api.client, "login", account).status_code == 200


# --- Re-authentication shares the lockout --------------------------------------------------


def test_wrong_current_passwords_count_towards_the_lockout(
    client: httpx2.Client, user: Account
) -> None:
    """A stolen access token must not buy unlimited password guesses through /users/me."""
    change = {"current_password": WRONG_PASSWORD, "new_password": "another fine password"}
    for _ in range(MAX_FAILURES):
        response = client.put("/users/me/password", json=change, headers=user.headers)
        assert_error(response, 400, "Incorrect password")
    assert_locked(attempt(client, "login", user.email, user.password))
    right = {**change, "current_password": user.password}
    assert_locked(client.put("/users/me/password", json=right, headers=user.headers))
    email_change = {"email": unique_email(), "current_password": user.password}
    assert_locked(client.patch("/users/me", json=email_change, headers=user.headers))
