"""Where account events go between the request that causes them and the streams that carry
them: within this process, or through Redis to every process that shares it.

Each process keeps its own streams' inboxes (``Subscribers``); a broker only decides how an
event reaches the processes. With Redis, one pub/sub channel carries every user's events and
each process keeps those of its own streams' users: account events are rare (a logout, a
profile change), so one subscription per process beats one per stream, which would cost
Redis a subscription, and each process a socket, per open stream.

A broker also numbers events (ids increasing over every process sharing it), keeps each
user's last few for ``Last-Event-ID`` to resume from, and counts each user's open streams
over every process (leases that a dead process's streams outlive only briefly).
"""

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

import redis

from shared.domain.events import AccountEvent

logger = logging.getLogger("authtwin.events")


class Inbox:
    """The events one stream has been sent and not yet written; at most ``capacity``.

    ``deliver`` may be called from any thread (the Redis listener's, a request's); ``wake``
    then tells the stream's own waiting, which each twin does in its idiom (an asyncio
    event set through the loop, a threading event).
    """

    def __init__(self, *, capacity: int, wake: Callable[[], None]) -> None:
        self._capacity = capacity
        self._wake = wake
        self._events: deque[AccountEvent] = deque()
        self._lock = threading.Lock()
        # A reader this far behind is dropped, not buffered for: its client resumes.
        self.overflowed = False

    def deliver(self, event: AccountEvent) -> None:
        with self._lock:
            if len(self._events) >= self._capacity:
                self.overflowed = True
            else:
                self._events.append(event)
        self._wake()

    def wake(self) -> None:
        """Have the stream look again, with no event for it (it is to end)."""
        self._wake()

    def take(self) -> list[AccountEvent]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events


class Subscribers:
    """This process's inboxes, by user."""

    def __init__(self) -> None:
        self._inboxes: dict[int, set[Inbox]] = {}
        self._lock = threading.Lock()

    def add(self, user_id: int, inbox: Inbox) -> None:
        with self._lock:
            self._inboxes.setdefault(user_id, set()).add(inbox)

    def remove(self, user_id: int, inbox: Inbox) -> None:
        with self._lock:
            inboxes = self._inboxes.get(user_id, set())
            inboxes.discard(inbox)
            if not inboxes:
                self._inboxes.pop(user_id, None)

    def dispatch(self, event: AccountEvent) -> None:
        with self._lock:
            inboxes = list(self._inboxes.get(event.user_id, ()))
        for inbox in inboxes:
            inbox.deliver(event)


class EventBroker(Protocol):
    def publish(self, event: AccountEvent) -> None: ...

    def subscribe(self, user_id: int, inbox: Inbox) -> None: ...

    def unsubscribe(self, user_id: int, inbox: Inbox) -> None: ...

    def replay(self, user_id: int, after: int) -> list[AccountEvent]:
        """The user's events still held whose id is above ``after``, oldest first."""
        ...

    def claim_stream(self, user_id: int, stream_id: str, *, limit: int, lease: float) -> bool:
        """Count ``stream_id`` among the user's open streams for ``lease`` seconds, unless
        ``limit`` others are open; a claim renews a stream counted already."""
        ...

    def release_stream(self, user_id: int, stream_id: str) -> None: ...

    def close(self) -> None: ...


class LocalBroker:
    """One process: events go straight to this process's inboxes."""

    def __init__(self, *, replay_count: int, replay_seconds: float) -> None:
        self._subscribers = Subscribers()
        self._replay_count = replay_count
        self._replay_seconds = replay_seconds
        self._ids = itertools.count(1)
        # Oldest-published user first, so expired logs are dropped from the front.
        self._logs: OrderedDict[int, deque[AccountEvent]] = OrderedDict()
        self._streams: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()

    def publish(self, event: AccountEvent) -> None:
        with self._lock:
            numbered = event.numbered(next(self._ids), time.time())
            self._forget_expired(numbered.published_at)
            if self._replay_count:
                log = self._logs.setdefault(event.user_id, deque(maxlen=self._replay_count))
                log.append(numbered)
                self._logs.move_to_end(event.user_id)
        self._subscribers.dispatch(numbered)

    def _forget_expired(self, now: float) -> None:
        while self._logs:
            user_id, log = next(iter(self._logs.items()))
            if log[-1].published_at >= now - self._replay_seconds:
                return
            del self._logs[user_id]

    def subscribe(self, user_id: int, inbox: Inbox) -> None:
        self._subscribers.add(user_id, inbox)

    def unsubscribe(self, user_id: int, inbox: Inbox) -> None:
        self._subscribers.remove(user_id, inbox)

    def replay(self, user_id: int, after: int) -> list[AccountEvent]:
        since = time.time() - self._replay_seconds
        with self._lock:
            held = list(self._logs.get(user_id, ()))
        return [e for e in held if e.id > after and e.published_at >= since]

    def claim_stream(self, user_id: int, stream_id: str, *, limit: int, lease: float) -> bool:
        # In one process a stream is released when it ends: the lease matters only to Redis.
        with self._lock:
            streams = self._streams.setdefault(user_id, {})
            if stream_id not in streams and len(streams) >= limit:
                return False
            streams[stream_id] = lease
            return True

    def release_stream(self, user_id: int, stream_id: str) -> None:
        with self._lock:
            streams = self._streams.get(user_id, {})
            streams.pop(stream_id, None)
            if not streams:
                self._streams.pop(user_id, None)

    def close(self) -> None:
        pass


