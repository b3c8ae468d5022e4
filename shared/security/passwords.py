"""Password hashing policy: the only module that imports passlib.

argon2id is the scheme for every new hash (OWASP Password Storage Cheat Sheet); bcrypt
hashes from older systems still verify and are replaced by argon2id on the next login.

A failed check is held until the slowest kind of stored hash would have finished (see
:class:`FailurePacing`), so that its time tells nothing about the account it named.
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
# A failure is held this much longer than the slowest kind of hash usually takes: each check
# varies around its usual time, and one that ran long would stand out from the held ones.
HEADROOM = 1.25
SMOOTHING = 0.2  # the weight of the newest time in a kind of hash's running estimate


def _profile(hashed: str) -> str:
    """What a check of ``hashed`` costs depends on: its scheme and parameters, not its salt.

    ``$argon2id$v=19$m=19456,t=2,p=1$<salt>$<digest>`` → ``$argon2id$v=19$m=19456,t=2,p=1``;
    ``$2b$12$<salt and digest>`` → ``$2b$12``.
    """
    head = hashed.rpartition("$")[0]
    return head.rpartition("$")[0] if hashed.startswith("$argon2") else head


class FailurePacing:
    """How long a failed password check takes in all, whatever hash it was checked against.

    An unknown email is checked against a dummy argon2id hash at today's cost, so it costs
    what a current account costs. But accounts may still hold bcrypt hashes (about ten times
    slower at passlib's 12 rounds) or argon2id from before the cost was raised (faster): a
    wrong password for those would answer in its own time, and say the account exists.
    So a failure is held, asleep (no CPU), until the slowest kind of hash would have
    finished. What each kind takes is measured here, not assumed: a running estimate per
    scheme and parameters (a handful of entries: the kinds of hash stored), from every check
    made, so a machine under load or a bcrypt account of 13 rounds raises the target. The
    times run from the start of the check in its hashing thread: waiting for a free thread
    costs every request alike, and is left out. Successes are not held: whoever sent the
    right password learns nothing from the time.

    The limit: a kind of hash costlier than any checked yet in this process (a bcrypt cost
    above ``legacy_bcrypt_rounds``) answers its first failure in its own time. Django's
    ``harden_runtime`` instead runs the missing iterations for a weaker hash of the current
    scheme: it burns CPU, and cannot make a slower legacy scheme (bcrypt) answer faster.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}

    def record(self, profile: str, seconds: float) -> None:
        with self._lock:
            before = self._seconds.get(profile, seconds)
            self._seconds[profile] = before + SMOOTHING * (seconds - before)

    def target(self) -> float:
        """The time every failed check should take, from its start in the hashing thread."""
        with self._lock:
            return HEADROOM * max(self._seconds.values(), default=0.0)


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
        self, *, memory_kib: int, time_cost: int, parallelism: int, legacy_bcrypt_rounds: int
    ) -> None:
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
        self._legacy_bcrypt = self._context.handler("bcrypt").using(rounds=legacy_bcrypt_rounds)
        self._pacing = FailurePacing()
        self._calibrated = False  # on the first check, not here: the CLI and tests build many
        self._calibrating = threading.Lock()

    def hash(self, password: str) -> str:
        return str(self._hash_thread(self._context.hash, _normalise(password)))

    def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed`` (None: no such user); every failure takes
        the same time, whatever ``hashed`` was (see :class:`FailurePacing`)."""
        if not self._calibrated:
            # One calibration, however many first logins arrive together: each would add a
            # bcrypt hash (0.3 s) to the queue of the few hashing threads, and 64 at once
            # held every login for seconds.
            with self._calibrating:
                if not self._calibrated:
                    self._hash_thread(self._calibrate)
        checked = hashed or self._dummy_hash
        try:
            ok, seconds = self._hash_thread(self._check, _normalise(password), checked)
        except ValueError:
            # bcrypt refuses passwords over 72 bytes instead of truncating: that is a wrong
            # password for that hash, not a server error. UnknownHashError (a corrupt stored
            # hash) is a ValueError too, and likewise fails closed.
            ok, seconds = False, 0.0
        # The target as it was before this check counted: had a slow hash's own time moved
        # it, that hash's failures would end sooner or later than the others'.
        target = self._pacing.target()
        if seconds:
            self._pacing.record(_profile(checked), seconds)
        if not ok or hashed is None:
            # Asleep in the caller's thread: the hashing threads (one per core) stay free.
            time.sleep(max(0.0, target - seconds))
            return Verification(ok=False)
        if self._context.needs_update(hashed):
            return Verification(ok=True, new_hash=self.hash(password))
        return Verification(ok=True)

    def _check(self, password: str, hashed: str) -> tuple[bool, float]:
        """In a hashing thread: the check, and how long it took there (not queued)."""
        start = time.perf_counter()
        ok = bool(self._context.verify(password, hashed))
        return ok, time.perf_counter() - start

    def _calibrate(self) -> None:
        """In a hashing thread: a first time for the kinds of hash that may be stored, so the
        first failure is held right. Once per hasher (``verify`` lets one caller run it)."""
        _, seconds = self._check(secrets.token_urlsafe(16), self._dummy_hash)
        self._pacing.record(_profile(self._dummy_hash), seconds)
        # bcrypt's key setup is all of its cost, and hashing runs the same one as checking.
        # Its backend loads first, untimed: passlib's self-test (tens of ms) runs on first use.
        self._legacy_bcrypt.get_backend()
        start = time.perf_counter()
        legacy: str = self._legacy_bcrypt.hash(secrets.token_urlsafe(16))
        self._pacing.record(_profile(legacy), time.perf_counter() - start)
        self._calibrated = True

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
