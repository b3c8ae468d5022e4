"""Password reset by a mailed link (issue 13): the contract on every target.

OWASP Forgot Password Cheat Sheet: the same answer whatever the address, a random token
that works once and expires, no automatic login, every session ended, the owner told.
The mail is read from the suite's inbox (tests/conftest.py), as a user would read it.
"""

import json
import os
import time
from collections.abc import Callable
from datetime import timedelta

import httpx2
import pytest
from sqlalchemy import func, select, update

from shared.domain.models import OneTimeToken, OutboxMessage
from shared.infrastructure.db import utcnow
from tests.clients import runtime_of
from tests.mailbox import Mailbox
from tests.mails import MAIL_LIMIT, kinds_to, link_in, move_address, request_reset, wait_for_mail
from tests.support import (
    PASSWORD,
    Account,
    assert_error,
    assert_unauthorized,
    assert_validation_error,
    log_in,
    sign_up,
    unique_email,
)

NEW_PASSWORD = "a brand new passphrase"
INVALID_TOKEN = "Invalid, expired or already used token"
MAX_FAILURES = int(os.environ.get("AUTHTWIN_LOGIN_MAX_FAILURES", "10"))


def reset_link(client: httpx2.Client, inbox: Mailbox, email: str, *, number: int = 1) -> str:
    """Ask for a reset of ``email`` and read the token of the ``number``-th link mailed."""
    request_reset(client, email)
    return link_in(inbox, to=email, kind="password_reset", number=number)


def confirm(client: httpx2.Client, token: str, password: str = NEW_PASSWORD) -> httpx2.Response:
    return client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


def login_status(client: httpx2.Client, email: str, password: str) -> int:
    return client.post("/auth/login", json={"email": email, "password": password}).status_code


