"""Moving an account to another address, in both signup modes.

A change of address is pending until it is confirmed: the link mailed to the new address
applies it only with the password of the account that asked, so whoever owns that address
cannot, by following it, hand their proof of address to a stranger's account. Until then the
account keeps the address it has. The request answers alike whether the new address is free
or taken: it tells nobody which addresses have accounts.

Settings pick the mode, so most of these run in-process (``configured``); the first runs on
every target.
"""

from email.message import EmailMessage

import httpx2
import pytest

from tests.conftest import ConfiguredApi
from tests.mailbox import Mailbox, link_token
from tests.mails import kind_of, text_of, wait_for_mail
from tests.support import PASSWORD, Account, all_at_once, assert_error, log_in, unique_email

INVALID_TOKEN = "Invalid, expired or already used token"
NEEDS_PASSWORD = "This link moves an account to this address: give that account's password"
VERIFY_PAGE = "/verify-email"


@pytest.fixture(params=[False, True], ids=["open-signup", "verified-login"])
def api(request: pytest.FixtureRequest, configured: ConfiguredApi, inbox: Mailbox) -> httpx2.Client:
    """A target in either signup mode (AUTHTWIN_REQUIRE_VERIFIED_LOGIN off, then on)."""
    return configured(require_verified_login=request.param).client


def register(client: httpx2.Client, inbox: Mailbox, email: str, password: str) -> Account:
    """An account with ``email``, its address proved in the mode that asks for it."""
    signed = client.post("/auth/signup", json={"email": email, "password": password})
    if signed.status_code == 202:  # the signup waits for its link (verified-login mode)
        token = link_token(wait_for_mail(inbox, to=email, kind="verify_email")[-1], VERIFY_PAGE)
        finished = client.post("/auth/verify", json={"token": token, "password": password})
        assert finished.status_code == 200, finished.text
    else:
        assert signed.status_code == 201, signed.text
    me = {"id": 0, "email": email}
    account = Account.of(me, password, log_in(client, email, password))
    account.id = client.get("/users/me", headers=account.headers).json()["id"]
    return account


def ask_to_move(client: httpx2.Client, account: Account, email: str) -> httpx2.Response:
    body = {"email": email, "current_password": account.password}
    return client.patch("/users/me", json=body, headers=account.headers)


def links_to(inbox: Mailbox, email: str, count: int = 1) -> list[tuple[EmailMessage, str]]:
    """Every message to ``email`` carrying a verification page link, with its token, once
    ``count`` have arrived (whatever kind of mail they are)."""
    messages = inbox.wait_for(to=email, count=count)
    found = []
    for message in messages:
        try:
            found.append((message, link_token(message, VERIFY_PAGE)))
        except (AssertionError, ValueError):
            continue
    assert len(found) >= count, f"{count} links to {email} expected"
    return found


def confirm(client: httpx2.Client, token: str, password: str | None) -> httpx2.Response:
    body = {"token": token} if password is None else {"token": token, "password": password}
    return client.post("/auth/verify", json=body)


def me(client: httpx2.Client, account: Account) -> dict[str, object]:
    answer: dict[str, object] = client.get("/users/me", headers=account.headers).json()
    return answer


def can_log_in(client: httpx2.Client, email: str, password: str) -> bool:
    answer = client.post("/auth/login", json={"email": email, "password": password})
    return answer.status_code == 200


