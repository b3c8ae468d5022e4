"""Proving an address by a mailed link (issue 13): the contract on every target.

Signing up mails a link; following it marks the account verified. A link works once, and a
newer one supersedes it. A change of address waits for a link to the new address, which
moves the account there, proved, only with the account's password
(tests/test_email_change.py); the old address is then told (where whoever changed it cannot
delete the notice). An administrator's change applies at once, and leaves the new address to
be proved. The mail is read from the suite's inbox (tests/conftest.py).
"""

from datetime import timedelta

import httpx2
import pytest
from sqlalchemy import update

from shared.domain.models import OneTimeToken
from shared.infrastructure.db import utcnow
from tests.clients import runtime_of
from tests.mailbox import Mailbox
from tests.mails import (
    MAIL_LIMIT,
    kinds_to,
    link_in,
    move_address,
    request_reset,
    text_of,
    wait_for_mail,
)
from tests.support import (
    PASSWORD,
    Account,
    assert_error,
    assert_unauthorized,
    bearer,
    unique_email,
)

INVALID_TOKEN = "Invalid, expired or already used token"
ALREADY_VERIFIED = "Email address already verified"


def verify(client: httpx2.Client, token: str) -> httpx2.Response:
    return client.post("/auth/verify", json={"token": token})


def ask_again(client: httpx2.Client, account: Account) -> httpx2.Response:
    return client.post("/auth/verify/request", headers=account.headers)


def is_verified(client: httpx2.Client, account: Account) -> bool:
    verified: bool = client.get("/users/me", headers=account.headers).json()["is_verified"]
    return verified


def change_my_email(client: httpx2.Client, account: Account, inbox: Mailbox) -> str:
    """Move the account to a new address through the link mailed there: that address."""
    new_email = unique_email("moved")
    moved = move_address(client, inbox, headers=account.headers, password=PASSWORD, email=new_email)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["email"], moved.json()["is_verified"]) == (new_email, True)
    return new_email


# --- The link mailed at signup --------------------------------------------------------------


