"""The in-process store of the rate-limit counters: every key forgotten once its window has
passed, a fixed budget of keys per kind, and room for a newcomer whatever a flood has sent.

``limits``' own ``MemoryStorage`` keeps every key it has seen: its sweep empties a key's list
of hits but leaves the key, so requests from ever new IPv6 /64s grow a worker for good, and
the sweep, a pass over every key every few milliseconds, grows with them.

Here the keys of one kind and window length sit in insertion order of their latest hit, which
is also the order in which they expire: each operation drops the expired keys at the front,
and stops at the first live one. Each key is dropped once, so the cost is constant on
average, and no thread sweeps.

The design against floods. Every fresh address, account or recipient a client names makes a
key, so a client can make as many as it sends requests; the store must stay bounded, yet a
full store must neither refuse newcomers (a 503 for everyone not yet counted) nor forget a
lockout. So:

* each kind of key (the first part of its name: ``client``, ``account``, ``mail``) has its
  own budget of ``max_keys``: a flood of reset requests, whose keys last an hour, takes no
  room from the logins' keys;
* a full budget makes room for the newcomer by evicting its least valuable key: a key hit
  once before a key counting towards its limit, before a key at its limit (one refusing, a
  lockout); within each, the least recently hit. A flood of fresh keys, each hit once, thus
  evicts its own keys first, and an account's count of failures survives it;
* a key at its limit of a kind in ``KEEP_HELD`` (the login lockout) is never evicted: a
  newcomer is refused (``CountersFull``, which ``Throttle`` answers with 503, as when Redis
  is down) only once every key of that kind is an active lockout, which takes ``max_keys``
  accounts locked within one lockout window, each by as many failed (hashed) guesses as the
  lockout allows: 400,000 password hashes in 15 minutes by default, some 450 a second,
  where a core computes a few dozen. A client's or a recipient's refusal may go when
  nothing else can: forgetting it gives one client, or one mailbox, one more window's
  budget, at the cost of ``max_keys`` fresh keys.

Only the moving window is stored: it is the one strategy ``Throttle`` uses.
"""

import bisect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from limits.storage import MovingWindowSupport, Storage

# Per kind of key. Some 300 bytes a key (its name, its list of hits, its place in a table),
# so under 40 MiB for the three kinds full: far more distinct clients, accounts and
# recipients within one window than one process serves, far less memory than a worker has.
MAX_KEYS = 40_000
# The login lockout's kind (security/throttle.py names its keys so): its refusals stay.
LOCKOUT_KIND = "account"
KEEP_HELD = frozenset({LOCKOUT_KIND})
# The tiers of a table, least valuable first: hit once; counting; at its limit.
ONCE, COUNTING, HELD = range(3)


class CountersFull(Exception):
    """No room for one more key: every key of its kind is an active lockout."""


class _Table:
    """The keys of one kind and window length, by tier, each tier in order of latest hit."""

    def __init__(self) -> None:
        self.tiers: tuple[OrderedDict[str, list[float]], ...] = tuple(
            OrderedDict() for _ in range(HELD + 1)
        )

    def __len__(self) -> int:
        return sum(len(tier) for tier in self.tiers)

    def find(self, key: str) -> tuple[int, list[float]] | None:
        for number, tier in enumerate(self.tiers):
            if (hits := tier.get(key)) is not None:
                return number, hits
        return None

    def drop_expired(self, horizon: float) -> None:
        for tier in self.tiers:
            while tier:
                key, hits = next(iter(tier.items()))
                if hits[-1] > horizon:
                    break  # the first live key: every later one was hit later still
                del tier[key]

    def oldest(self, number: int) -> float | None:
        """The latest hit of the least recently hit key of tier ``number``, if any."""
        tier = self.tiers[number]
        return next(iter(tier.values()))[-1] if tier else None


def kind_of(key: str) -> str:
    """``LIMITER/account/<hash>/10/900/second`` → ``account``: the first identifier."""
    return key.split("/", 2)[1] if key.count("/") >= 2 else key


class BoundedMemoryStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = None  # built by Throttle, never from a URI

    def __init__(self, *, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.time) -> None:
        # wrap_exceptions: CountersFull reaches Throttle as limits' StorageError, the path a
        # Redis outage takes, so a full table fails closed in the same words.
        super().__init__(wrap_exceptions=True)
        self.max_keys = max_keys  # per kind of key
        self.clock = clock  # wall time, as limits reports reset times; tests move it on
        self._tables: dict[tuple[str, int], _Table] = {}  # by kind and window (seconds)
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
            kind = kind_of(key)
            table = self._tables.setdefault((kind, expiry), _Table())
            found = table.find(key)
            hits: list[float]
            if found is None:
                self._make_room(kind)
                tier, hits = ONCE, []
            else:
                tier, hits = found
                del hits[: bisect.bisect_right(hits, now - expiry)]
            if len(hits) + amount > limit:
                return False  # refused: its place (by its latest counted hit) stays
            if found is not None:
                del table.tiers[tier][key]
            hits.extend([now] * amount)
            rank = HELD if len(hits) >= limit else ONCE if len(hits) == 1 else COUNTING
            table.tiers[rank][key] = hits
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """The oldest hit still in the window and how many there are (``limits``' reset time
        is that hit plus the window)."""
        with self._lock:
            now = self.clock()
            table = self._tables.get((kind_of(key), expiry))
            found = table.find(key) if table is not None else None
            hits = found[1] if found is not None else []
            live = hits[bisect.bisect_right(hits, now - expiry) :]
            return (live[0], len(live)) if live else (now, 0)

    def clear(self, key: str) -> None:
        with self._lock:
            for table in self._tables.values():
                for tier in table.tiers:
                    tier.pop(key, None)

    def reset(self) -> int:
        with self._lock:
            held = len(self)
            self._tables.clear()
            return held

    def check(self) -> bool:
        return True

    def _drop_expired(self, now: float) -> None:
        for (_, expiry), table in self._tables.items():
            table.drop_expired(now - expiry)

    def _make_room(self, kind: str) -> None:
        """Evict ``kind``'s least valuable key if its budget is spent (module docstring)."""
        tables = [table for (each, _), table in self._tables.items() if each == kind]
        if sum(len(table) for table in tables) < self.max_keys:
            return
        last = COUNTING if kind in KEEP_HELD else HELD
        for number in range(last + 1):
            candidates = [
                (at, table) for table in tables if (at := table.oldest(number)) is not None
            ]
            if candidates:
                _, table = min(candidates, key=lambda candidate: candidate[0])
                table.tiers[number].popitem(last=False)
                return
        raise CountersFull(f"{self.max_keys} {kind} keys, every one an active lockout")

    # The fixed- and sliding-window counters of limits' Storage: no strategy used here
    # calls them.
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("only the moving window is stored")

    def get(self, key: str) -> int:
        raise NotImplementedError("only the moving window is stored")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("only the moving window is stored")
