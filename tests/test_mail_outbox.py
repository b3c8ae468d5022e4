"""The outbox under faults (issue 13): a mail a request committed reaches its recipient once
the SMTP server takes it, and only once, whatever failed in between.

In-process on every target, against a real SMTP server (tests/mailbox.py) the test stops,
starts again on the same port, or has refuse a recipient. The worker's passes are
``MailDelivery.deliver_due``, what ``authtwin deliver-mail`` runs (tests/test_mail_worker.py
runs the command itself, and kills a live server mid-delivery).
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage

import httpx2
from sqlalchemy import select, update

from shared.domain.models import OneTimeToken, OutboxMessage
from shared.infrastructure.db import Base, utcnow
from shared.services.mail_delivery import MailDelivery, Outcome
from shared.services.one_time_tokens import digest
from tests.clients import runtime_of
from tests.conftest import ConfiguredApi
from tests.mailbox import Mailbox, link_token
from tests.mails import kinds_to
from tests.private_services import wait_until
from tests.support import log_in, sign_up, unique_email

RETRY_SECONDS = 0.2  # the first retry's delay: short, so the tests wait little for it
WORKER_SECONDS = 10  # a deadline for the worker, or a background step, to get somewhere
RESET_SUBJECT = "Reset your authtwin password"
VERIFY_SUBJECT = "Confirm your email address for authtwin"
CHANGED_SUBJECT = "Your authtwin password was changed"
NEW_PASSWORD = "a brand new passphrase"


def through(mailbox: Mailbox, **settings: object) -> dict[str, object]:
    """Settings that mail by SMTP to ``mailbox``."""
    return {
        "mail_backend": "smtp",
        "smtp_host": mailbox.host,
        "smtp_port": mailbox.port,
        "smtp_security": "none",
        "smtp_timeout": 2,
        "mail_retry_seconds": RETRY_SECONDS,
        **settings,
    }


def outbox_row(client: httpx2.Client, recipient: str, kind: str) -> OutboxMessage | None:
    with runtime_of(client).sessions() as session:
        return session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.recipient == recipient, OutboxMessage.kind == kind
            )
        )


def row_once(
    client: httpx2.Client, recipient: str, kind: str, done: Callable[[OutboxMessage], bool]
) -> OutboxMessage:
    """The outbox row once ``done`` holds for it: Flask's pool sends after the response."""
    found: list[OutboxMessage] = []

    def ready() -> bool:
        row = outbox_row(client, recipient, kind)
        found[:] = [row] if row is not None and done(row) else []
        return bool(found)

    wait_until(ready, seconds=WORKER_SECONDS, what=f"the {kind} message to {recipient}")
    return found[0]


def tried_once(row: OutboxMessage) -> bool:
    """A background step claimed it, failed, and let go of it."""
    return row.attempts >= 1 and row.claimed_until is None


def work_until_sent(delivery: MailDelivery) -> list[dict[Outcome, int]]:
    """The worker's passes, until one sends something: each pass's counts."""
    passes: list[dict[Outcome, int]] = []
    deadline = time.monotonic() + WORKER_SECONDS
    while not passes or not passes[-1].get("sent"):
        assert time.monotonic() < deadline, f"nothing sent in {WORKER_SECONDS} s: {passes}"
        passes.append(delivery.deliver_due().counts)
        time.sleep(0.05)
    return passes


def resets_to(mailbox: Mailbox, email: str) -> list[EmailMessage]:
    return [m for m in mailbox.messages() if m["To"] == email and m["Subject"] == RESET_SUBJECT]


