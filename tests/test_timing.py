"""Unknown email vs wrong password take the same time (ASVS v5 6.3.8, OWASP Authentication
Cheat Sheet): otherwise the response time alone says which accounts exist.

Not a timed test of speed: it compares two medians of the same request shape, interleaved so
any load on the machine falls on both, against a bound set by a real hash measured here.
"""

import statistics
import time
from collections.abc import Callable
from functools import partial

from shared.security.passwords import PasswordHasher
from tests.conftest import ConfiguredApi
from tests.support import sign_up, unique_email

ROUNDS = 15
OWASP_ARGON2 = {"argon2_memory_kib": 19_456, "argon2_time_cost": 2, "argon2_parallelism": 1}


def elapsed(request: Callable[[], object]) -> float:
    start = time.perf_counter()
    request()
    return time.perf_counter() - start


def one_hash_seconds() -> float:
    hasher = PasswordHasher(memory_kib=19_456, time_cost=2, parallelism=1)
    stored = hasher.hash("some password")
    # The fastest of several: load on the machine can only add time, never take it away.
    return min(elapsed(lambda: hasher.verify("wrong", stored)) for _ in range(7))


def test_unknown_email_and_wrong_password_take_the_same_time(configured: ConfiguredApi) -> None:
    # The production hash cost, so hashing (not noise) dominates; a lockout high enough
    # that all the wrong guesses below are answered.
    client = configured(login_max_failures=100, **OWASP_ARGON2).client
    user = sign_up(client)
    body = {"email": user.email, "password": "not the password"}
    wrong, unknown = [], []
    for _ in range(ROUNDS):
        stranger = {**body, "email": unique_email()}
        wrong.append(elapsed(partial(client.post, "/auth/login", json=body)))
        unknown.append(elapsed(partial(client.post, "/auth/login", json=stranger)))
    wrong_median, unknown_median = statistics.median(wrong), statistics.median(unknown)
    hash_seconds = one_hash_seconds()
    # Both paths run one real argon2 verification: an unknown email is checked against a
    # dummy hash, not answered at once.
    assert wrong_median >= 0.7 * hash_seconds, (wrong_median, hash_seconds)
    assert unknown_median >= 0.7 * hash_seconds, (unknown_median, hash_seconds)
    slower, faster = max(wrong_median, unknown_median), min(wrong_median, unknown_median)
    assert slower <= 1.5 * faster, (wrong_median, unknown_median)
