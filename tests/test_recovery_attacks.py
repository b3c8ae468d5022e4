"""What an outside attack on the recovery flows found (issue 13's review): each test states
one way around a promise of the contract, and failed before the fix it names.

- a login right after a verified-login signup told a free address (403) from a taken one
  (401): signups now wait as pending signups (services/pending_signups.py);
- moving an account between addresses mailed a victim without limit (account_mail.py);
- a reset link came back when the address changed back, and verification links outlived a
  reset (one_time_tokens.revoke_links);
- refresh kept an unverified address's session going in verified-login mode (auth.py);
- a slow SMTP server made the outbox send a message twice (mail_delivery._claim_held).
"""

import socket
import threading
import time
from datetime import timedelta

import httpx2
import pytest
from sqlalchemy import func, select

from shared.domain.models import OutboxMessage
from shared.infrastructure.mail import SmtpBackend
from shared.runtime import CLAIM_TIMEOUTS
from shared.services.mail_delivery import MailDelivery
from shared.services.outbox import enqueue
from tests.clients import runtime_of
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, ConfiguredApi
from tests.mailbox import Mailbox
from tests.mails import MAIL_LIMIT, link_in, move_address, request_reset
from tests.support import (
    PASSWORD,
    Account,
    assert_error,
    bearer,
    log_in,
    sign_up,
    unique_email,
)

INVALID_TOKEN = "Invalid, expired or already used token"
NEW_PASSWORD = "a brand new passphrase"


def change_email(client: httpx2.Client, account: Account, email: str) -> httpx2.Response:
    return client.patch(
        "/users/me",
        headers=account.headers,
        json={"email": email, "current_password": account.password},
    )


# --- Enumeration: verified-login signup ------------------------------------------------------


def test_verified_login_signup_then_login_does_not_tell_a_taken_address(
    configured: ConfiguredApi, inbox: Mailbox
) -> None:
    """Signup answers 202 alike for new and taken addresses, but logging in right after with
    the password just chosen answers 403 (unverified: the account was created, the address
    was free) or 401 (the address belonged to someone else): the 202 hides nothing."""
    client = configured(require_verified_login=True).client
    taken, free = unique_email("taken"), unique_email("free")
    client.post("/auth/signup", json={"email": taken, "password": "owner's own passphrase"})
    probe = "attacker chosen passphrase"
    answers = {}
    for email in (taken, free):
        signed = client.post("/auth/signup", json={"email": email, "password": probe})
        assert signed.status_code == 202, signed.text
        login = client.post("/auth/login", json={"email": email, "password": probe})
        answers[email] = (login.status_code, login.content)
    assert answers[taken] == answers[free], answers


# --- Mail flooding: the per-address limit has a way around ---------------------------------


@pytest.mark.in_process  # counts what the outbox was given: no wait for mail that never comes
def test_changing_one_s_address_back_and_forth_cannot_flood_another_mailbox(
    client: httpx2.Client,
) -> None:
    """Each request to move to the victim's address mails it a link: an account asking to
    move there and back, over and over, must not flood it. The links count on the address's
    verification budget (MAIL_LIMIT an hour), silently: the requests still answer 200, and
    asking for one's own address back mails nothing."""
    attacker = sign_up(client)
    own, victim = attacker.email, unique_email("victim")
    for _ in range(MAIL_LIMIT + 2):
        for address in (victim, own):
            assert change_email(client, attacker, address).status_code == 200
    written = (
        select(OutboxMessage.kind, func.count().label("messages"))
        .where(OutboxMessage.recipient == victim)
        .group_by(OutboxMessage.kind)
    )
    with runtime_of(client).engine.connect() as connection:
        kinds = {row.kind: row.messages for row in connection.execute(written)}
    assert kinds == {"confirm_email_change": MAIL_LIMIT}, kinds


# --- Tokens ---------------------------------------------------------------------------------


