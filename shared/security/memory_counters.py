"""The in-process store of the rate-limit counters: every key forgotten once its window has
passed, and no more than ``MAX_KEYS`` of them at once.

``limits``' own ``MemoryStorage`` keeps every key it has seen: its sweep empties a key's list
of hits but leaves the key. 60,000 requests from distinct IPv6 /64s grew a worker by 48 MiB
that never came back, and the sweep, a pass over every key run every few milliseconds, took
0.45 s once 500,000 accounts had been tried.

Here the keys of one window length sit in insertion order of their latest hit, which is also
the order in which they expire: each operation drops the expired keys at the front, and stops
at the first live one. Each key is dropped once, so the cost is constant on average, and no
thread sweeps.

A full table refuses newcomers (``CountersFull``, which ``Throttle`` answers with 503, as when
Redis is down) rather than evict anyone: evicting the oldest key would let an attacker who
sends ``MAX_KEYS`` fresh keys wipe an account's lockout and start guessing again. Clients and
accounts already counted keep being counted; newcomers wait, at most one window, for keys to
expire. Only the moving window is stored: it is the one strategy ``Throttle`` uses.
"""

import bisect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from limits.storage import MovingWindowSupport, Storage

# Some 200 bytes a key (its name, one timestamp a hit), so at most tens of MiB: far more
# distinct clients and accounts within one window than one process serves, far less memory
# than a worker has.
MAX_KEYS = 100_000


class CountersFull(Exception):
    """No room for one more key: every key held is still within its window."""


class BoundedMemoryStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = None  # built by Throttle, never from a URI

    def __init__(self, *, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.time) -> None:
        # wrap_exceptions: CountersFull reaches Throttle as limits' StorageError, the path a
        # Redis outage takes, so a full table fails closed in the same words.
        super().__init__(wrap_exceptions=True)
        self.max_keys = max_keys
        self.clock = clock  # wall time, as limits reports reset times; tests move it on
        # One table per window length (seconds): within a table, the order of the latest hit
        # is the order of expiry. Each key's hits are ascending timestamps.
        self._tables: dict[int, OrderedDict[str, list[float]]] = {}
        self._lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception]:
        return CountersFull

    def __len__(self) -> int:
        """How many keys are held (expired ones go at the next operation)."""
        return sum(len(table) for table in self._tables.values())

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._lock:
            now = self.clock()
            self._drop_expired(now)
            table = self._tables.setdefault(expiry, OrderedDict())
            hits = table.get(key)
            if hits is None:
                if len(self) >= self.max_keys:
                    raise CountersFull(f"{self.max_keys} keys, all within their window")
                hits = []
            else:
                del hits[: bisect.bisect_right(hits, now - expiry)]
            if len(hits) + amount > limit:
                return False
            hits.extend([now] * amount)
            table[key] = hits
            table.move_to_end(key)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """The oldest hit still in the window and how many there are (``limits``' reset time
        is that hit plus the window)."""
        with self._lock:
            now = self.clock()
            table = self._tables.get(expiry)
            hits = table.get(key, []) if table is not None else []
            live = hits[bisect.bisect_right(hits, now - expiry) :]
            return (live[0], len(live)) if live else (now, 0)

    def clear(self, key: str) -> None:
        with self._lock:
            for table in self._tables.values():
                table.pop(key, None)

    def reset(self) -> int:
        with self._lock:
            held = len(self)
            self._tables.clear()
            return held

    def check(self) -> bool:
        return True

    def _drop_expired(self, now: float) -> None:
        for expiry, table in self._tables.items():
            while table:
                key, hits = next(iter(table.items()))
                if hits[-1] > now - expiry:
                    break  # the first live key: every later one was hit later still
                del table[key]

    # The fixed- and sliding-window counters of limits' Storage: no strategy used here
    # calls them.
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("only the moving window is stored")

    def get(self, key: str) -> int:
        raise NotImplementedError("only the moving window is stored")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("only the moving window is stored")
