"""A slow mail server takes nothing from the requests: delivery has threads of its own.

The mail server below takes each message and keeps its sender waiting for the reply, as one
that answers MAIL, RCPT and DATA just inside the SMTP timeout does. While it holds more
deliveries than a twin has request threads, logging in, refreshing and signing up still
answer, over a real socket (tests/served.py), and every held message is sent once it lets go.
"""

from collections.abc import Callable

import httpx2

from tests.conftest import ServedFactory
from tests.mailbox import Mailbox
from tests.mails import wait_for_mail
from tests.support import PASSWORD, all_at_once, log_in, sign_up, unique_email
from tests.test_mail_outbox import through

# Twice the request threads a FastAPI worker has (fastapi_app/app.py), and a Flask one.
RESETS = 16
# Far above what a login takes on a loaded machine, far below how long the server holds.
ANSWER_SECONDS = 10
# Each step of the SMTP conversation waits longer than this only if the server hangs.
SMTP_TIMEOUT = 60


def test_requests_answer_while_the_mail_server_holds_every_delivery(
    served: ServedFactory, mailbox: Mailbox
) -> None:
    client = served(**through(mailbox, smtp_timeout=SMTP_TIMEOUT)).api.client
    accounts = [sign_up(client) for _ in range(RESETS)]
    for account in accounts:
        mailbox.wait_for(to=account.email)  # its verification link: sent before the hold

    mailbox.hold()
    try:

        def reset(email: str) -> Callable[[], httpx2.Response]:
            return lambda: client.post("/auth/password-reset", json={"email": email})

        emails = iter(account.email for account in accounts)
        assert all_at_once(RESETS, lambda: reset(next(emails))()) == [202] * RESETS
        mailbox.wait_until_holding(1)  # delivery has begun, and waits on the server

        quick = httpx2.Timeout(ANSWER_SECONDS)
        first = accounts[0]
        login = client.post(
            "/auth/login", json={"email": first.email, "password": PASSWORD}, timeout=quick
        )
        assert login.status_code == 200, login.text
        refreshed = client.post(
            "/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}, timeout=quick
        )
        assert refreshed.status_code == 200, refreshed.text
        newcomer = client.post(
            "/auth/signup",
            json={"email": unique_email("newcomer"), "password": PASSWORD},
            timeout=quick,
        )
        assert newcomer.status_code == 201, newcomer.text
        assert mailbox.holding() >= 1  # all of it answered while the server still held mail
    finally:
        mailbox.release()

    for account in accounts:  # nothing lost to the wait
        wait_for_mail(mailbox, to=account.email, kind="password_reset", timeout=60)
    log_in(client, first.email, PASSWORD)
