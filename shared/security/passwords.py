"""Password hashing policy: the only module that imports passlib.

argon2id is the scheme for every new hash (OWASP Password Storage Cheat Sheet). bcrypt
hashes from an older system are accepted only when ``AUTHTWIN_LEGACY_BCRYPT_ROUNDS`` says
they are stored, and are replaced by argon2id on the next login.

Every failed check does the same work, whatever the account (:meth:`PasswordHasher._check`):
one check per accepted scheme, against the stored hash or a dummy. Its time, and its use of
the few hashing threads, tell nothing about the account it named.
"""

import contextlib
import os
import secrets
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from passlib.context import CryptContext

from shared.security.failure_pacing import FailurePacing, profile


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
BCRYPT_MAX_BYTES = 72  # bcrypt refuses longer passwords (passlib raises, not truncates)


def _within_limits(scheme: str, password: str) -> str:
    """``password`` as ``scheme`` will check it: bcrypt refuses more than 72 bytes."""
    if scheme != "bcrypt":
        return password
    return password.encode()[:BCRYPT_MAX_BYTES].decode(errors="ignore")


def _lower_priority() -> None:
    """Nice this thread. Linux only: elsewhere the nice value is the whole process's."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def _cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class PasswordHasher:
    def __init__(
        self,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int,
        legacy_bcrypt_rounds: int | None = None,
    ) -> None:
        # Hashing runs on one thread per core, at a lower CPU priority; callers wait for it.
        # argon2id is CPU-bound and memory-hard: more hashes at once than there are cores
        # add no throughput, only latency and memory (each holds 19 MiB). And on a machine
        # saturated by logins, a request that hashes nothing (a token check, /health,
        # FastAPI's event loop itself) should not wait behind one (bench/README.md).
        self._hashing: ThreadPoolExecutor | None = None  # started by the first hash
        self._starting = threading.Lock()
        self._pid = os.getpid()
        legacy = legacy_bcrypt_rounds is not None
        self._context = CryptContext(
            schemes=["argon2", "bcrypt"] if legacy else ["argon2"],
            deprecated=["bcrypt"] if legacy else [],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__time_cost=time_cost,
            argon2__parallelism=parallelism,
            **({"bcrypt__rounds": legacy_bcrypt_rounds} if legacy else {}),
        )
        # One per accepted scheme, checked when the account's own hash is of another scheme
        # (or there is no account), so that every failure costs the work of every scheme.
        self._dummies = {
            scheme: self._context.handler(scheme).hash(secrets.token_urlsafe(16))
            for scheme in self._context.schemes()
        }
        self._pacing = FailurePacing()

    def hash(self, password: str) -> str:
        return str(self._hash_thread(self._context.hash, _normalise(password)))

    def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed`` (None: no such user); every failure costs
        the same work and time, whatever ``hashed`` was."""
        checked = hashed or self._dummies["argon2"]
        ok, seconds = self._hash_thread(self._check, _normalise(password), checked)
        if not ok or hashed is None:
            # The target as it was before this failure counted: had a slow kind's own time
            # moved it, that kind's failures would end sooner or later than the others'.
            target = self._pacing.target()
            self._pacing.record(profile(checked), seconds)
            # Asleep in the caller's thread: the hashing threads (one per core) stay free.
            time.sleep(max(0.0, target - seconds))
            return Verification(ok=False)
        if self._context.needs_update(hashed):
            return Verification(ok=True, new_hash=self.hash(password))
        return Verification(ok=True)

    def _check(self, password: str, hashed: str) -> tuple[bool, float]:
        """In a hashing thread: the check, and when it fails, a dummy check of every other
        accepted scheme; with how long that took there (not queued).

        Equal work, not only equal time: a bcrypt check holds a hashing thread ten times
        longer than argon2id's, so a few failed logins sent at once for a bcrypt account
        queued behind each other, and took seconds where an unknown email took a fraction.
        """
        start = time.perf_counter()
        try:
            ok = bool(self._context.verify(password, hashed))
            scheme = self._context.identify(hashed)
        except ValueError:
            # A password bcrypt refuses (over 72 bytes), or a corrupt stored hash: a wrong
            # password, failing closed; the work below still costs what any failure costs.
            ok, scheme = False, None
        if not ok:
            for other, dummy in self._dummies.items():
                if other != scheme:
                    self._context.verify(_within_limits(other, password), dummy)
        return ok, time.perf_counter() - start

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
