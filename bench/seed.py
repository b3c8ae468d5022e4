"""Accounts and tokens for the load, written through the shared core, not over HTTP.

Hashing 2000 passwords at the production cost would take the bench a minute per database;
every seeded account shares one hash instead (they all have ``PASSWORD``), so seeding takes
seconds. Tokens for "users who logged in earlier" are minted by the same service a login
uses, without the password check, so the runs that are not about hashing measure no hashing.
"""

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import insert, select

from shared.domain.models import User
from shared.domain.schemas import TokenPair
from shared.infrastructure.config import Settings
from shared.runtime import Runtime

PASSWORD = "bench-correct-horse-battery-7"  # passes the policy; every seeded account's
ACCOUNTS = 2000


def email(index: int) -> str:
    return f"user{index}@bench.example.com"


@contextmanager
def runtime_for(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.build(settings)
    try:
        runtime.prepare()  # checks the schema (migrated by run.py) and makes the first superuser
        yield runtime
    finally:
        runtime.dispose()


def seed_accounts(runtime: Runtime, count: int = ACCOUNTS) -> None:
    hashed = runtime.passwords.hash(PASSWORD)
    rows = [{"email": email(i), "hashed_password": hashed} for i in range(count)]
    with runtime.engine.begin() as connection:
        connection.execute(insert(User), rows)


def mint_pairs(runtime: Runtime, count: int) -> list[TokenPair]:
    """Token pairs for the first ``count`` accounts, as a login would issue them."""
    with runtime.sessions() as session:
        users = session.scalars(select(User).order_by(User.id).limit(count)).all()
        return [runtime.token_store.issue_pair(session=session, user=user) for user in users]


def hash_seconds(runtime: Runtime, samples: int = 15) -> float:
    """Median time of one password check at the configured cost: a login's floor."""
    hashed = runtime.passwords.hash(PASSWORD)
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        runtime.passwords.verify(PASSWORD, hashed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