def test_the_address_stays_the_account_s_until_the_change_is_confirmed(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    new_email = unique_email("pending")
    asked = ask_to_move(client, user, new_email)
    assert asked.status_code == 200, asked.text
    assert asked.json()["email"] == user.email
    assert me(client, user)["email"] == user.email
    assert can_log_in(client, user.email, PASSWORD)
    assert not can_log_in(client, new_email, PASSWORD)
    links_to(inbox, new_email)  # the link went out; nothing changed yet


def test_a_change_applies_when_its_link_is_followed_with_the_account_s_password(
    api: httpx2.Client, inbox: Mailbox
) -> None:
    mallory = register(api, inbox, unique_email("owner"), PASSWORD)
    verified_before = me(api, mallory)["is_verified"]
    new_email = unique_email("moved")
    assert ask_to_move(api, mallory, new_email).status_code == 200
    assert me(api, mallory)["email"] == mallory.email
    assert me(api, mallory)["is_verified"] == verified_before
    ((_, token),) = links_to(inbox, new_email)
    done = confirm(api, token, PASSWORD)
    assert done.status_code == 200, done.text
    assert (done.json()["email"], done.json()["is_verified"]) == (new_email, True)
    assert can_log_in(api, new_email, PASSWORD)
    assert not can_log_in(api, mallory.email, PASSWORD)
    wait_for_mail(inbox, to=mallory.email, kind="email_changed")
    assert_error(confirm(api, token, PASSWORD), 400, INVALID_TOKEN)  # used once


def test_the_owner_of_the_address_cannot_complete_a_stranger_s_change(
    api: httpx2.Client, inbox: Mailbox
) -> None:
    """Mallory asks to move her account to Alice's address; Alice, following the link with
    her own password, moves nothing: Mallory never logs in as a verified alice@."""
    mallory = register(api, inbox, unique_email("mallory"), "mallory's own passphrase")
    alice = unique_email("alice")
    assert ask_to_move(api, mallory, alice).status_code == 200
    ((_, token),) = links_to(inbox, alice)
    assert_error(confirm(api, token, PASSWORD), 400, INVALID_TOKEN)
    assert me(api, mallory)["email"] == mallory.email
    assert not can_log_in(api, alice, mallory.password)
    assert can_log_in(api, mallory.email, mallory.password)


def test_a_change_link_asks_for_the_account_s_password(api: httpx2.Client, inbox: Mailbox) -> None:
    account = register(api, inbox, unique_email("owner"), PASSWORD)
    new_email = unique_email("moved")
    ask_to_move(api, account, new_email)
    ((_, token),) = links_to(inbox, new_email)
    missing = confirm(api, token, None)
    assert missing.status_code == 422, missing.text
    assert missing.json()["detail"] == [
        {"type": "missing", "loc": ["body", "password"], "msg": NEEDS_PASSWORD}
    ]
    assert me(api, account)["email"] == account.email
    assert confirm(api, token, PASSWORD).status_code == 200  # the link still works


def test_a_pending_signup_survives_a_stranger_s_change_to_its_address(
    configured: ConfiguredApi, inbox: Mailbox
) -> None:
    """Alice signs up first; Mallory then asks to move her account to alice@. Two links
    reach Alice: Mallory's, which her password does not open, and her own, which still
    finishes her signup."""
    strict = configured(require_verified_login=True).client
    alice = unique_email("alice")
    signed = strict.post("/auth/signup", json={"email": alice, "password": PASSWORD})
    assert signed.status_code == 202, signed.text
    (own_message,) = wait_for_mail(inbox, to=alice, kind="verify_email")
    own = link_token(own_message, VERIFY_PAGE)
    mallory = register(strict, inbox, unique_email("mallory"), "mallory's own passphrase")
    assert ask_to_move(strict, mallory, alice).status_code == 200
    (strangers,) = {token for _, token in links_to(inbox, alice, count=2)} - {own}

    assert_error(confirm(strict, strangers, PASSWORD), 400, INVALID_TOKEN)
    finished = confirm(strict, own, PASSWORD)
    assert finished.status_code == 200, finished.text
    assert finished.json()["email"] == alice
    assert can_log_in(strict, alice, PASSWORD)
    assert not can_log_in(strict, alice, mallory.password)
    assert me(strict, mallory)["email"] == mallory.email


def test_a_change_request_answers_alike_for_a_free_and_a_taken_address(
    api: httpx2.Client, inbox: Mailbox
) -> None:
    account = register(api, inbox, unique_email("asker"), PASSWORD)
    taken = register(api, inbox, unique_email("taken"), "another passphrase").email
    answers = [ask_to_move(api, account, email) for email in (taken, unique_email("free"))]
    assert [answer.status_code for answer in answers] == [200, 200], answers[0].text
    assert answers[0].content == answers[1].content
    headers = [{k: v for k, v in a.headers.items() if k != "date"} for a in answers]
    assert headers[0] == headers[1]


def test_an_address_taken_before_the_change_is_confirmed_stays_its_owner_s(
    api: httpx2.Client, inbox: Mailbox
) -> None:
    account = register(api, inbox, unique_email("asker"), PASSWORD)
    wanted = unique_email("wanted")
    ask_to_move(api, account, wanted)
    ((_, token),) = links_to(inbox, wanted)
    register(api, inbox, wanted, "the owner's passphrase")
    assert_error(confirm(api, token, PASSWORD), 400, INVALID_TOKEN)
    assert me(api, account)["email"] == account.email
    assert can_log_in(api, wanted, "the owner's passphrase")


def test_a_newer_change_request_supersedes_the_older(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    first, second = unique_email("first"), unique_email("second")
    ask_to_move(client, user, first)
    ask_to_move(client, user, second)
    ((_, old),) = links_to(inbox, first)
    ((_, new),) = links_to(inbox, second)
    assert_error(confirm(client, old, PASSWORD), 400, INVALID_TOKEN)
    assert confirm(client, new, PASSWORD).json()["email"] == second


def test_the_mail_says_an_account_asked_to_move_here(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    new_email = unique_email("moved")
    ask_to_move(client, user, new_email)
    ((message, _),) = links_to(inbox, new_email)
    text = " ".join(text_of(message).split())
    assert "asked to move an account to this address" in text
    assert "If this was not you" in text
    assert "Confirm your email address" not in message["Subject"]


def test_a_newer_request_past_the_address_s_mail_budget_still_takes_back_the_older(
    configured: ConfiguredApi, inbox: Mailbox
) -> None:
    """Past the budget nothing is mailed, but the change asked for before is not the
    account's wish any more: its link stops working all the same."""
    client = configured(mail_rate_limit="1/hour").client
    account = register(client, inbox, unique_email("asker"), PASSWORD)
    first, second = unique_email("first"), unique_email("second")
    ask_to_move(client, account, first)
    ask_to_move(client, account, second)
    assert ask_to_move(client, account, first).status_code == 200  # over first's budget
    ((_, stale),) = links_to(inbox, second)
    assert_error(confirm(client, stale, PASSWORD), 400, INVALID_TOKEN)
    assert me(client, account)["email"] == account.email


def test_a_change_link_followed_twice_at_once_moves_the_account_once(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    new_email = unique_email("raced")
    ask_to_move(client, user, new_email)
    ((_, token),) = links_to(inbox, new_email)
    statuses = all_at_once(4, lambda: confirm(client, token, PASSWORD))
    assert statuses == [200, 400, 400, 400], statuses
    assert me(client, user)["email"] == new_email
    wait_for_mail(inbox, to=user.email, kind="email_changed")  # one notice to the old address
    assert [kind_of(m) for m in inbox.wait_for(to=user.email, count=0)].count("email_changed") == 1
