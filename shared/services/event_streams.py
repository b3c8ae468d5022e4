"""One user's open event stream, whatever carries it: what it sends, when, and when it ends.

The policy is written once, here, as a conversation with no I/O in it (``EventStream.
conversation``): a generator that yields what to do next — send this, wait this long,
check the credential, close — and is told the answer. Each twin drives it in its own
idiom over server-sent events and a WebSocket (fastapi_app/streams.py awaits, flask_app/
streams.py blocks a thread), so the two cannot disagree about a heartbeat or a closing.

What ends a stream, and the WebSocket close code it gets (RFC 6455 §7.4.1):

- its credential: the session logged out or revoked, every session ended, the user gone,
  or the access token expired. The event saying so is sent first (``token.expired`` for the
  expiry); the socket closes with 1008 (policy violation), the code of every refused
  credential;
- its limits: no event for ``events_idle_seconds``, or open ``events_lifetime_seconds``:
  1001 (going away), and the client reconnects with the last id it saw;
- a reader too slow to keep up with ``events_buffer`` events: 1008;
- a database or Redis that cannot say whether the credential holds: 1013 (try again
  later). Safer than carrying on unchecked; the client's reconnection gets a 503 until it
  is back;
- its server stopping (``EventStream.stop``, shared/web/server_stop.py): 1012 (service
  restart, IANA's registry), and a ``server.stopping`` event over SSE, which has no close
  code. Ended at once, not waited for: the client reconnects, to a server that is not
  stopping, with the last id it saw.
"""

import contextlib
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

import redis
from pydantic import ValidationError
from sqlalchemy import Engine

from shared.domain import errors
from shared.domain.events import (
    REVOCATIONS,
    SESSION_REVOKED,
    TOKEN_EXPIRED,
    AccountEvent,
    parse_event_id,
)
from shared.domain.schemas import SocketAuth
from shared.infrastructure.config import Settings
from shared.security.throttle import rate_limit_key
from shared.security.tokens import TokenClaims
from shared.services.event_broker import EventBroker, Inbox
from shared.services.identity import find_principal

# A user's stream is counted for this many heartbeats (renewed at each): a process that died
# with streams open frees its users' places after that.
LEASE_HEARTBEATS = 3


# RFC 6455 §7.4.1 close codes (1012 and 1013 from IANA's registry).
POLICY_VIOLATION, GOING_AWAY, SERVICE_RESTART, TRY_AGAIN_LATER = 1008, 1001, 1012, 1013


class CloseReason(Enum):
    CREDENTIAL_ENDED = (POLICY_VIOLATION, "credential ended")
    IDLE = (GOING_AWAY, "idle")
    LIFETIME = (GOING_AWAY, "lifetime reached")
    SLOW_READER = (POLICY_VIOLATION, "reader too slow")
    UNAVAILABLE = (TRY_AGAIN_LATER, "try again later")
    SERVER_STOPPING = (SERVICE_RESTART, "service restart")

    def __init__(self, ws_code: int, text: str) -> None:
        self.ws_code = ws_code
        self.text = text


@dataclass(frozen=True)
class Heartbeat:
    """Keeps proxies from timing the stream out; SSE sends it as a comment line."""


@dataclass(frozen=True)
class Send:
    message: AccountEvent | Heartbeat

    @property
    def event(self) -> AccountEvent | None:
        """The event to write, or None for a heartbeat (shared/web/event_frames.py)."""
        return None if isinstance(self.message, Heartbeat) else self.message


@dataclass(frozen=True)
class Wait:
    """Sleep until the inbox wakes the stream, the client goes, or ``seconds`` pass."""

    seconds: float


@dataclass(frozen=True)
class Check:
    """Answer with ``EventStreams.check``: True, False, or None when no one can tell."""


@dataclass(frozen=True)
class Close:
    reason: CloseReason


Step = Send | Wait | Check | Close
Conversation = Generator[Step, bool | None, None]