# Numbered, kept for replay and sent in one step, so every process sees ids in order. The
# time is Redis's: the replay window must not depend on which server's clock published.
PUBLISH = """
local id = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local event = cjson.decode(ARGV[1])
event['id'] = id
event['published_at'] = tonumber(now[1]) + tonumber(now[2]) / 1000000
local raw = cjson.encode(event)
if tonumber(ARGV[2]) > 0 then
  redis.call('RPUSH', KEYS[2], raw)
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
redis.call('PUBLISH', KEYS[3], raw)
return id
"""

# A sorted set of the user's streams, each scored with when its lease ends.
CLAIM = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""

# How long the listener waits before subscribing again after losing Redis.
RESUBSCRIBE_SECONDS = 1.0


class RedisBroker:
    """Several processes: events go through Redis pub/sub to each one's inboxes.

    Commands fail fast (``socket_timeout``) with ``redis.RedisError``; callers decide what a
    failure means (a stream refused with 503, an event left to the streams' next check).
    The listener thread starts with the first stream, in the process that serves it (never
    in a gunicorn master that forks it away), and resubscribes after an outage; events
    published meanwhile are lost to it, which each stream's periodic check makes good.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        replay_count: int,
        replay_seconds: int,
        timeout: float = 2.0,
    ) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self._prefix = f"{key_prefix}:events"
        self._channel = f"{self._prefix}:published"
        self._replay_count = replay_count
        self._replay_seconds = replay_seconds
        self._publish = self._redis.register_script(PUBLISH)
        self._claim = self._redis.register_script(CLAIM)
        self._subscribers = Subscribers()
        self._listener: threading.Thread | None = None
        self._listener_lock = threading.Lock()
        self._closed = threading.Event()

    def publish(self, event: AccountEvent) -> None:
        keys = [f"{self._prefix}:seq", self._log_key(event.user_id), self._channel]
        self._publish(keys=keys, args=[event.to_json(), self._replay_count, self._replay_seconds])

    def subscribe(self, user_id: int, inbox: Inbox) -> None:
        self._ensure_listening()
        self._subscribers.add(user_id, inbox)

    def unsubscribe(self, user_id: int, inbox: Inbox) -> None:
        self._subscribers.remove(user_id, inbox)

    def replay(self, user_id: int, after: int) -> list[AccountEvent]:
        since = time.time() - self._replay_seconds
        raw: list[bytes] = self._redis.lrange(self._log_key(user_id), 0, -1)  # type: ignore[assignment]
        events = [AccountEvent.from_json(item) for item in raw]
        return [e for e in events if e.id > after and e.published_at >= since]

    def claim_stream(self, user_id: int, stream_id: str, *, limit: int, lease: float) -> bool:
        claimed = self._claim(keys=[self._streams_key(user_id)], args=[stream_id, limit, lease])
        return bool(claimed)

    def release_stream(self, user_id: int, stream_id: str) -> None:
        self._redis.zrem(self._streams_key(user_id), stream_id)

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self._redis.close()

    def _log_key(self, user_id: int) -> str:
        return f"{self._prefix}:log:{user_id}"

    def _streams_key(self, user_id: int) -> str:
        return f"{self._prefix}:streams:{user_id}"

    def _ensure_listening(self) -> None:
        with self._listener_lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(
                    target=self._listen, name="authtwin-events", daemon=True
                )
                self._listener.start()

    def _listen(self) -> None:
        while not self._closed.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message["data"])
            except redis.RedisError as exc:
                logger.warning("event subscription lost, resubscribing: %s", exc)
                self._closed.wait(RESUBSCRIBE_SECONDS)
            finally:
                pubsub.close()

    def _dispatch(self, raw: bytes) -> None:
        try:
            published = AccountEvent.from_json(raw)
        except (ValueError, KeyError, TypeError):
            # Not ours (someone else publishing on the channel): never the listener's end.
            logger.warning("unreadable message on %s ignored", self._channel)
            return
        self._subscribers.dispatch(published)


def make_event_broker(
    redis_url: str | None, *, key_prefix: str, replay_count: int, replay_seconds: int
) -> EventBroker:
    if redis_url:
        return RedisBroker(
            redis_url,
            key_prefix=key_prefix,
            replay_count=replay_count,
            replay_seconds=replay_seconds,
        )
    return LocalBroker(replay_count=replay_count, replay_seconds=replay_seconds)