def test_a_reset_link_stays_dead_when_the_address_changes_back(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    """The contract: a reset token dies on an email change. It only sleeps: change the
    address away and back (no password change) and the old link works again."""
    request_reset(client, user.email)
    token = link_in(inbox, to=user.email, kind="password_reset")
    for address in (unique_email("elsewhere"), user.email):
        # The access token survives an email change; change back with it.
        moved = move_address(
            client, inbox, headers=user.headers, password=user.password, email=address
        )
        assert moved.json()["email"] == address, moved.text
    confirmed = client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 400, f"the resurrected link answered {confirmed.status_code}"
    assert_error(confirmed, 400, INVALID_TOKEN)


def test_a_password_reset_kills_every_token_of_the_user_verification_links_too(
    client: httpx2.Client, inbox: Mailbox
) -> None:
    """The contract: on a reset, all tokens of the user die. A verification link mailed
    before the reset still verifies afterwards."""
    account = sign_up(client)
    verify = link_in(inbox, to=account.email, kind="verify_email")
    request_reset(client, account.email)
    reset = link_in(inbox, to=account.email, kind="password_reset")
    done = client.post(
        "/auth/password-reset/confirm", json={"token": reset, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text
    assert_error(client.post("/auth/verify", json={"token": verify}), 400, INVALID_TOKEN)


# --- Verified login: other doors ------------------------------------------------------------


def _verified_account(client: httpx2.Client, inbox: Mailbox) -> Account:
    email = unique_email("strict")
    assert (
        client.post("/auth/signup", json={"email": email, "password": PASSWORD}).status_code == 202
    )
    token = link_in(inbox, to=email, kind="verify_email")
    finish = {"token": token, "password": PASSWORD}
    assert client.post("/auth/verify", json=finish).status_code == 200
    tokens = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    me = client.get("/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    return Account.of(me.json(), PASSWORD, tokens)


def test_with_verified_login_an_unverified_address_gets_no_new_tokens_by_refresh(
    configured: ConfiguredApi, inbox: Mailbox
) -> None:
    """Login refuses an unverified address with 403; refresh does not look: an account an
    administrator moved to an address it has not proved (anyone's, taken by no one yet)
    keeps a session for ever by refreshing it."""
    client = configured(require_verified_login=True).client
    account = _verified_account(client, inbox)
    admin = log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    move = {"email": unique_email("unproved")}
    moved = client.patch(f"/users/{account.id}", json=move, headers=bearer(admin["access_token"]))
    assert moved.status_code == 200, moved.text
    me = client.get("/users/me", headers=account.headers).json()
    assert me["is_verified"] is False
    refreshed = client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code in (401, 403), f"refresh answered {refreshed.status_code}"


# --- The outbox: a live sender's claim expires under it ------------------------------------


class _SlowSmtp:
    """An SMTP server that accepts every message but answers the end of DATA one byte at a
    time, each byte well within the client's timeout: every read succeeds, the send as a
    whole takes as long as the server likes."""

    def __init__(self, *, byte_every: float, reply_bytes: int) -> None:
        self.accepted = 0
        self._byte_every, self._reply_bytes = byte_every, reply_bytes
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 slow ESMTP\r\n")
        try:
            for raw in reader:
                verb = raw[:4].upper()
                if verb in (b"EHLO", b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    conn.sendall(b"250 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    for line in reader:
                        if line == b".\r\n":
                            break
                    self.accepted += 1
                    reply = b"250 " + b"q" * (self._reply_bytes - 6) + b"\r\n"
                    for byte in reply:
                        conn.sendall(bytes([byte]))
                        time.sleep(self._byte_every)
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"502 no\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._listener.close()


@pytest.mark.in_process  # drives the app's outbox itself
def test_a_slow_smtp_server_cannot_make_the_outbox_send_one_message_twice(
    client: httpx2.Client,
) -> None:
    """The lease is CLAIM_TIMEOUTS x the SMTP timeout on the premise that a send is at most
    that many reads; but the timeout bounds each read, not the send. A server (or network)
    that trickles its reply keeps a live sender past its lease, a second sender (the
    ``deliver-mail`` worker, another process's background step) claims the message again,
    and the recipient gets it twice."""

    runtime = runtime_of(client)
    timeout = 0.2
    lease = timeout * CLAIM_TIMEOUTS  # 2 s
    server = _SlowSmtp(byte_every=timeout / 2, reply_bytes=int(lease * 2.5 / (timeout / 2)))
    try:

        def sender() -> MailDelivery:
            return MailDelivery(
                sessions=runtime.sessions,
                backend=SmtpBackend(
                    host="127.0.0.1",
                    port=server.port,
                    security="none",
                    timeout=timeout,
                    sender="authtwin <no-reply@localhost>",
                ),
                mail=runtime.mail_delivery._mail,
                retry_after=timedelta(seconds=30),
                max_attempts=5,
                lease=timedelta(seconds=lease),
            )

        recipient, context = unique_email("slow"), {"public_url": "http://localhost:8000"}
        with runtime.sessions() as session:
            enqueue(
                session,
                kind="password_changed",
                recipient=recipient,
                # Stored sealed, as AccountMail writes every context.
                context=runtime.mail_delivery._mail._sealed("password_changed", recipient, context),
                domain="localhost",
            )
            session.commit()
            (message_id,) = session.info.pop("authtwin.outbox")
        first = threading.Thread(target=sender().deliver, args=([message_id],))
        first.start()
        time.sleep(lease + 0.5)  # the first send is still waiting for its reply
        second = sender().deliver_due()
        first.join()
        assert server.accepted == 1, f"sent {server.accepted} times; second pass: {second.counts}"
    finally:
        server.close()
