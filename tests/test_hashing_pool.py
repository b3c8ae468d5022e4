"""Password hashing runs on a bounded pool: no more hashes at once than cores, even in a
forked worker. Each argon2id hash holds 19 MiB at the default cost, so an unbounded burst of
logins would be a burst of memory too (bench/README.md: 964 MiB per worker before)."""

import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bcrypt
import pytest

from shared.security.passwords import PasswordHasher

PASSWORD = "a fine password"


class CountingContext:
    """The hasher's passlib context, counting how many checks run at the same moment."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = threading.Lock()
        self.running = self.most = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def verify(self, *args: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02)  # a real hash's length, so that the callers overlap
            return self._context.verify(*args)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1, legacy_bcrypt_rounds=4)


def test_no_more_hashes_run_at_once_than_there_are_cores(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    cores = len(os.sched_getaffinity(0))
    hashed = hasher.hash(PASSWORD)
    counting = CountingContext(hasher._context)
    monkeypatch.setattr(hasher, "_context", counting)
    callers = cores * 4
    with ThreadPoolExecutor(callers) as requests:
        results = list(requests.map(lambda _: hasher.verify(PASSWORD, hashed).ok, range(callers)))
    assert all(results)
    assert counting.most == cores
    hasher.close()


def test_a_forked_worker_can_hash(hasher: PasswordHasher) -> None:
    """gunicorn --preload forks after the app hashed the first superuser's password."""
    hashed = hasher.hash(PASSWORD)  # the parent's pool is running now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, on 3.12+
        child = os.fork()
    if child == 0:  # pragma: no cover — the child reports through its exit status
        signal.alarm(20)  # a child stuck on the parent's dead pool is killed, not waited on
        os._exit(0 if hasher.verify(PASSWORD, hashed).ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    hasher.close()


class SchemeCounter:
    """The hasher's passlib context, counting the checks of each scheme."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self.checks: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def verify(self, secret: str, hashed: str) -> Any:
        result = self._context.verify(secret, hashed)  # one refused at once is no work: uncounted
        self.checks.append("bcrypt" if hashed.startswith("$2") else "argon2")
        return result


def test_every_failure_checks_each_accepted_scheme_once(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal work, not only equal time: a bcrypt check holds a hashing thread ten times
    longer than argon2id's, so failed logins sent at once for a bcrypt account queued behind
    each other and took seconds where an unknown email took a fraction. Now each failure
    checks one hash of every accepted scheme: its own, and dummies for the others."""
    argon2_account = hasher.hash(PASSWORD)
    bcrypt_account = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    counter = SchemeCounter(hasher._context)
    monkeypatch.setattr(hasher, "_context", counter)
    for stored, password in [
        (None, PASSWORD),  # an unknown email
        (argon2_account, "wrong"),
        (bcrypt_account, "wrong"),
        (bcrypt_account, "x" * 100),  # over bcrypt's 72 bytes
        ("$2b$04$corrupt", "wrong"),  # a damaged stored hash
    ]:
        counter.checks.clear()
        assert not hasher.verify(password, stored).ok
        assert sorted(counter.checks) == ["argon2", "bcrypt"], (stored, counter.checks)
    counter.checks.clear()
    assert hasher.verify(PASSWORD, argon2_account).ok  # a success needs no disguise
    assert counter.checks == ["argon2"]
    hasher.close()
