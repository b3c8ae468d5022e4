"""Password reset by a mailed link (issue 13): the contract on every target."""

import httpx2

from tests.mailbox import Mailbox, link_token
from tests.support import PASSWORD, Account, log_in

NEW_PASSWORD = "a brand new passphrase"


def test_a_mailed_link_resets_the_password_and_ends_every_session(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    asked = client.post("/auth/password-reset", json={"email": user.email})
    assert asked.status_code == 202, asked.text
    (mail,) = inbox.wait_for(to=user.email, count=2)[1:]  # after the signup's verification
    token = link_token(mail, "/reset-password")
    done = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text
    assert client.get("/users/me", headers=user.headers).status_code == 401
    assert (
        client.post("/auth/login", json={"email": user.email, "password": PASSWORD}).status_code
        == 401
    )
    log_in(client, user.email, NEW_PASSWORD)
