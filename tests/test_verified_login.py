"""AUTHTWIN_REQUIRE_VERIFIED_LOGIN (issue 13): no login before the address is proved.

Signup then answers alike whether the address was free or taken (the new account is of no
use to whoever signed up until its owner follows the link), and the owner of a taken one
is told by mail. A setting, so these run in-process only (``configured``).
"""

import httpx2
import pytest
from sqlalchemy import func, select

from shared.domain.models import OutboxMessage
from tests.clients import runtime_of
from tests.conftest import ConfiguredApi
from tests.mailbox import Mailbox
from tests.mails import link_in, request_reset, wait_for_mail
from tests.support import PASSWORD, assert_error, unique_email

SIGNUP_ACCEPTED = "Check your inbox: we sent you a link to finish signing up"
NOT_VERIFIED = "Email address not verified; follow the link mailed to it"
WRONG_CREDENTIALS = "Incorrect email or password"


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


def test_the_owner_of_a_taken_address_is_told_of_the_attempt(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    taken = unique_email("taken")
    sign_up(strict, taken)
    sign_up(strict, taken)
    wait_for_mail(inbox, to=taken, kind="signup_attempt")
    # The account was not replaced: the first signup's link still verifies it.
    verified = strict.post("/auth/verify", json={"token": verify_link(inbox, taken)})
    assert verified.status_code == 200, verified.text


def test_attempt_notices_are_limited_per_address_without_a_429(
    configured: ConfiguredApi, inbox: Mailbox
) -> None:
    """A 429 for taken addresses only would tell which are taken: the limit is silent. The
    outbox is read to count what was written: a message not yet delivered counts too."""
    strict = configured(require_verified_login=True, mail_rate_limit="3/hour").client
    taken = unique_email("taken")
    for _ in range(1 + 5):  # the account, then more attempts than the limit
        sign_up(strict, taken)
    written = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.recipient == taken, OutboxMessage.kind == "signup_attempt")
    )
    with runtime_of(strict).engine.connect() as connection:
        assert connection.scalar(written) == 3


def test_an_unverified_account_cannot_log_in_but_learns_so_only_with_its_password(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    email = unique_email()
    sign_up(strict, email)
    assert_error(log_in(strict, email), 403, NOT_VERIFIED)
    assert_error(log_in(strict, email, "not the password"), 401, WRONG_CREDENTIALS)
    assert_error(log_in(strict, unique_email("nobody")), 401, WRONG_CREDENTIALS)


def test_the_token_endpoint_refuses_an_unverified_account_as_an_invalid_grant(
    strict: httpx2.Client, inbox: Mailbox
) -> None:
    email = unique_email()
    sign_up(strict, email)
    form = {"grant_type": "password", "username": email, "password": PASSWORD}
    refused = strict.post("/auth/token", data=form)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"


def test_following_the_link_lets_the_account_log_in(strict: httpx2.Client, inbox: Mailbox) -> None:
    email = unique_email()
    sign_up(strict, email)
    assert strict.post("/auth/verify", json={"token": verify_link(inbox, email)}).is_success
    assert log_in(strict, email).status_code == 200


def test_a_password_reset_proves_the_address_too(strict: httpx2.Client, inbox: Mailbox) -> None:
    email, new_password = unique_email(), "a brand new passphrase"
    sign_up(strict, email)
    request_reset(strict, email)
    token = link_in(inbox, to=email, kind="password_reset")
    body = {"token": token, "new_password": new_password}
    assert strict.post("/auth/password-reset/confirm", json=body).status_code == 204
    assert log_in(strict, email, new_password).status_code == 200
