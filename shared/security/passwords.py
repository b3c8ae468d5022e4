"""Password hashing policy: the only module that imports passlib.

argon2id is the scheme for every new hash (OWASP Password Storage Cheat Sheet); bcrypt
hashes from older systems still verify and are replaced by argon2id on the next login.
"""

import contextlib
import os
import secrets
import sys
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from passlib.context import CryptContext


@dataclass(frozen=True)
class Verification:
    ok: bool
    # Set when the stored hash is outdated (bcrypt, or weaker argon2 parameters): store it.
    new_hash: str | None = None


def _normalise(password: str) -> str:
    """NFKC, as NIST SP 800-63B §5.1.1.2 advises, so one password has one byte form."""
    return unicodedata.normalize("NFKC", password)


T = TypeVar("T")
HASHING_NICENESS = 10  # of 19: below every request thread, still far from idle


def _lower_priority() -> None:
    """Nice this thread. Linux only: elsewhere the nice value is the whole process's."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def _cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class PasswordHasher:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        # Hashing runs on one thread per core, at a lower CPU priority; callers wait for it.
        # argon2id is CPU-bound and memory-hard: more hashes at once than there are cores
        # add no throughput, only latency and memory (each holds 19 MiB). And on a machine
        # saturated by logins, a request that hashes nothing (a token check, /health,
        # FastAPI's event loop itself) should not wait behind one (bench/README.md).
        self._hashing: ThreadPoolExecutor | None = None  # started by the first hash
        self._starting = threading.Lock()
        self._pid = os.getpid()
        self._context = CryptContext(
            schemes=["argon2", "bcrypt"],
            deprecated=["bcrypt"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__time_cost=time_cost,
            argon2__parallelism=parallelism,
        )
        # Verified against when no user matches, so an unknown email costs one real hash too.
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return str(self._hash_thread(self._context.hash, _normalise(password)))

    def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed`` (None: no such user) in constant-ish time."""
        if hashed is None:
            self._hash_thread(self._context.verify, _normalise(password), self._dummy_hash)
            return Verification(ok=False)
        try:
            ok, new_hash = self._hash_thread(
                self._context.verify_and_update, _normalise(password), hashed
            )
        except ValueError:
            # bcrypt refuses passwords over 72 bytes instead of truncating: that is a wrong
            # password for that hash, not a server error. UnknownHashError (a corrupt stored
            # hash) is a ValueError too, and likewise fails closed.
            return Verification(ok=False)
        return Verification(ok=bool(ok), new_hash=new_hash)

    def close(self) -> None:
        """Stop the hashing threads; like a disposed engine, the next hash starts new ones."""
        with self._starting:
            hashing, self._hashing = self._hashing, None
        if hashing is not None:
            hashing.shutdown(wait=False)

    def _hash_thread(self, work: Callable[..., T], *args: str) -> T:
        if self._pid != os.getpid():
            # A forked child (gunicorn --preload) inherits the pool but none of its threads.
            self._pid, self._hashing, self._starting = os.getpid(), None, threading.Lock()
        with self._starting:  # one pool, even when the first hashes arrive together
            if self._hashing is None:
                self._hashing = ThreadPoolExecutor(
                    max_workers=_cores(), thread_name_prefix="argon2", initializer=_lower_priority
                )
            hashing = self._hashing
        return hashing.submit(work, *args).result()