@dataclass(frozen=True)
class StreamLimits:
    heartbeat: float
    idle: float
    lifetime: float
    buffer: int
    per_user: int
    per_process: int
    write: float  # seconds a write may wait for the client to take it
    per_client: int  # of the process's places, those one client address may hold
    auth: float  # seconds a socket may hold a place before it authenticates

    @classmethod
    def from_settings(cls, settings: Settings) -> "StreamLimits":
        return cls(
            heartbeat=settings.events_heartbeat_seconds,
            idle=settings.events_idle_seconds,
            lifetime=settings.events_lifetime_seconds,
            buffer=settings.events_buffer,
            per_user=settings.events_max_streams_per_user,
            per_process=settings.events_max_streams,
            write=settings.events_write_seconds,
            per_client=settings.events_max_streams_per_client,
            auth=settings.events_auth_seconds,
        )

    @property
    def lease(self) -> float:
        return self.heartbeat * LEASE_HEARTBEATS


@dataclass
class Place:
    """One of this process's stream places, held by one client address: from a socket's
    handshake (before it authenticates) or a stream's opening, to its end."""

    client: str
    held: bool = True


@dataclass
class EventStream:
    claims: TokenClaims
    inbox: Inbox
    limits: StreamLimits
    replayed: list[AccountEvent]
    place: Place | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    opened_at: float = field(default_factory=time.monotonic)
    stopping: bool = False

    def stop(self) -> None:
        """End the stream at its next step, from any thread: its server is stopping."""
        self.stopping = True
        self.inbox.wake()

    def conversation(self) -> Conversation:
        """The stream from its first event to its close (the module docstring says when)."""
        # Ids only grow: an event both replayed and delivered is sent once.
        sent_up_to = 0
        for event in self.replayed:
            if event.is_for(self.claims.session_id):
                yield Send(event)
                sent_up_to = event.id
        expires = self.opened_at + _seconds_until(self.claims.expires_at)
        ends = self.opened_at + self.limits.lifetime
        idle_until = self.opened_at + self.limits.idle
        # The first heartbeat comes a random part of the way in: streams opened together
        # (a deploy's reconnections) would otherwise all check their credentials at once.
        beat = self.opened_at + self.limits.heartbeat * random.uniform(0.5, 1)  # noqa: S311
        while True:
            if self.stopping:
                yield Close(CloseReason.SERVER_STOPPING)
                return
            now = time.monotonic()
            if now >= expires:
                yield Send(AccountEvent(type=TOKEN_EXPIRED, user_id=self.claims.user_id))
                yield Close(CloseReason.CREDENTIAL_ENDED)
                return
            if now >= ends or now >= idle_until:
                yield Close(CloseReason.LIFETIME if now >= ends else CloseReason.IDLE)
                return
            if self.inbox.overflowed:
                yield Close(CloseReason.SLOW_READER)
                return
            for event in self.inbox.take():
                if event.id <= sent_up_to or not event.is_for(self.claims.session_id):
                    continue
                yield Send(event)
                sent_up_to = event.id
                idle_until = time.monotonic() + self.limits.idle
                if event.type in REVOCATIONS and (ending := (yield Check())) is not True:
                    yield Close(_why_closing(ending))
                    return
            if now >= beat:
                holds = yield Check()
                if holds is False:
                    # Revoked, but its event never came (Redis lost it): say so all the same.
                    yield Send(self._revoked_unannounced())
                if holds is not True:
                    yield Close(_why_closing(holds))
                    return
                yield Send(Heartbeat())
                beat = now + self.limits.heartbeat
            yield Wait(max(0.0, min(expires, ends, idle_until, beat) - time.monotonic()))

    def _revoked_unannounced(self) -> AccountEvent:
        return AccountEvent(
            type=SESSION_REVOKED, user_id=self.claims.user_id, data={"reason": "revoked"}
        )


def _seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


def _why_closing(holds: bool | None) -> CloseReason:
    return CloseReason.UNAVAILABLE if holds is None else CloseReason.CREDENTIAL_ENDED


