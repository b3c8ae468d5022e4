"""``authtwin deliver-mail``, the outbox's worker, run as an operator runs it: its own process,
its settings from ``AUTHTWIN_*``.

Once, it exits 0 when everything it tried was sent and 1 when something is left to retry; with
``--loop`` it keeps sending until SIGTERM. And it sends what a server that died mid-delivery
had claimed, once the claim's lease has run out, exactly once.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from shared.domain.models import OneTimeToken, OutboxMessage
from shared.infrastructure.db import utcnow
from shared.services.one_time_tokens import digest
from tests.conftest import TEST_SECRET, ConfiguredApi
from tests.live import (
    free_port,
    migrate,
    production_env,
    start_server,
    stop_server,
    wait_until_healthy,
)
from tests.mailbox import Mailbox, link_token
from tests.private_services import wait_until
from tests.support import ROOT, sign_up, unique_email
from tests.test_mail_outbox import (
    WORKER_SECONDS,
    outbox_row,
    resets_to,
    row_once,
    through,
    tried_once,
)

CLI = [sys.executable, "-m", "shared.cli", "deliver-mail"]
# The SMTP timeout of the server killed below: its claim's lease is ten times as long.
FROZEN_SMTP_TIMEOUT = 1
LEASE_SECONDS = 10 * FROZEN_SMTP_TIMEOUT


def worker_env(database_url: str, mailbox: Mailbox, secret: str = TEST_SECRET) -> dict[str, str]:
    """What an operator sets for the worker: the servers' database and secret (what waits in
    the outbox is sealed with a key derived from it), SMTP to ``mailbox``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHTWIN_")}
    settings = {"env": "development", "secret_key": secret, "database_url": database_url}
    settings |= {name: str(value) for name, value in through(mailbox).items()}
    return env | {f"AUTHTWIN_{name.upper()}": value for name, value in settings.items()}


