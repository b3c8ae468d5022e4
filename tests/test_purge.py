"""The token tables hold what can still matter, and no more (shared/services/token_store.py).

A refresh row matters while its token could still be presented: until it expires, and,
once spent, only while its family is live (a replay of it is what detects theft). A
denylist row matters until its access token would have expired. Everything else is purged:
by ``authtwin purge-tokens``, and a bounded sweep at each login and logout.

Time is moved by ageing rows in the database (their ``expires_at`` put in the past), as the
clock would after 15 minutes or 14 days.
"""

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jose import jwt
from sqlalchemy import func, insert, select, update

from shared.domain import errors
from shared.domain.models import (
    OneTimeToken,
    OutboxMessage,
    RefreshToken,
    RevokedAccessToken,
    User,
)
from shared.domain.schemas import TokenPair, UserCreate, UserPublic
from shared.runtime import Runtime
from tests.conftest import TEST_SECRET, in_process_settings

pytestmark = pytest.mark.in_process  # reads and ages the database's rows itself
ROOT = Path(__file__).resolve().parent.parent
EMAIL, PASSWORD, IP = "purge@example.com", "a fine long password", "192.0.2.1"
ROUNDS = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def runtime(
    request: pytest.FixtureRequest, database_for: Callable[[str], str]
) -> Iterator[Runtime]:
    settings = in_process_settings(database_for(request.param), first_superuser_email=None)
    runtime = Runtime.build(settings)
    runtime.prepare()
    with runtime.sessions() as session:
        runtime.users.create_user(session=session, data=UserCreate(email=EMAIL, password=PASSWORD))
    yield runtime
    runtime.dispose()


def log_in(runtime: Runtime) -> TokenPair:
    with runtime.sessions() as session:
        return runtime.auth.login(session=session, email=EMAIL, password=PASSWORD, client_ip=IP)


def refresh(runtime: Runtime, pair: TokenPair) -> TokenPair:
    with runtime.sessions() as session:
        return runtime.auth.refresh(session=session, refresh_token=pair.refresh_token,
                                    client_ip=IP)  # fmt: skip


def log_out(runtime: Runtime, pair: TokenPair) -> None:
    with runtime.sessions() as session:
        access = runtime.tokens.decode(pair.access_token, expected_type="access")
        actor = UserPublic.model_validate(session.get(User, access.user_id))
        runtime.auth.logout(session=session, actor=actor, access=access,
                            refresh_token=pair.refresh_token, client_ip=IP)  # fmt: skip


def age_every_row(runtime: Runtime) -> None:
    """The clock moves past every expiry so far: tokens issued until now have expired."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with runtime.engine.begin() as connection:
        connection.execute(update(RefreshToken).values(expires_at=past))
        connection.execute(update(RevokedAccessToken).values(expires_at=past))


def counts(runtime: Runtime) -> tuple[int, int]:
    """(refresh rows, denylist rows)."""
    with runtime.engine.connect() as connection:
        refresh_rows = connection.scalar(select(func.count()).select_from(RefreshToken))
        denied_rows = connection.scalar(select(func.count()).select_from(RevokedAccessToken))
    return int(refresh_rows or 0), int(denied_rows or 0)


def test_the_token_tables_do_not_grow_without_bound(runtime: Runtime) -> None:
    """Each round leaves an abandoned session and a logged-out one, then time passes. The
    sweeps at login and logout clear what has stopped mattering: the tables stay at one
    round's worth however many rounds run."""
    for _ in range(ROUNDS):
        refresh(runtime, log_in(runtime))  # abandoned: never logged out
        ended = refresh(runtime, log_in(runtime))
        log_out(runtime, ended)
        age_every_row(runtime)
        # This round's abandoned session (2 rows; the logged-out family is gone at once) and
        # this round's denylist entry; the earlier rounds' rows are gone.
        assert counts(runtime) == (2, 1)