class EventStreams:
    """Opens and closes this process's streams, within the caps, and checks credentials.

    Blocking calls (Redis, the database): the FastAPI twin calls them in its threadpool.
    """

    def __init__(self, *, broker: EventBroker, read_engine: Engine, limits: StreamLimits) -> None:
        self._broker = broker
        self._read_engine = read_engine
        self.limits = limits
        self._open = 0  # places taken: streams, and sockets not yet authenticated
        self._by_client: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take_place(self, address: str) -> Place:
        """A place for a stream or a socket not yet authenticated, from the client at
        ``address`` (an IPv6 client counts as its /64, as for every limit): 503 when this
        process holds all it may, 429 when the client holds its share. A socket takes its
        place at the handshake: unauthenticated, it costs what a stream does (a Flask
        thread), and a crowd of them must not starve the API."""
        client = rate_limit_key(address)
        with self._lock:
            if self._open >= self.limits.per_process:
                raise errors.StreamCapacityReached
            if self._by_client[client] >= self.limits.per_client:
                # One client (many accounts, or no account at all) cannot take every place.
                # Retry-After: within that, each of its sockets that never authenticates has
                # given its place back.
                raise errors.TooManyClientStreams(retry_after=math.ceil(self.limits.auth))
            self._open += 1
            self._by_client[client] += 1
        return Place(client)

    def release(self, place: Place) -> None:
        """Free ``place``; safe to call again."""
        with self._lock:
            if not place.held:
                return
            place.held = False
            self._open -= 1
            self._by_client[place.client] -= 1
            if not self._by_client[place.client]:
                del self._by_client[place.client]

    def open(
        self,
        claims: TokenClaims,
        *,
        place: Place,
        last_event_id: str | None,
        wake: Callable[[], None],
    ) -> EventStream:
        """A stream for the holder of ``claims`` (already checked by the caller) in ``place``
        (``take_place``), resuming after ``last_event_id``; 503 when Redis cannot take it,
        429 when the user has too many, 401 when the credential ended meanwhile. The place
        is freed with the stream, or at once if none opens."""
        stream = EventStream(
            claims=claims,
            inbox=Inbox(capacity=self.limits.buffer, wake=wake),
            limits=self.limits,
            replayed=[],
            place=place,
        )
        try:
            self._enter(stream, parse_event_id(last_event_id))
        except BaseException:
            self.close(stream)
            raise
        return stream

    def _enter(self, stream: EventStream, after: int | None) -> None:
        user_id = stream.claims.user_id
        try:
            claimed = self._broker.claim_stream(
                user_id, stream.id, limit=self.limits.per_user, lease=self.limits.lease
            )
            if not claimed:
                raise errors.TooManyStreams(retry_after=math.ceil(self.limits.lease))
            # Subscribed before the replay is read: an event published in between is in
            # both, and the stream skips it the second time (by id).
            self._broker.subscribe(user_id, stream.inbox)
            if after is not None:
                stream.replayed = self._broker.replay(user_id, after)
        except redis.RedisError:
            raise errors.EventsUnavailable from None
        # And checked once subscribed: a credential ended since the caller checked it (its
        # event published before this stream could hear it) is refused here, with a 401;
        # one ended from now on, the stream hears of.
        find_principal(self._read_engine, stream.claims)

    def check(self, stream: EventStream) -> bool | None:
        """Whether the stream's credential still holds (renewing its place among the user's
        streams on the way): None when the database or Redis cannot say."""
        try:
            # Renewed, not re-counted: a stream already open stays open.
            self._broker.claim_stream(
                stream.claims.user_id,
                stream.id,
                limit=self.limits.per_user,
                lease=self.limits.lease,
            )
            find_principal(self._read_engine, stream.claims)
        except errors.InvalidToken:
            return False
        except (redis.RedisError, errors.DatabaseUnavailable):
            return None
        except Exception as exc:
            if errors.outage_error(exc) is not None:
                return None
            raise
        return True

    def close(self, stream: EventStream) -> None:
        """Free the stream's places; safe to call once whatever ``open`` got to."""
        self._broker.unsubscribe(stream.claims.user_id, stream.inbox)
        # If Redis is down, the stream's lease ends it within LEASE_HEARTBEATS heartbeats.
        with contextlib.suppress(redis.RedisError):
            self._broker.release_stream(stream.claims.user_id, stream.id)
        if stream.place is not None:
            self.release(stream.place)


def socket_auth(message: str | bytes | None) -> SocketAuth | None:
    """A socket's first message, if it is an ``auth`` one; anything else closes the socket."""
    if not isinstance(message, str):
        return None
    try:
        return SocketAuth.model_validate_json(message)
    except ValidationError:
        return None


def socket_refusal(error: Exception) -> tuple[int, str] | None:
    """The close code and reason for a socket whose credential or stream was refused, as an
    HTTP client would be answered 401 or 429 (1008) or 503 (1013); None for a bug."""
    refusal = error if isinstance(error, errors.DomainError) else errors.outage_error(error)
    if refusal is None:
        return None
    code = TRY_AGAIN_LATER if refusal.status_code == 503 else POLICY_VIOLATION
    return code, refusal.detail