def deliver_mail(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 — our own interpreter and command
        [*CLI, *args], env=dict(env), cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def counts(output: str) -> list[dict[str, int]]:
    """The JSON counts the command printed, one line a pass that did something."""
    return [json.loads(line) for line in output.splitlines()]


@contextmanager
def worker_loop(env: Mapping[str, str], interval: float) -> Iterator[subprocess.Popen[str]]:
    """``deliver-mail --loop``, its output piped; killed on the way out if still running."""
    with subprocess.Popen(  # noqa: S603 — our own interpreter and command
        [*CLI, "--loop", "--interval", str(interval)],
        env=dict(env), cwd=ROOT, stdout=subprocess.PIPE, text=True,
    ) as loop:  # fmt: skip
        try:
            yield loop
        finally:
            if loop.poll() is None:
                loop.kill()


def wait_until_due(client: httpx2.Client, email: str) -> None:
    """Until the reset to ``email`` failed in the background and its retry is due."""

    def due() -> bool:
        row = outbox_row(client, email, "password_reset")
        return row is not None and tried_once(row) and row.next_attempt_at <= utcnow()

    wait_until(due, seconds=WORKER_SECONDS, what=f"a due retry of the reset to {email}")


def test_once_it_exits_1_while_mail_is_left_to_retry_and_0_when_all_is_sent(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    api = configured(**through(mailbox))
    assert api.database_url is not None
    env = worker_env(api.database_url, mailbox)
    user = sign_up(api.client)
    mailbox.wait_for(to=user.email)
    mailbox.stop()
    assert api.client.post("/auth/password-reset", json={"email": user.email}).status_code == 202

    wait_until_due(api.client, user.email)
    down = deliver_mail(env)
    assert (down.returncode, counts(down.stdout)) == (1, [{"retrying": 1}]), down.stderr

    mailbox.start()
    wait_until_due(api.client, user.email)  # its backoff has doubled
    back = deliver_mail(env)
    assert (back.returncode, counts(back.stdout)) == (0, [{"sent": 1}]), back.stderr
    assert len(resets_to(mailbox, user.email)) == 1

    again = deliver_mail(env)
    assert (again.returncode, again.stdout) == (0, ""), again.stderr
    assert len(resets_to(mailbox, user.email)) == 1
    sent = outbox_row(api.client, user.email, "password_reset")
    assert sent is not None
    assert (sent.attempts, sent.sent_at is not None) == (3, True)


def test_once_it_exits_1_while_a_message_waits_for_its_retry(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    # Nothing is due for a minute, yet the reset is not sent: a scheduler running the
    # command between two retries must still hear that mail is not getting out.
    api = configured(**through(mailbox, mail_retry_seconds=60))
    assert api.database_url is not None
    mailbox.stop()
    email = sign_up(api.client).email
    row_once(api.client, email, "verify_email", tried_once)  # its retry: in a minute
    waiting = deliver_mail(worker_env(api.database_url, mailbox))
    assert (waiting.returncode, waiting.stdout) == (1, ""), waiting.stderr


def mail_status(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "mail-status"], env=dict(env), cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_mail_given_up_is_counted_and_listed_and_fails_the_status_command(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    api = configured(**through(mailbox))
    assert api.database_url is not None
    env = worker_env(api.database_url, mailbox)
    user = sign_up(api.client)
    mailbox.wait_for(to=user.email)
    healthy = mail_status(env)
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout.splitlines()[0])["failed"] == 0

    mailbox.refuse(user.email, "550 5.1.1 no such user")
    assert api.client.post("/auth/password-reset", json={"email": user.email}).status_code == 202
    row_once(api.client, user.email, "password_reset", lambda row: row.failed_at is not None)
    # The worker has nothing left to try: given-up mail is no longer its business.
    assert deliver_mail(env).returncode == 0
    status = mail_status(env)
    assert status.returncode == 1, status.stderr
    summary, *listed = status.stdout.splitlines()
    assert json.loads(summary)["failed"] == 1
    (line,) = listed
    assert user.email in line
    assert "password_reset" in line
    assert "550" in line


def test_the_loop_sends_and_stops_at_once_on_sigterm(
    configured: ConfiguredApi, mailbox: Mailbox
) -> None:
    api = configured(**through(mailbox))
    assert api.database_url is not None
    user = sign_up(api.client)
    mailbox.wait_for(to=user.email)
    mailbox.stop()
    assert api.client.post("/auth/password-reset", json={"email": user.email}).status_code == 202
    wait_until_due(api.client, user.email)
    mailbox.start()

    # A minute between passes: stopping within seconds is the signal's doing, not the timer's.
    with worker_loop(worker_env(api.database_url, mailbox), interval=60) as loop:
        mailbox.wait_for(to=user.email, count=2)  # sent by its first pass
        loop.send_signal(signal.SIGTERM)
        output, _ = loop.communicate(timeout=WORKER_SECONDS)
    assert (loop.returncode, counts(output)) == (0, [{"sent": 1}])


def reset_row(database_url: str, email: str) -> OutboxMessage:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return session.scalars(
                select(OutboxMessage).where(OutboxMessage.recipient == email)
            ).one()
    finally:
        engine.dispose()


def unused_token_hashes(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            query = select(OneTimeToken.token_hash).where(OneTimeToken.used_at.is_(None))
            return set(session.scalars(query))
    finally:
        engine.dispose()


@pytest.mark.in_process  # starts a production server of its own
def test_a_reset_whose_server_died_mid_delivery_is_sent_once_after_the_lease(
    app_name: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    email, database = unique_email("crash"), tmp_path / "crash.db"
    # An SMTP server that accepts the connection and never says a word.
    with socket.create_server(("127.0.0.1", 0)) as frozen:
        env = production_env_for(database, email, frozen.getsockname()[1])
        kill_mid_delivery(app_name, env, email, frozen, tmp_path / "server.log")

    url = f"sqlite:///{database}"
    # The dead server's claim, its lease still running, and no error: it was killed while
    # delivering, after its 202 had been answered. The response did not wait for the mail.
    claimed = reset_row(url, email)
    assert (claimed.attempts, claimed.last_error, claimed.sent_at) == (1, None, None)
    lease_end = claimed.claimed_until
    assert lease_end is not None
    assert lease_end > utcnow()
    assert claimed.context is not None  # the link it had prepared

    with worker_loop(worker_env(url, mailbox, env["AUTHTWIN_SECRET_KEY"]), interval=0.2) as loop:
        (mail,) = mailbox.wait_for(to=email, timeout=LEASE_SECONDS + WORKER_SECONDS)
        loop.send_signal(signal.SIGTERM)
        output, _ = loop.communicate(timeout=WORKER_SECONDS)
    assert (loop.returncode, counts(output)) == (0, [{"sent": 1}])

    sent = reset_row(url, email)
    assert sent.sent_at is not None
    assert sent.sent_at >= lease_end  # not a moment before the dead server's claim ran out
    assert (sent.attempts, sent.context) == (2, None)
    assert digest(link_token(mail, "/reset-password")) in unused_token_hashes(url)
    again = deliver_mail(worker_env(url, mailbox, env["AUTHTWIN_SECRET_KEY"]))
    assert (again.returncode, again.stdout) == (0, "")
    assert len(mailbox.messages()) == 1  # never twice


# Mail a server has to send when it is told to stop: more than its senders take at once.
BACKLOG = 6


@pytest.mark.in_process  # starts a production server of its own
def test_a_stopping_server_claims_no_more_mail_and_lets_go_of_what_it_did_not_send(
    app_name: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    database = tmp_path / "stopping.db"
    env = production_env(
        database,
        mail_backend="smtp",
        smtp_host=mailbox.host,
        smtp_port=str(mailbox.port),
        smtp_security="none",
        smtp_timeout="30",  # its lease: ten times as long, far beyond this test
    )
    emails = [unique_email("backlog") for _ in range(BACKLOG)]
    mailbox.hold()
    try:
        stop_with_mail_held(app_name, env, emails, tmp_path / "server.log", mailbox)
    finally:
        mailbox.release()

    url = f"sqlite:///{database}"
    # Whatever the server had not sent is free for the next sender at once: no claim left
    # to run out, and the worker sends every message (the held ones were never delivered).
    unsent = [row for row in outbox_rows(url) if row.sent_at is None]
    assert unsent
    assert [row.claimed_until for row in unsent] == [None] * len(unsent)
    assert [row.attempts for row in unsent] == [0] * len(unsent)  # let go is not a failure
    worker = deliver_mail(worker_env(url, mailbox, env["AUTHTWIN_SECRET_KEY"]))
    assert (worker.returncode, counts(worker.stdout)) == (0, [{"sent": len(unsent)}])
    for email in emails:
        assert len(mailbox.wait_for(to=email)) == 1


def stop_with_mail_held(
    app: str, env: Mapping[str, str], emails: list[str], log_path: Path, mailbox: Mailbox
) -> None:
    """Start ``app``, sign ``emails`` up while ``mailbox`` holds every delivery, and stop
    the server with SIGTERM, as a deployment does; until it has exited."""
    migrate(env)
    port = free_port()
    with log_path.open("wb") as log:
        server = start_server(app, port, env, log, workers=1)
    try:
        base_url = f"http://127.0.0.1:{port}/api/v1"
        wait_until_healthy(f"http://127.0.0.1:{port}", server)
        for email in emails:
            body = {"email": email, "password": "a passphrase for the backlog"}
            signed_up = httpx2.post(f"{base_url}/auth/signup", json=body, timeout=30)
            assert signed_up.status_code == 201, signed_up.text
        mailbox.wait_until_holding(1)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        stop_server(server)  # in case it did not stop: it must not outlive the test


def outbox_rows(database_url: str) -> list[OutboxMessage]:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(OutboxMessage)))
    finally:
        engine.dispose()


def kill_mid_delivery(
    app: str, env: Mapping[str, str], email: str, frozen: socket.socket, log_path: Path
) -> None:
    """Start ``app``, ask for a reset of ``email``, and SIGKILL the whole server once its
    background step is talking to ``frozen``: the message claimed, the link prepared."""
    migrate(env)
    port = free_port()
    with log_path.open("wb") as log:
        server = start_server(app, port, env, log, workers=1)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server)
        url = f"http://127.0.0.1:{port}/api/v1/auth/password-reset"
        asked = httpx2.post(url, json={"email": email})
        assert asked.status_code == 202, asked.text
        frozen.settimeout(WORKER_SECONDS)
        hanging, _ = frozen.accept()  # delivery has begun, and hangs for a reply
        with hanging:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=WORKER_SECONDS)
    finally:
        stop_server(server)  # in case it was not killed: it must not outlive the test


def production_env_for(database: Path, email: str, smtp_port: int) -> dict[str, str]:
    """A production server whose only account is ``email``'s (the first superuser: created at
    start-up, with no mail), mailing through ``smtp_port``."""
    return production_env(
        database,
        first_superuser_email=email,
        first_superuser_password=secrets.token_urlsafe(16),
        mail_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=str(smtp_port),
        smtp_security="none",
        smtp_timeout=str(FROZEN_SMTP_TIMEOUT),
    )
