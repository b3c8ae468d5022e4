"""The parts of account events no HTTP client can reach on its own: the stream's policy
(services/event_streams.py) step by step, and the brokers (services/event_broker.py),
in one process and through a real Redis, where several processes meet."""

import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain import errors
from shared.domain.events import SESSION_REVOKED, USER_UPDATED, AccountEvent
from shared.security.tokens import TokenClaims
from shared.services import event_streams
from shared.services.event_broker import EventBroker, Inbox, LocalBroker, RedisBroker
from shared.services.event_streams import (
    Check,
    Close,
    CloseReason,
    Conversation,
    EventStream,
    EventStreams,
    Heartbeat,
    Send,
    StreamLimits,
    Wait,
)
from shared.web.server_stop import ServerStop

pytestmark = pytest.mark.in_process
LIMITS = StreamLimits(
    heartbeat=60,
    idle=600,
    lifetime=3600,
    buffer=2,
    per_user=2,
    per_process=10,
    write=10,
    per_client=10,
    auth=5,
)


def claims(user_id: int = 1, session_id: str = "session-a") -> TokenClaims:
    return TokenClaims(
        user_id=user_id,
        jti=uuid.uuid4().hex,
        type="access",
        generation=0,
        session_id=session_id,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )


def stream(
    limits: StreamLimits = LIMITS, replayed: list[AccountEvent] | None = None
) -> EventStream:
    return EventStream(
        claims=claims(),
        inbox=Inbox(capacity=limits.buffer, wake=lambda: None),
        limits=limits,
        replayed=replayed or [],
    )


def updated(event_id: int) -> AccountEvent:
    return AccountEvent(type=USER_UPDATED, user_id=1, data={"changed": ["email"]}, id=event_id)


def revoked(event_id: int, session_id: str) -> AccountEvent:
    return AccountEvent(type=SESSION_REVOKED, user_id=1, session_id=session_id, id=event_id)


# --- the policy -------------------------------------------------------------------------


def test_a_reader_that_falls_behind_its_buffer_is_dropped() -> None:
    subject = stream()
    for event_id in (1, 2, 3):  # a buffer of two
        subject.inbox.deliver(updated(event_id))
    assert next(subject.conversation()) == Close(CloseReason.SLOW_READER)


def test_a_revocation_is_sent_then_checked_and_ends_the_stream_if_it_holds_no_more() -> None:
    subject = stream()
    subject.inbox.deliver(revoked(7, "session-a"))
    steps = subject.conversation()
    assert next(steps) == Send(revoked(7, "session-a"))
    assert next(steps) == Check()
    assert steps.send(False) == Close(CloseReason.CREDENTIAL_ENDED)


def test_a_revocation_the_credential_survives_goes_on() -> None:
    # A replayed sessions.revoked older than the token that opened the stream, say.
    subject = stream(replayed=[])
    subject.inbox.deliver(AccountEvent(type="sessions.revoked", user_id=1, id=3))
    steps = subject.conversation()
    assert isinstance(next(steps), Send)
    assert next(steps) == Check()
    assert isinstance(steps.send(True), Wait)


def test_a_stream_stopped_while_waiting_wakes_and_closes_as_a_service_restart() -> None:
    woken = []
    subject = stream()
    subject.inbox = Inbox(capacity=LIMITS.buffer, wake=lambda: woken.append(True))
    steps = subject.conversation()
    assert isinstance(next(steps), Wait)
    subject.stop()  # its server is stopping: from another thread, in a server
    assert woken == [True]
    assert next(steps) == Close(CloseReason.SERVER_STOPPING)
    assert CloseReason.SERVER_STOPPING.ws_code == 1012


def test_a_server_stop_reaches_what_subscribed_even_after_it_was_set() -> None:
    server_stop = ServerStop()
    heard: list[str] = []
    unsubscribe = server_stop.subscribe(lambda: heard.append("left"))
    server_stop.subscribe(lambda: heard.append("open"))
    unsubscribe()  # a stream that ended before the server stopped
    server_stop.stop()
    server_stop.subscribe(lambda: heard.append("late"))  # opened as the server stopped
    assert heard == ["open", "late"]