def purge_command(runtime: Runtime) -> subprocess.CompletedProcess[str]:
    url = runtime.settings.database_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHTWIN_")}
    env |= {"AUTHTWIN_ENV": "production", "AUTHTWIN_SECRET_KEY": TEST_SECRET,
            "AUTHTWIN_DATABASE_URL": url}  # fmt: skip
    command = "from shared.cli import main; raise SystemExit(main())"
    return subprocess.run(  # noqa: S603 — our own interpreter, fixed code
        [sys.executable, "-c", command, "purge-tokens", "--batch", "1"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_purge_tokens_keeps_only_what_can_still_be_presented(runtime: Runtime) -> None:
    """Expired rows, and every row of a family with no live token left, go; a live family
    keeps its spent rows, so a replay of one is still caught after the purge."""
    # In this order so that no login sweeps what the command is to find.
    abandoned = refresh(runtime, log_in(runtime))
    live_first = log_in(runtime)
    live = refresh(runtime, live_first)  # a live family: one spent row, one live
    stolen = log_in(runtime)
    refresh(runtime, stolen)
    with pytest.raises(errors.InvalidToken):
        refresh(runtime, stolen)  # a replay: that family is revoked, so dead
    past = datetime.now(UTC) - timedelta(seconds=1)
    with runtime.engine.begin() as connection:  # the abandoned session expires
        family = jwt.get_unverified_claims(abandoned.refresh_token)["sid"]
        connection.execute(
            update(RefreshToken).where(RefreshToken.family_id == family).values(expires_at=past)
        )
        connection.execute(insert(RevokedAccessToken).values(jti="expired", expires_at=past))
    assert counts(runtime) == (6, 1)

    result = purge_command(runtime)
    assert result.returncode == 0, result.stderr
    assert "purged" in result.stdout

    assert counts(runtime) == (2, 0), result.stdout  # the live family, whole
    with pytest.raises(errors.InvalidToken):
        refresh(runtime, live_first)  # still caught as reuse...
    with pytest.raises(errors.InvalidToken):
        refresh(runtime, live)  # ...which revoked the family, successor included


def add_dead_families_with_expired_rows(runtime: Runtime, families: int) -> None:
    """Sessions that ended (a password change, a replay) before any sweep came by, whose first
    token has expired since: a spent, expired row and the revoked end row of each family."""
    now = datetime.now(UTC)
    with runtime.engine.begin() as connection:
        user_id = connection.scalar(select(User.id).where(User.email == EMAIL))
        rows = []
        for number in range(families):
            family, first, last = (f"{number:08d}{os.urandom(12).hex()}" for _ in range(3))
            rows += [
                {"jti": first, "user_id": user_id, "family_id": family, "replaced_by": last,
                 "expires_at": now - timedelta(days=1), "revoked_at": now - timedelta(days=2)},
                {"jti": last, "user_id": user_id, "family_id": family, "replaced_by": None,
                 "expires_at": now + timedelta(days=1), "revoked_at": now - timedelta(days=1)},
            ]  # fmt: skip
        connection.execute(insert(RefreshToken), rows)


def test_logins_sweeping_at_once_never_fail(runtime: Runtime) -> None:
    """Each login sweeps a batch on its way (token_store.py): with a backlog of ended
    sessions, logins at the same moment sweep at the same moment, and must all succeed.

    On PostgreSQL one sweep held expired rows of families another sweep was deleting, while
    waiting for rows of families that other sweep held: a deadlock, the login a 500 (or a
    statement timeout: 503)."""
    failures: list[str] = []

    def log_in_at_once(start: threading.Barrier) -> None:
        start.wait()
        try:
            log_in(runtime)
        except Exception as exc:  # any failure is the finding
            failures.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    for _ in range(5):
        add_dead_families_with_expired_rows(runtime, 600)
        start = threading.Barrier(3)
        threads = [threading.Thread(target=log_in_at_once, args=(start,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_purge_tokens_drops_old_mail_and_expired_links_only(runtime: Runtime) -> None:
    """A sent message's metadata is kept for a month (for "I never got the mail"), an
    unsent one until it is sent or given up; an expired link is useless at once."""
    with runtime.sessions() as session:  # the signup's verification: a message and a link
        user = session.scalars(select(User).where(User.email == EMAIL)).one()
        runtime.recovery.request_verification(session=session, user_id=user.id, client_ip=IP)
    long_ago, now = datetime.now(UTC) - timedelta(days=31), datetime.now(UTC)
    with runtime.engine.begin() as connection:
        for sent_at in (long_ago, now):
            connection.execute(
                insert(OutboxMessage).values(
                    kind="password_changed", recipient=EMAIL, message_id=f"<{sent_at}@x>",
                    created_at=sent_at, next_attempt_at=sent_at, attempts=1, sent_at=sent_at,
                )
            )  # fmt: skip
        connection.execute(update(OneTimeToken).values(expires_at=now - timedelta(seconds=1)))
    assert mail_counts(runtime) == (3, 1)

    result = purge_command(runtime)
    assert result.returncode == 0, result.stderr

    # Left: the unsent verification message and the message sent today; no link.
    assert mail_counts(runtime) == (2, 0), result.stdout


def mail_counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.engine.connect() as connection:
        messages = connection.scalar(select(func.count()).select_from(OutboxMessage))
        links = connection.scalar(select(func.count()).select_from(OneTimeToken))
    return messages or 0, links or 0
