"""AUTHTWIN_REQUIRE_VERIFIED_LOGIN (issue 13): no login before the address is proved.

Signup then answers alike whether the address was free or taken, and creates no account:
the account comes into being when the link mailed to the address is followed
(services/pending_signups.py), and the owner of a taken address is told by mail. An account
whose address is unproved (an administrator moved it to a new one) cannot log in, and learns
why only with its password. A setting, so these run in-process only (``configured``).
"""

import httpx2
import pytest
from sqlalchemy import func, select

from shared.domain.models import OutboxMessage
from tests.clients import runtime_of
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, ConfiguredApi
from tests.mailbox import Mailbox, link_token
from tests.mails import link_in, request_reset, wait_for_mail
from tests.support import PASSWORD, assert_error, unique_email

SIGNUP_ACCEPTED = "Check your inbox: we sent you a link to finish signing up"
NOT_VERIFIED = "Email address not verified; follow the link mailed to it"
WRONG_CREDENTIALS = "Incorrect email or password"
INVALID_TOKEN = "Invalid, expired or already used token"
NEEDS_PASSWORD = "This link finishes a signup: give the password you signed up with"


@pytest.fixture
def strict(configured: ConfiguredApi, inbox: Mailbox) -> httpx2.Client:
    """A target that lets only verified addresses log in, mailing to the suite's inbox."""
    return configured(require_verified_login=True).client


def sign_up(client: httpx2.Client, email: str) -> httpx2.Response:
    response = client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 202, response.text
    return response


def log_in(client: httpx2.Client, email: str, password: str = PASSWORD) -> httpx2.Response:
    return client.post("/auth/login", json={"email": email, "password": password})


def verify_link(inbox: Mailbox, email: str) -> str:
    return link_in(inbox, to=email, kind="verify_email")


def test_signup_answers_alike_for_a_new_and_a_taken_address(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    taken = unique_email("taken")
    answers = [sign_up(strict, email) for email in (taken, unique_email("new"), taken)]
    bodies = {answer.content for answer in answers}
    assert len(bodies) == 1
    assert answers[0].json() == {"detail": SIGNUP_ACCEPTED}
    headers = [{k: v for k, v in a.headers.items() if k != "date"} for a in answers]
    assert headers[0] == headers[1] == headers[2]


def registered(client: httpx2.Client, inbox: Mailbox) -> tuple[str, dict[str, str]]:
    """A signup whose link was followed: the address, and the account's bearer headers."""
    email = unique_email()
    sign_up(client, email)
    finish = {"token": verify_link(inbox, email), "password": PASSWORD}
    assert client.post("/auth/verify", json=finish).is_success
    tokens = log_in(client, email).json()
    return email, {"Authorization": f"Bearer {tokens['access_token']}"}


def unverified(client: httpx2.Client, inbox: Mailbox) -> str:
    """An account an administrator moved to an address it has not proved yet: that address.
    (An account's own change waits for the new address's link, which proves it.)"""
    _, headers = registered(client, inbox)
    user_id = client.get("/users/me", headers=headers).json()["id"]
    admin = log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD).json()["access_token"]
    moved = unique_email("moved")
    body = {"email": moved}
    as_admin = {"Authorization": f"Bearer {admin}"}
    moved_by_admin = client.patch(f"/users/{user_id}", headers=as_admin, json=body)
    assert moved_by_admin.json()["is_verified"] is False
    return moved


def test_the_owner_of_a_taken_address_is_told_of_the_attempt(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    taken, _ = registered(strict, inbox)
    strict.post("/auth/signup", json={"email": taken, "password": "someone else's pick"})
    wait_for_mail(inbox, to=taken, kind="signup_attempt")
    assert log_in(strict, taken).status_code == 200  # the account is untouched


def test_attempt_notices_are_limited_per_address_without_a_429(
    configured: ConfiguredApi, inbox: Mailbox
) -> None:
    """A 429 for taken addresses only would tell which are taken: the limit is silent. The
    outbox is read to count what was written: a message not yet delivered counts too."""
    strict = configured(require_verified_login=True, mail_rate_limit="3/hour").client
    taken, _ = registered(strict, inbox)
    for _ in range(5):  # more attempts than the limit
        sign_up(strict, taken)
    written = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.recipient == taken, OutboxMessage.kind == "signup_attempt")
    )
    with runtime_of(strict).engine.connect() as connection:
        assert connection.scalar(written) == 3