def test_another_sessions_revocation_is_skipped() -> None:
    subject = stream()
    subject.inbox.deliver(revoked(4, "session-b"))
    assert isinstance(next(subject.conversation()), Wait)


def test_an_event_both_replayed_and_delivered_is_sent_once() -> None:
    subject = stream(replayed=[updated(5)])
    subject.inbox.deliver(updated(5))
    subject.inbox.deliver(updated(6))
    steps = subject.conversation()
    assert [next(steps), next(steps)] == [Send(updated(5)), Send(updated(6))]
    assert isinstance(next(steps), Wait)


def heartbeat_due() -> Conversation:
    subject = stream(StreamLimits(0.01, 600, 3600, 2, 2, 10, 10, 10, 5))
    steps = subject.conversation()
    time.sleep(0.02)  # the heartbeat is due by the first step
    assert next(steps) == Check()
    return steps


def test_each_heartbeat_checks_the_credential_first() -> None:
    steps = heartbeat_due()
    assert steps.send(True) == Send(Heartbeat())


def test_a_revocation_whose_event_was_lost_is_found_at_the_heartbeat() -> None:
    steps = heartbeat_due()
    sent = steps.send(False)
    assert isinstance(sent, Send)
    assert isinstance(sent.message, AccountEvent)
    assert (sent.message.type, sent.message.data) == (SESSION_REVOKED, {"reason": "revoked"})
    assert next(steps) == Close(CloseReason.CREDENTIAL_ENDED)


def test_a_check_no_one_can_answer_ends_the_stream_as_try_again_later() -> None:
    steps = heartbeat_due()
    assert steps.send(None) == Close(CloseReason.UNAVAILABLE)


