"""Strangers cannot spend an address's mail: its owner can still recover it while they flood.

A reset or verification mail is counted per address *and* requesting client (an IPv4
address, an IPv6 /64): one client's requests spend only its own budget, so the owner, asking
from elsewhere, is still mailed. Above that, an address has a ceiling of mail whoever asks
(a flood from many clients must not fill a mailbox), and the ceiling keeps the owner in:
past it a reset request is answered as ever and mails nothing, but the newest link already
mailed still works (the ceiling's window is no longer than a reset link lives), and a
successful reset lifts the login lockout (NIST SP 800-63B-4 §3.2.2, OWASP Forgot Password
cheat sheet). Clients are told apart by ``X-Forwarded-For`` from a trusted proxy, so these
run in-process (``configured``).
"""

from pathlib import Path

import httpx2
import pytest

from shared.security.memory_counters import BoundedMemoryStorage
from shared.security.throttle import Throttle
from tests.conftest import ConfiguredApi, in_process_settings
from tests.mailbox import Mailbox, link_token
from tests.mails import LINK_PAGES, MAIL_LIMIT, wait_for_mail
from tests.support import PASSWORD, assert_error, sign_up, unique_email

PROXY = ("127.0.0.1/32",)  # the peer every in-process request comes from
OWNER = {"X-Forwarded-For": "192.0.2.1"}
STRANGER = {"X-Forwarded-For": "198.51.100.7"}
NEW_PASSWORD = "the owner's new passphrase"
MAX_FAILURES = 10  # the contract's default lockout


@pytest.fixture
def proxied(configured: ConfiguredApi, inbox: Mailbox) -> httpx2.Client:
    return configured(trusted_proxies=PROXY).client


def request_reset(client: httpx2.Client, email: str, headers: dict[str, str]) -> None:
    response = client.post("/auth/password-reset", json={"email": email}, headers=headers)
    assert response.status_code == 202, response.text


def reset_with_any_link(client: httpx2.Client, inbox: Mailbox, email: str, count: int) -> None:
    """Once ``count`` reset mails have come, one of their links sets ``NEW_PASSWORD``: the
    newest issued (a newer link supersedes the older, and delivery order is not fixed)."""
    messages = wait_for_mail(inbox, to=email, kind="password_reset", count=count)
    answers = []
    for message in messages:
        body = {"token": link_token(message, LINK_PAGES["password_reset"])}
        body["new_password"] = NEW_PASSWORD
        answers.append(client.post("/auth/password-reset/confirm", json=body).status_code)
    assert 204 in answers, answers


def log_in(client: httpx2.Client, email: str, password: str) -> httpx2.Response:
    return client.post("/auth/login", json={"email": email, "password": password})


def test_a_strangers_reset_requests_do_not_spend_the_owners(
    proxied: httpx2.Client, inbox: Mailbox
) -> None:
    owner = sign_up(proxied)
    for _ in range(MAIL_LIMIT):
        request_reset(proxied, owner.email, STRANGER)
    refused = proxied.post("/auth/password-reset", json={"email": owner.email}, headers=STRANGER)
    assert_error(refused, 429, "Too many requests; try again later")

    request_reset(proxied, owner.email, OWNER)
    reset_with_any_link(proxied, inbox, owner.email, MAIL_LIMIT)
    assert log_in(proxied, owner.email, NEW_PASSWORD).status_code == 200


def test_a_flood_from_many_clients_leaves_the_owner_a_working_link(
    proxied: httpx2.Client, inbox: Mailbox
) -> None:
    owner = sign_up(proxied)
    for number in range(3 * MAIL_LIMIT):
        request_reset(proxied, owner.email, {"X-Forwarded-For": f"198.51.100.{number + 1}"})
    request_reset(proxied, owner.email, OWNER)  # answered as ever: no 429 for the owner
    reset_with_any_link(proxied, inbox, owner.email, MAIL_LIMIT)
    assert log_in(proxied, owner.email, NEW_PASSWORD).status_code == 200


def test_a_locked_account_is_recovered_by_its_owner_while_a_stranger_floods_it(
    proxied: httpx2.Client, inbox: Mailbox
) -> None:
    owner = sign_up(proxied)
    for _ in range(MAX_FAILURES):
        failed = proxied.post(
            "/auth/login", json={"email": owner.email, "password": "a guess"}, headers=STRANGER
        )
        assert failed.status_code == 401, failed.text
    for _ in range(MAIL_LIMIT):
        request_reset(proxied, owner.email, STRANGER)
    assert log_in(proxied, owner.email, PASSWORD).status_code == 429

    request_reset(proxied, owner.email, OWNER)
    reset_with_any_link(proxied, inbox, owner.email, MAIL_LIMIT)
    assert log_in(proxied, owner.email, NEW_PASSWORD).status_code == 200


def test_with_verified_login_strangers_signups_do_not_stop_the_owners_link(
    configured: ConfiguredApi, inbox: Mailbox
) -> None:
    strict = configured(require_verified_login=True, trusted_proxies=PROXY).client
    address = unique_email("owner")
    strangers = {"email": address, "password": "a stranger's own passphrase"}
    for _ in range(MAIL_LIMIT):
        answer = strict.post("/auth/signup", json=strangers, headers=STRANGER)
        assert answer.status_code == 202, answer.text
    owners = {"email": address, "password": PASSWORD}
    assert strict.post("/auth/signup", json=owners, headers=OWNER).status_code == 202

    messages = wait_for_mail(inbox, to=address, kind="verify_email", count=MAIL_LIMIT + 1)
    answers = []
    for message in messages:
        token = link_token(message, LINK_PAGES["verify_email"])
        verify = {"token": token, "password": PASSWORD}
        answers.append(strict.post("/auth/verify", json=verify).status_code)
    assert 200 in answers, answers
    assert log_in(strict, address, PASSWORD).status_code == 200


def test_an_address_is_mailed_at_most_its_ceiling_however_many_clients_ask(
    tmp_path: Path,
) -> None:
    """The other side of the per-client budget: a flood from many clients fills no mailbox.
    Resets: the mail limit's count per reset-link lifetime; verification: four clients'
    worth an hour."""
    # In memory whatever the environment names (a live run gives the server's Redis).
    settings = in_process_settings(
        f"sqlite:///{tmp_path / 'unused.db'}",
        mail_rate_limit="5/hour",
        password_reset_minutes=30,
        redis_url=None,
    )
    throttle = Throttle.from_settings(settings)
    assert isinstance(throttle.limiter.storage, BoundedMemoryStorage)
    clients = [f"198.51.100.{number}" for number in range(50)]
    address = unique_email("victim")
    resets = [throttle.limit_link_mail("password_reset", address, client_ip=ip) for ip in clients]
    signups = [throttle.allow_link_mail("verify_email", address, client_ip=ip) for ip in clients]
    assert resets.count(True) == 5
    assert signups.count(True) == 4 * 5
    window = throttle.mail_ceilings["password_reset"].get_expiry()
    assert window <= settings.password_reset_minutes * 60  # the newest link outlives a refusal
