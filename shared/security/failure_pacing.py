"""Holding a failed password check until it has taken as long as any other would.

``PasswordHasher`` makes every failure do the same work: one check per scheme it accepts,
the stored hash's own and a dummy of each other. What equal work cannot cover is a stored
hash whose *parameters* differ from the dummies' (argon2id from before the cost was raised,
bcrypt of another cost): its check runs in its own time. So a failure is also held, asleep
(no CPU), until the slowest kind of failure seen would have finished.
"""

import threading

# A failure is held this much longer than the slowest kind usually takes: each check varies
# around its usual time, and one that ran long would stand out from the held ones.
HEADROOM = 1.25
SMOOTHING = 0.2  # the weight of the newest time in a kind of hash's running estimate


def profile(hashed: str) -> str:
    """What a check of ``hashed`` costs depends on: its scheme and parameters, not its salt.

    ``$argon2id$v=19$m=19456,t=2,p=1$<salt>$<digest>`` → ``$argon2id$v=19$m=19456,t=2,p=1``;
    ``$2b$12$<salt and digest>`` → ``$2b$12``.
    """
    head = hashed.rpartition("$")[0]
    return head.rpartition("$")[0] if hashed.startswith("$argon2") else head


class FailurePacing:
    """How long a failure takes in all, whatever hash it was checked against.

    What each kind of stored hash takes to fail is measured, not assumed: a running estimate
    per scheme and parameters (a handful of entries: the kinds of hash stored), so a machine
    under load or an unusual hash raises the target. Times run from the start of the work in
    its hashing thread. Successes are not held: whoever sent the right password learns
    nothing from the time.

    The limit: a kind of hash costlier than any failed yet in this process answers its first
    failure in its own time. Django's ``harden_runtime`` instead runs the missing iterations
    for a weaker hash of the current scheme: it burns CPU, and cannot make a slower scheme
    answer faster.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}

    def record(self, kind: str, seconds: float) -> None:
        with self._lock:
            before = self._seconds.get(kind, seconds)
            self._seconds[kind] = before + SMOOTHING * (seconds - before)

    def target(self) -> float:
        """The time every failure should take, from its start in the hashing thread."""
        with self._lock:
            return HEADROOM * max(self._seconds.values(), default=0.0)
