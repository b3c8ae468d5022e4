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


def test_first_logins_arriving_together_calibrate_once(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first check times a bcrypt hash (0.3 s at 12 rounds) for the failure pacing: 64
    first logins at once each queued one on the few hashing threads, and a benchmark's first
    seconds went unanswered."""
    stored = hasher.hash(PASSWORD)
    legacy = hasher._legacy_bcrypt
    hashed = []

    class CountingBcrypt:
        def __getattr__(self, name: str) -> Any:
            return getattr(legacy, name)

        def hash(self, secret: str) -> str:
            hashed.append(secret)
            time.sleep(0.02)  # long enough for the other first logins to arrive meanwhile
            return str(legacy.hash(secret))

    monkeypatch.setattr(hasher, "_legacy_bcrypt", CountingBcrypt())
    with ThreadPoolExecutor(16) as logins:
        results = list(logins.map(lambda _: hasher.verify(PASSWORD, stored), range(16)))
    hasher.close()
    assert all(result.ok for result in results)
    assert len(hashed) == 1