def test_a_mailed_link_resets_the_password_and_ends_every_session(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    asked = client.post("/auth/password-reset", json={"email": user.email})
    assert asked.status_code == 202, asked.text
    token = link_in(inbox, to=user.email, kind="password_reset")
    done = confirm(client, token)
    assert done.status_code == 204, done.text
    assert client.get("/users/me", headers=user.headers).status_code == 401
    assert login_status(client, user.email, PASSWORD) == 401
    log_in(client, user.email, NEW_PASSWORD)


# --- The link's token ------------------------------------------------------------------------


def test_a_reset_link_works_once(client: httpx2.Client, user: Account, inbox: Mailbox) -> None:
    token = reset_link(client, inbox, user.email)
    assert confirm(client, token).status_code == 204
    assert_error(confirm(client, token, "yet another passphrase"), 400, INVALID_TOKEN)
    assert login_status(client, user.email, NEW_PASSWORD) == 200


@pytest.mark.parametrize(
    "token",
    ["x", "not a token at all", "A" * 43, "Zm9vYmFyYmF6cXV4cXV1eGZvb2Jhcg-_" * 2],
    ids=["short", "spaces", "token-shaped", "base64url"],
)
def test_a_token_the_service_never_issued_is_refused(client: httpx2.Client, token: str) -> None:
    assert_error(confirm(client, token), 400, INVALID_TOKEN)


@pytest.mark.in_process
def test_an_expired_reset_link_is_refused(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    # The shortest lifetime a setting allows is a minute, which a test must not wait out: the
    # row is aged in the target's database instead, which only an in-process test can reach.
    token = reset_link(client, inbox, user.email)
    with runtime_of(client).engine.begin() as connection:
        connection.execute(
            update(OneTimeToken)
            .where(OneTimeToken.user_id == user.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_error(confirm(client, token), 400, INVALID_TOKEN)
    assert login_status(client, user.email, PASSWORD) == 200


def test_a_newer_reset_link_supersedes_the_older(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    first = reset_link(client, inbox, user.email)
    second = reset_link(client, inbox, user.email, number=2)
    assert_error(confirm(client, first), 400, INVALID_TOKEN)
    assert confirm(client, second).status_code == 204


def test_changing_the_password_kills_an_outstanding_reset_link(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    token = reset_link(client, inbox, user.email)
    changed = client.put(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "changed the usual way"},
        headers=user.headers,
    )
    assert changed.status_code == 204, changed.text
    assert_error(confirm(client, token), 400, INVALID_TOKEN)
    assert login_status(client, user.email, "changed the usual way") == 200


def test_changing_the_email_kills_an_outstanding_reset_link(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    # Mailed to the old address: once the account has moved, that mailbox no longer speaks
    # for it.
    token = reset_link(client, inbox, user.email)
    new_email = unique_email("moved")
    moved = move_address(client, inbox, headers=user.headers, password=PASSWORD, email=new_email)
    assert moved.status_code == 200, moved.text
    assert_error(confirm(client, token), 400, INVALID_TOKEN)


# --- What a reset does to the account -------------------------------------------------------


def test_a_reset_ends_every_session_access_and_refresh_tokens_alike(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    other = log_in(client, user.email, PASSWORD)  # a second session, another device
    sessions = [(user.access_token, user.refresh_token)]
    sessions.append((other["access_token"], other["refresh_token"]))
    assert confirm(client, reset_link(client, inbox, user.email)).status_code == 204
    for access, refresh in sessions:
        assert_unauthorized(client.get("/users/me", headers={"Authorization": f"Bearer {access}"}))
        assert_error(client.post("/auth/refresh", json={"refresh_token": refresh}), 401)


def test_a_reset_logs_no_one_in(client: httpx2.Client, user: Account, inbox: Mailbox) -> None:
    # OWASP: whoever reset the password logs in with it, like anyone (and any second factor).
    done = confirm(client, reset_link(client, inbox, user.email))
    assert done.status_code == 204
    assert done.content == b""
    assert "set-cookie" not in done.headers
    assert login_status(client, user.email, PASSWORD) == 401
    assert login_status(client, user.email, NEW_PASSWORD) == 200


def test_a_password_the_policy_refuses_leaves_the_link_usable(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    token = reset_link(client, inbox, user.email)
    assert_validation_error(confirm(client, token, "aaaaaaaa"), ["body", "new_password"])
    assert_validation_error(confirm(client, token, "short"), ["body", "new_password"])
    assert login_status(client, user.email, PASSWORD) == 200
    assert confirm(client, token).status_code == 204


def test_the_owner_is_told_the_password_was_changed(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    assert confirm(client, reset_link(client, inbox, user.email)).status_code == 204
    wait_for_mail(inbox, to=user.email, kind="password_changed")


def test_a_reset_proves_the_address(client: httpx2.Client, user: Account, inbox: Mailbox) -> None:
    me = client.get("/users/me", headers=user.headers).json()
    assert me["is_verified"] is False
    assert confirm(client, reset_link(client, inbox, user.email)).status_code == 204
    tokens = log_in(client, user.email, NEW_PASSWORD)
    me = client.get("/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.json()["is_verified"] is True


def test_a_reset_lifts_the_login_lockout(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    for _ in range(MAX_FAILURES):
        assert login_status(client, user.email, "somebody guessing") == 401
    assert login_status(client, user.email, PASSWORD) == 429
    assert confirm(client, reset_link(client, inbox, user.email)).status_code == 204
    assert login_status(client, user.email, NEW_PASSWORD) == 200


# --- Nothing to learn about who has an account ----------------------------------------------


def deactivated(client: httpx2.Client, admin: Account) -> Account:
    account = sign_up(client)
    response = client.patch(
        f"/users/{account.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return account


def comparable(response: httpx2.Response) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers but Date, which ticks with the clock (the twins send no
    request id)."""
    headers = {name: value for name, value in response.headers.items() if name != "date"}
    return response.status_code, response.content, headers


def test_a_reset_request_answers_alike_for_unknown_inactive_and_real_addresses(
    client: httpx2.Client, user: Account, admin: Account, inbox: Mailbox
) -> None:
    addresses = [unique_email("nobody"), deactivated(client, admin).email, user.email]
    answers = [comparable(request_reset(client, address)) for address in addresses]
    assert answers[0] == answers[1] == answers[2]
    status, body, _ = answers[0]
    assert status == 202
    assert set(json.loads(body)) == {"detail"}


def test_only_an_active_account_is_mailed_a_reset_link(
    client: httpx2.Client, user: Account, admin: Account, inbox: Mailbox
) -> None:
    unknown, inactive = unique_email("nobody"), deactivated(client, admin).email
    request_reset(client, unknown)
    request_reset(client, inactive)
    request_reset(client, user.email)
    # Not a proof, but no sleep either: the two requests before were delivered first (or
    # dropped, which takes less work than the real one's lookup, token and SMTP exchange).
    wait_for_mail(inbox, to=user.email, kind="password_reset")
    assert kinds_to(inbox, unknown) == []
    assert "password_reset" not in kinds_to(inbox, inactive)


@pytest.mark.in_process
def test_a_reset_request_for_an_unknown_address_leaves_nothing_behind(
    client: httpx2.Client, inbox: Mailbox
) -> None:
    """The request writes an intent; its delivery, finding no account, deletes it: no token,
    no message waits for the worker. Read from the database, so in-process only."""
    unknown = unique_email("nobody")
    request_reset(client, unknown)
    engine = runtime_of(client).engine
    left = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.recipient == unknown)

    def intent_remains() -> bool:
        with engine.connect() as connection:
            return bool(connection.scalar(left))

    wait_until_not(intent_remains)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(OneTimeToken)) == 0


def wait_until_not(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while condition():
        assert time.monotonic() < deadline, "still true after the deadline"
        time.sleep(0.02)  # polling a database: nothing to be woken by


# --- The per-address limit ------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["account", "no-account"])
def test_one_address_is_sent_at_most_its_limit_of_reset_mails(
    client: httpx2.Client, user: Account, inbox: Mailbox, owner: str
) -> None:
    """Counted per address and asking client, and for unknown addresses too: else the 429
    would tell which have an account. It is not the login lockout: the owner still logs in.
    (Other clients keep their own budget for the address: test_mail_budgets.py.)"""
    address = user.email if owner == "account" else unique_email("nobody")
    for _ in range(MAIL_LIMIT):
        request_reset(client, address)
    refused = client.post("/auth/password-reset", json={"email": address})
    assert_error(refused, 429, "Too many requests; try again later")
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    request_reset(client, unique_email("someone-else"))
    assert login_status(client, user.email, PASSWORD) == 200