def test_a_credential_ended_between_its_check_and_the_subscription_ends_the_stream_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The route checks the token, then ``open`` subscribes: a logout committed in between
    is published to no inbox of this stream, and no replay is read without Last-Event-ID.
    The stream must not then wait a whole heartbeat (15 s by default) before it finds out."""
    broker = LocalBroker(replay_count=10, replay_seconds=60)
    streams = EventStreams(broker=broker, read_engine=None, limits=LIMITS)  # type: ignore[arg-type]
    broker.publish(
        AccountEvent(
            type=SESSION_REVOKED, user_id=1, session_id="session-a", data={"reason": "logout"}
        )
    )

    def session_ended(_engine: object, _claims: TokenClaims) -> None:
        raise errors.InvalidToken

    monkeypatch.setattr(event_streams, "find_principal", session_ended)
    try:
        subject = streams.open(
            claims(), place=streams.take_place("192.0.2.1"), last_event_id=None, wake=lambda: None
        )
    except errors.InvalidToken:
        return  # refused at the opening: as good
    steps = subject.conversation()
    step = next(steps)
    for _ in range(5):
        assert not isinstance(step, Wait), f"{step}: waits on a credential already ended"
        if isinstance(step, Close):
            break
        step = steps.send(streams.check(subject) if isinstance(step, Check) else None)
    assert step == Close(CloseReason.CREDENTIAL_ENDED)
    streams.close(subject)


# --- the brokers ------------------------------------------------------------------------


@pytest.fixture(params=["local", "redis"])
def broker(request: pytest.FixtureRequest) -> Iterator[EventBroker]:
    made = make_broker(request, prefix=f"authtwin-test-{uuid.uuid4().hex}")
    yield made
    made.close()


def make_broker(request: pytest.FixtureRequest, prefix: str, count: int = 3) -> EventBroker:
    if request.param == "local":
        return LocalBroker(replay_count=count, replay_seconds=60)
    url: str = request.getfixturevalue("redis_url")
    return RedisBroker(url, key_prefix=prefix, replay_count=count, replay_seconds=60)


def test_events_are_numbered_in_order_and_replayed_after_an_id(broker: EventBroker) -> None:
    for _ in range(5):
        broker.publish(AccountEvent(type=USER_UPDATED, user_id=1, data={"changed": ["email"]}))
    held = broker.replay(1, after=0)
    ids = [event.id for event in held]
    assert len(ids) == 3  # the last replay_count only
    assert ids == sorted(ids)
    assert [event.id for event in broker.replay(1, after=ids[0])] == ids[1:]
    assert broker.replay(2, after=0) == []


def test_a_users_streams_are_capped_and_a_released_one_frees_its_place(
    broker: EventBroker,
) -> None:
    assert broker.claim_stream(1, "a", limit=2, lease=60)
    assert broker.claim_stream(1, "b", limit=2, lease=60)
    assert not broker.claim_stream(1, "c", limit=2, lease=60)
    assert broker.claim_stream(1, "a", limit=2, lease=60)  # renewing is no new place
    assert broker.claim_stream(2, "c", limit=2, lease=60)  # another user's count
    broker.release_stream(1, "b")
    assert broker.claim_stream(1, "c", limit=2, lease=60)


def test_through_redis_an_event_reaches_another_processs_streams(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    prefix = f"authtwin-test-{uuid.uuid4().hex}"
    request.param = "redis"
    here, there = make_broker(request, prefix), make_broker(request, prefix)
    try:
        woken: list[bool] = []
        inbox = Inbox(capacity=10, wake=lambda: woken.append(True))
        there.subscribe(1, inbox)
        deadline = time.monotonic() + 5
        # The listener subscribes in its own thread: publish until it hears one.
        while not woken:
            assert time.monotonic() < deadline, "the other broker never heard the event"
            here.publish(AccountEvent(type=USER_UPDATED, user_id=1, data={"changed": ["email"]}))
            time.sleep(0.05)
        assert inbox.take()[0].data == {"changed": ["email"]}
        # Counted over both: one place left of two after a claim on each side.
        assert here.claim_stream(1, "a", limit=2, lease=60)
        assert there.claim_stream(1, "b", limit=2, lease=60)
        assert not here.claim_stream(1, "c", limit=2, lease=60)
    finally:
        here.close()
        there.close()


def test_a_dead_processs_streams_free_their_places_when_their_lease_ends(
    request: pytest.FixtureRequest, redis_url: str
) -> None:
    request.param = "redis"
    broker = make_broker(request, f"authtwin-test-{uuid.uuid4().hex}")
    try:
        assert broker.claim_stream(1, "died-with-its-process", limit=1, lease=0.2)
        assert not broker.claim_stream(1, "b", limit=1, lease=0.2)
        time.sleep(0.3)  # the lease is a duration: past it, the place is free
        assert broker.claim_stream(1, "b", limit=1, lease=0.2)
    finally:
        broker.close()


def test_places_are_capped_per_process_and_per_client_and_freed_once() -> None:
    limits = dataclasses.replace(LIMITS, per_process=3, per_client=2)
    broker = LocalBroker(replay_count=10, replay_seconds=60)
    streams = EventStreams(broker=broker, read_engine=None, limits=limits)  # type: ignore[arg-type]
    first, second = streams.take_place("192.0.2.1"), streams.take_place("192.0.2.1")
    with pytest.raises(errors.TooManyClientStreams):
        streams.take_place("192.0.2.1")
    third = streams.take_place("192.0.2.2")
    with pytest.raises(errors.StreamCapacityReached):
        streams.take_place("192.0.2.3")
    streams.release(first)
    streams.release(first)  # a second release frees nothing more
    streams.take_place("192.0.2.3")
    with pytest.raises(errors.StreamCapacityReached):
        streams.take_place("192.0.2.4")
    for place in (second, third):
        streams.release(place)
    streams.take_place("192.0.2.1")  # the client's two places are its own again
    streams.take_place("192.0.2.1")