def test_a_reset_asked_during_an_smtp_outage_is_sent_once_when_it_ends(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    api = configured(**through(mailbox))
    user = sign_up(api.client)
    mailbox.wait_for(to=user.email)  # its verification: sent, so nothing pauses sending
    mailbox.stop()

    asked = api.client.post("/auth/password-reset", json={"email": user.email})
    assert asked.status_code == 202, asked.text
    row = row_once(api.client, user.email, "password_reset", tried_once)
    assert (row.attempts, row.sent_at, row.failed_at) == (1, None, None)
    assert row.last_error  # the refused connection, for the operator

    mailbox.start()  # the same port: the server is back
    delivery = runtime_of(api.client).mail_delivery
    passes = work_until_sent(delivery)
    # Passes before the retry is due find nothing; the one after it sends the message.
    assert passes[-1] == {"sent": 1}, passes
    assert not any(passes[:-1]), passes
    (mail,) = resets_to(mailbox, user.email)
    assert delivery.deliver_due().counts == {}
    assert len(resets_to(mailbox, user.email)) == 1  # never twice
    sent = outbox_row(api.client, user.email, "password_reset")
    assert sent is not None
    assert sent.sent_at is not None
    assert (sent.attempts, sent.context, sent.claimed_until) == (2, None, None)

    token = link_token(mail, "/reset-password")
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert api.client.post("/auth/password-reset/confirm", json=body).status_code == 204
    log_in(api.client, user.email, NEW_PASSWORD)
    # Its owner is told; waited for, so that the mailbox never stops with a delivery under way.
    assert mailbox.wait_for(to=user.email, count=3)[-1]["Subject"] == CHANGED_SUBJECT
    assert len(resets_to(mailbox, user.email)) == 1


def test_two_workers_at_once_send_each_message_once(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    # A long retry: after the first failure, background steps leave every message to the
    # workers, so the two below are the only senders.
    api = configured(**through(mailbox, mail_retry_seconds=60))
    mailbox.stop()
    first = sign_up(api.client)
    row_once(api.client, first.email, "verify_email", tried_once)  # sending is paused now
    emails = [sign_up(api.client).email for _ in range(20)]
    rows = [outbox_row(api.client, email, "verify_email") for email in emails]
    assert all(row is not None and row.attempts == 0 for row in rows)
    mailbox.start()

    delivery = runtime_of(api.client).mail_delivery
    barrier = threading.Barrier(2)
    counts: list[dict[Outcome, int]] = []

    def worker() -> None:
        barrier.wait()
        counts.append(delivery.deliver_due().counts)

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=WORKER_SECONDS)
    assert len(counts) == 2, counts
    assert sum(pass_.get("sent", 0) for pass_ in counts) == len(emails), counts

    arrived = Counter(m["Message-ID"] for m in mailbox.messages() if m["To"] in emails)
    assert arrived == Counter(row.message_id for row in rows if row is not None), counts
    assert delivery.deliver_due().counts == {}  # the first one's retry is not due yet


def test_a_refused_recipient_is_given_up_at_once_and_its_link_erased(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    api = configured(**through(mailbox))
    user = sign_up(api.client)
    mailbox.wait_for(to=user.email)
    mailbox.refuse(user.email, "550 5.1.1 no such user")

    asked = api.client.post("/auth/password-reset", json={"email": user.email})
    assert asked.status_code == 202, asked.text
    row = row_once(api.client, user.email, "password_reset", lambda r: r.failed_at is not None)
    assert (row.attempts, row.context, row.sent_at, row.claimed_until) == (1, None, None, None)
    assert "550" in (row.last_error or "")
    # Due, were it still pending: the worker finds nothing because it was given up.
    assert row.next_attempt_at <= utcnow()
    assert runtime_of(api.client).mail_delivery.deliver_due().counts == {}
    assert resets_to(mailbox, user.email) == []

    # A permanent refusal says nothing of the server: the next mail goes out at once.
    other = sign_up(api.client)
    mailbox.wait_for(to=other.email)


def test_no_link_token_is_kept_in_clear(configured: ConfiguredApi, mailbox: Mailbox) -> None:
    api = configured(**through(mailbox))
    user = sign_up(api.client)
    assert api.client.post("/auth/password-reset", json={"email": user.email}).status_code == 202
    # In either order: Flask's pool sends with two threads.
    mails = {m["Subject"]: m for m in mailbox.wait_for(to=user.email, count=2)}
    tokens = [
        link_token(mails[RESET_SUBJECT], "/reset-password"),
        link_token(mails[VERIFY_SUBJECT], "/verify-email"),
    ]
    for kind in ("verify_email", "password_reset"):  # marked sent after the server took it
        row = row_once(api.client, user.email, kind, lambda r: r.sent_at is not None)
        assert row.context is None

    with runtime_of(api.client).engine.connect() as connection:
        stored = [
            str(value)
            for table in Base.metadata.sorted_tables
            for row in connection.execute(table.select())
            for value in row
        ]
        hashes = set(connection.scalars(select(OneTimeToken.token_hash)))
    for token in tokens:
        assert not [value for value in stored if token in value]
        assert digest(token) in hashes


def stored_values(client: httpx2.Client) -> list[str]:
    """Every value of every table, as text: what whoever reads the database sees."""
    with runtime_of(client).engine.connect() as connection:
        return [
            str(value)
            for table in Base.metadata.sorted_tables
            for row in connection.execute(table.select())
            for value in row
        ]


def test_a_link_waiting_for_its_retry_is_unusable_in_the_database_and_works_once_sent(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    api = configured(**through(mailbox))
    user = sign_up(api.client)
    mailbox.wait_for(to=user.email)
    mailbox.stop()
    assert api.client.post("/auth/password-reset", json={"email": user.email}).status_code == 202
    newcomer = sign_up(api.client)  # its verification link, issued by the request
    row_once(api.client, user.email, "password_reset", tried_once)
    # Written by the request; its background step may have found sending paused.
    row_once(api.client, newcomer.email, "verify_email", lambda row: row.sent_at is None)
    # What someone reading the tables during the outage finds, the failed attempt's link
    # prepared and waiting for its retry.
    during_outage = stored_values(api.client)
    assert not [value for value in during_outage if "#token=" in value]

    mailbox.start()
    delivery = runtime_of(api.client).mail_delivery

    def both_sent() -> bool:  # a worker's passes, each retry when it is due
        delivery.deliver_due()
        return bool(resets_to(mailbox, user.email)) and bool(kinds_to(mailbox, newcomer.email))

    wait_until(both_sent, seconds=WORKER_SECONDS, what="the reset and the verification sent")
    (reset,) = resets_to(mailbox, user.email)
    (verification,) = mailbox.wait_for(to=newcomer.email)
    tokens = [link_token(reset, "/reset-password"), link_token(verification, "/verify-email")]
    for token in tokens:
        assert not [value for value in during_outage if token in value]

    body = {"token": tokens[0], "new_password": NEW_PASSWORD}
    assert api.client.post("/auth/password-reset/confirm", json=body).status_code == 204
    log_in(api.client, user.email, NEW_PASSWORD)
    verified = api.client.post("/auth/verify", json={"token": tokens[1]})
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_verified"] is True


def test_a_waiting_link_moved_to_another_address_is_given_up_not_sent(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    # Someone who can write the table, not read the secret, readdresses a waiting reset.
    api = configured(**through(mailbox))
    user = sign_up(api.client)
    mailbox.wait_for(to=user.email)
    mailbox.stop()
    assert api.client.post("/auth/password-reset", json={"email": user.email}).status_code == 202
    row = row_once(api.client, user.email, "password_reset", tried_once)
    runtime = runtime_of(api.client)
    attacker = unique_email("attacker")
    with runtime.sessions() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(recipient=attacker)
        )
        session.commit()

    mailbox.start()

    def given_up() -> bool:
        runtime.mail_delivery.deliver_due()
        moved = outbox_row(api.client, attacker, "password_reset")
        return moved is not None and moved.failed_at is not None

    wait_until(given_up, seconds=WORKER_SECONDS, what="the readdressed reset given up")
    moved = outbox_row(api.client, attacker, "password_reset")
    assert moved is not None
    assert (moved.context, moved.sent_at) == (None, None)
    assert "context unreadable" in (moved.last_error or "")
    assert kinds_to(mailbox, attacker) == []