def test_a_signup_is_no_account_until_its_link_is_followed(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    """Logging in with the password just chosen answers as for an address with no account,
    or one whose owner has another password: whoever signed up learns nothing from it."""
    email = unique_email()
    sign_up(strict, email)
    assert_error(log_in(strict, email), 401, WRONG_CREDENTIALS)
    strict.post("/auth/verify", json={"token": verify_link(inbox, email), "password": PASSWORD})
    assert log_in(strict, email).status_code == 200


def test_the_first_followed_link_of_an_address_wins(strict: httpx2.Client, inbox: Mailbox) -> None:
    email = unique_email()
    sign_up(strict, email)
    first = verify_link(inbox, email)
    strict.post("/auth/signup", json={"email": email, "password": "another passphrase"})
    both = wait_for_mail(inbox, to=email, kind="verify_email", count=2)
    (other,) = {link_token(message, "/verify-email") for message in both} - {first}
    finish = {"token": first, "password": PASSWORD}
    assert strict.post("/auth/verify", json=finish).status_code == 200
    late = {"token": other, "password": "another passphrase"}
    assert_error(strict.post("/auth/verify", json=late), 400, INVALID_TOKEN)
    assert log_in(strict, email).status_code == 200


def test_an_unverified_account_cannot_log_in_but_learns_so_only_with_its_password(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    email = unverified(strict, inbox)
    assert_error(log_in(strict, email), 403, NOT_VERIFIED)
    assert_error(log_in(strict, email, "not the password"), 401, WRONG_CREDENTIALS)
    assert_error(log_in(strict, unique_email("nobody")), 401, WRONG_CREDENTIALS)


def test_the_token_endpoint_refuses_an_unverified_account_as_an_invalid_grant(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    email = unverified(strict, inbox)
    form = {"grant_type": "password", "username": email, "password": PASSWORD}
    refused = strict.post("/auth/token", data=form)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"


def test_following_the_link_lets_the_account_log_in(strict: httpx2.Client, inbox: Mailbox) -> None:
    email = unverified(strict, inbox)
    assert strict.post("/auth/verify", json={"token": verify_link(inbox, email)}).is_success
    assert log_in(strict, email).status_code == 200


def test_a_password_reset_proves_the_address_too(strict: httpx2.Client, inbox: Mailbox) -> None:
    email, new_password = unverified(strict, inbox), "a brand new passphrase"
    request_reset(strict, email)
    token = link_in(inbox, to=email, kind="password_reset")
    body = {"token": token, "new_password": new_password}
    assert strict.post("/auth/password-reset/confirm", json=body).status_code == 204
    assert log_in(strict, email, new_password).status_code == 200


def test_a_signup_link_finishes_only_with_the_signups_password(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    """Account pre-hijacking (second outside review): a stranger signs up first with the
    owner's address and a password of their own; the owner signs up too, and finds two
    identical mails. Following the stranger's, with the owner's own password, creates
    nothing, and the stranger's password never opens an account; the owner's link does."""
    victim, strangers = unique_email("victim"), "a stranger's own passphrase"
    sign_up_with(strict, victim, strangers)
    strangers_link = verify_link(inbox, victim)
    sign_up_with(strict, victim, PASSWORD)
    both = wait_for_mail(inbox, to=victim, kind="verify_email", count=2)
    (owners_link,) = {link_token(message, "/verify-email") for message in both} - {strangers_link}

    no_password = strict.post("/auth/verify", json={"token": strangers_link})
    assert no_password.status_code == 422, no_password.text
    assert no_password.json()["detail"] == [
        {"type": "missing", "loc": ["body", "password"], "msg": NEEDS_PASSWORD}
    ]
    mine = {"token": strangers_link, "password": PASSWORD}
    assert_error(strict.post("/auth/verify", json=mine), 400, INVALID_TOKEN)
    assert_error(log_in(strict, victim, strangers), 401, WRONG_CREDENTIALS)

    own = {"token": owners_link, "password": PASSWORD}
    assert strict.post("/auth/verify", json=own).status_code == 200
    assert log_in(strict, victim).status_code == 200
    assert_error(log_in(strict, victim, strangers), 401, WRONG_CREDENTIALS)


def sign_up_with(client: httpx2.Client, email: str, password: str) -> None:
    response = client.post("/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 202, response.text