def test_the_link_mailed_at_signup_verifies_the_address(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    assert is_verified(client, user) is False
    verified = verify(client, link_in(inbox, to=user.email, kind="verify_email"))
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert (body["id"], body["email"], body["is_verified"]) == (user.id, user.email, True)
    assert is_verified(client, user) is True


def test_a_verification_link_works_once(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    token = link_in(inbox, to=user.email, kind="verify_email")
    assert verify(client, token).status_code == 200
    assert_error(verify(client, token), 400, INVALID_TOKEN)


@pytest.mark.parametrize("token", ["x", "A" * 43], ids=["short", "token-shaped"])
def test_a_token_the_service_never_issued_verifies_nothing(
    client: httpx2.Client, token: str
) -> None:
    assert_error(verify(client, token), 400, INVALID_TOKEN)


def test_each_link_opens_only_its_own_door(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    """A verification token resets no password, and a reset token verifies nothing."""
    verification = link_in(inbox, to=user.email, kind="verify_email")
    request_reset(client, user.email)
    reset = link_in(inbox, to=user.email, kind="password_reset")
    body = {"token": verification, "new_password": "a brand new passphrase"}
    assert_error(client.post("/auth/password-reset/confirm", json=body), 400, INVALID_TOKEN)
    assert_error(verify(client, reset), 400, INVALID_TOKEN)
    assert is_verified(client, user) is False


@pytest.mark.in_process
def test_an_expired_verification_link_is_refused(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    # The shortest lifetime a setting allows is an hour: the row is aged in the target's
    # database instead, which only an in-process test can reach.
    token = link_in(inbox, to=user.email, kind="verify_email")
    with runtime_of(client).engine.begin() as connection:
        connection.execute(
            update(OneTimeToken)
            .where(OneTimeToken.user_id == user.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_error(verify(client, token), 400, INVALID_TOKEN)
    assert is_verified(client, user) is False


# --- Asking for another link ----------------------------------------------------------------


def test_a_new_link_replaces_the_one_mailed_at_signup(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    first = link_in(inbox, to=user.email, kind="verify_email")
    asked = ask_again(client, user)
    assert asked.status_code == 202, asked.text
    assert set(asked.json()) == {"detail"}
    second = link_in(inbox, to=user.email, kind="verify_email", number=2)
    assert_error(verify(client, first), 400, INVALID_TOKEN)
    assert verify(client, second).json()["is_verified"] is True


def test_a_verified_address_needs_no_new_link(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    verify(client, link_in(inbox, to=user.email, kind="verify_email"))
    assert_error(ask_again(client, user), 409, ALREADY_VERIFIED)


def test_asking_for_a_link_needs_a_token(client: httpx2.Client) -> None:
    assert_unauthorized(client.post("/auth/verify/request"))
    assert_unauthorized(client.post("/auth/verify/request", headers=bearer("not.a.token")))


def test_one_account_is_sent_at_most_its_limit_of_new_links(
    client: httpx2.Client, user: Account
) -> None:
    """Every link mailed to the address counts, the signup's own included: one budget for
    whatever sends verification mail there (a change of address counts too)."""
    for number in range(1, MAIL_LIMIT):
        assert ask_again(client, user).status_code == 202, number
    refused = ask_again(client, user)
    assert_error(refused, 429, "Too many requests; try again later")
    assert 0 < int(refused.headers["retry-after"]) <= 3600


# --- A change of address --------------------------------------------------------------------


def test_a_changed_address_is_proved_by_the_link_that_moved_the_account(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    assert is_verified(client, user) is False
    change_my_email(client, user, inbox)
    assert is_verified(client, user) is True
    assert_error(ask_again(client, user), 409, ALREADY_VERIFIED)


def test_the_old_address_is_told_of_the_change_without_being_given_the_new_one(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    new_email = change_my_email(client, user, inbox)
    (notice,) = wait_for_mail(inbox, to=user.email, kind="email_changed")
    local, domain = new_email.split("@")
    assert f"{local[0]}***@{domain}" in text_of(notice)
    assert local not in notice.as_string()


def test_a_link_mailed_to_the_old_address_no_longer_verifies(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    old_link = link_in(inbox, to=user.email, kind="verify_email")
    new_email = change_my_email(client, user, inbox)
    assert_error(verify(client, old_link), 400, INVALID_TOKEN)
    assert client.get("/users/me", headers=user.headers).json()["email"] == new_email


# --- An administrator -----------------------------------------------------------------------


def test_an_administrator_can_mark_an_address_verified(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    marked = client.patch(f"/users/{user.id}", json={"is_verified": True}, headers=admin.headers)
    assert marked.status_code == 200, marked.text
    assert marked.json()["is_verified"] is True
    assert is_verified(client, user) is True
    assert_error(ask_again(client, user), 409, ALREADY_VERIFIED)


def test_an_administrator_s_change_of_address_must_be_verified_again(
    client: httpx2.Client, admin: Account, user: Account, inbox: Mailbox
) -> None:
    client.patch(f"/users/{user.id}", json={"is_verified": True}, headers=admin.headers)
    new_email = unique_email("moved")
    moved = client.patch(f"/users/{user.id}", json={"email": new_email}, headers=admin.headers)
    assert moved.json()["is_verified"] is False
    wait_for_mail(inbox, to=user.email, kind="email_changed")
    assert verify(client, link_in(inbox, to=new_email, kind="verify_email")).status_code == 200


def test_an_administrator_can_vouch_for_the_new_address_in_the_same_change(
    client: httpx2.Client, admin: Account, user: Account, inbox: Mailbox
) -> None:
    new_email = unique_email("vouched")
    change = {"email": new_email, "is_verified": True}
    moved = client.patch(f"/users/{user.id}", json=change, headers=admin.headers)
    assert moved.json()["is_verified"] is True
    # The request's messages are delivered in the order written, the link before the notice:
    # once the notice has arrived, a link would have too.
    wait_for_mail(inbox, to=user.email, kind="email_changed")
    assert kinds_to(inbox, new_email) == []


def test_an_administrator_s_password_reset_is_told_to_the_owner(
    client: httpx2.Client, admin: Account, user: Account, inbox: Mailbox
) -> None:
    new = {"password": "set by an administrator"}
    assert client.patch(f"/users/{user.id}", json=new, headers=admin.headers).status_code == 200
    wait_for_mail(inbox, to=user.email, kind="password_changed")


def test_changing_one_s_own_password_is_told_to_the_owner(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    change = {"current_password": PASSWORD, "new_password": "changed the usual way"}
    assert client.put("/users/me/password", json=change, headers=user.headers).status_code == 204
    wait_for_mail(inbox, to=user.email, kind="password_changed")
