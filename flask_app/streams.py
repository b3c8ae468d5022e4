"""The Flask twin drives an ``EventStream`` (services/event_streams.py) by blocking a thread:
WSGI gives an application a thread per request and no way to hand a waiting connection
back, so each open stream holds one of gunicorn's threads from its first byte to its last
(and a WebSocket a second one, simple-websocket's reader). deploy/servers.py gives gunicorn
as many threads more than the API needs as a worker may hold streams (``events_max_streams``),
so that streams never take the threads requests need.

fastapi_app/streams.py drives the same conversation with awaits, and no thread per stream.
"""

import base64
import binascii
import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from flask import Response, g, request
from flask.typing import ResponseReturnValue
from simple_websocket import ConnectionClosed, Server
from sqlalchemy import Engine
from wsproto.utilities import RemoteProtocolError

from flask_app.deps import get_client_ip, get_event_streams, get_runtime
from flask_app.errors import domain_error, unexpected_error
from shared.domain import errors
from shared.domain.events import AccountEvent
from shared.security.tokens import TokenClaims, TokenCodec
from shared.services.event_streams import (
    Check,
    Close,
    CloseReason,
    EventStream,
    EventStreams,
    Wait,
    socket_auth,
    socket_refusal,
)
from shared.services.identity import find_principal
from shared.web.event_frames import (
    EVENT_STREAM_HEADERS,
    POLICY_VIOLATION,
    SERVER_STOPPING_FRAME,
    SOCKET_READY,
    STREAM_PREAMBLE,
    socket_message,
    socket_origin_allowed,
    sse_frame,
)
from shared.web.server_stop import server_stop_in

Messages = Generator[AccountEvent | None, None, CloseReason]


def converse(stream: EventStream, streams: EventStreams, wait: Callable[[float], None]) -> Messages:
    """The stream's conversation, carried out in this thread: yields what to write, and
    returns the reason it ended."""
    conversation = stream.conversation()
    answer: bool | None = None
    while True:
        step = conversation.send(answer)
        answer = None
        if isinstance(step, Close):
            return step.reason
        if isinstance(step, Wait):
            wait(step.seconds)
        elif isinstance(step, Check):
            answer = streams.check(stream)
        else:
            yield step.event


def with_write_deadline(connection: socket.socket | None, seconds: float) -> None:
    """A write the client does not take in time fails, and ends the stream: gunicorn and
    Werkzeug write with no deadline, so a client that stops reading would hold the thread
    for ever. The connection ends with the stream, which the deadline then no longer
    concerns. (Not for a socket: simple-websocket's reader thread reads the same connection,
    and would take the deadline as the client's silence: ``writable_within``.)"""
    if connection is not None:
        connection.settimeout(seconds)


def writable_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the client has taken enough of what was written for more to go out: a socket's
    write deadline, checked before each message (they are small)."""
    # poll, not select: select refuses descriptors over 1023, which a busy worker has.
    poller = select.poll()
    poller.register(connection, select.POLLOUT)
    return bool(poller.poll(seconds * 1000))


class ClientLeft(Exception):
    """The client of an event stream closed its connection."""


# How soon a stream's thread sees its client gone while it waits (FastAPI's sees it at once:
# uvicorn tells it). Each look is one poll of the connection: cheap beside a heartbeat.
LEAVING_SEEN_SECONDS = 0.25


def client_left(connection: socket.socket) -> bool:
    """Whether the client closed its end: the connection reads as ended (or failed). Bytes
    the client sent are left where they are, for the server; the stream goes on."""
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    ready = poller.poll(0)
    if not ready:
        return False
    if ready[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
        return True
    try:
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    # ValueError: a TLS socket cannot peek; its next write finds the client gone instead.
    except (BlockingIOError, ValueError):
        return False
    except OSError:
        return True


def event_source_response(
    stream: EventStream, streams: EventStreams, woken: threading.Event, environ: dict[str, Any]
) -> Response:
    """``text/event-stream`` for as long as the conversation goes on, or the client stays
    (its leaving is seen while the stream waits, or at the next write that fails)."""

    connection = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")

    def wait(seconds: float) -> None:
        # In slices, looking at the connection between them: a client gone frees its place
        # (and this thread) at once, not at the next write, up to a heartbeat away.
        until = time.monotonic() + seconds
        while not woken.wait(max(0.0, min(LEAVING_SEEN_SECONDS, until - time.monotonic()))):
            if connection is not None and client_left(connection):
                raise ClientLeft
            if time.monotonic() >= until:
                break
        woken.clear()

    def frames() -> Iterator[bytes]:
        with_write_deadline(connection, streams.limits.write)
        yield STREAM_PREAMBLE
        with contextlib.suppress(ClientLeft):
            messages = converse(stream, streams, wait)
            while True:
                try:
                    message = next(messages)
                except StopIteration as finished:
                    if finished.value is CloseReason.SERVER_STOPPING:
                        yield SERVER_STOPPING_FRAME
                    return
                yield sse_frame(message)

    response = Response(frames(), headers=EVENT_STREAM_HEADERS)
    unsubscribe = ended_with_server(stream, environ)

    def closed() -> None:
        unsubscribe()
        streams.close(stream)

    # Run by the server when it is done with the response, even one it never began to send.
    response.call_on_close(closed)
    return response


def ended_with_server(stream: EventStream, environ: dict[str, Any]) -> Callable[[], None]:
    """Have the stream end when gunicorn stops (shared/web/server_stop.py); returns what
    undoes it, for when the stream is done."""
    server_stop = server_stop_in(environ)
    return server_stop.subscribe(stream.stop) if server_stop else lambda: None


def close_socket(ws: Server, code: int, reason: str) -> None:
    """Close the socket, then the connection (``end_connection``)."""
    with contextlib.suppress(ConnectionClosed):  # simple-websocket closed it (1009, say)
        ws.close(code, reason)
    end_connection(ws)


def end_connection(ws: Server) -> None:
    """End the connection's sending side: RFC 6455 §7.1.1 has the server end the TCP
    connection first. simple-websocket leaves that to the server, which under Werkzeug first
    reads whatever the client still sends, to the end: a client waiting for the server's
    end, as RFC 6455 tells it to, then waits for ever. routes/events.py calls it on every
    way out, whoever closed the socket."""
    with contextlib.suppress(OSError):  # already gone
        ws.sock.shutdown(socket.SHUT_WR)


def check_socket_handshake() -> None:
    """A 400 for a request to the socket that asks for an upgrade without a valid RFC 6455
    handshake (version 13, a 16-byte key): flask-sock would hand it to wsproto, which
    raises, and the answer would be a 500. (uvicorn refuses it itself, before the FastAPI
    app runs.) A ``before_request`` hook of routes/events.py."""
    if request.endpoint != "api.events.account_socket":
        return
    key = request.headers.get("Sec-WebSocket-Key", "").strip(" \t")
    try:
        key_bytes = base64.b64decode(key, validate=True)
    except binascii.Error:
        key_bytes = b""
    version = request.headers.get("Sec-WebSocket-Version", "").strip(" \t")
    if version != "13" or len(key_bytes) != 16:
        raise errors.InvalidHandshake
    # No extension is taken up: the events are a few hundred bytes, nothing to compress. An
    # offer left unanswered is declined (RFC 6455 §9.1); parsed, a malformed one made
    # wsproto raise a ValueError, a 500.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def handshake_refused(_error: RemoteProtocolError) -> ResponseReturnValue:
    """What else wsproto finds wrong in a handshake (a malformed extension offer, say) is the
    same 400, not a 500: an error handler of routes/events.py, for flask-sock's handshake."""
    return domain_error(errors.InvalidHandshake())


def handshake_abandoned(error: ConnectionError) -> ResponseReturnValue:
    """A client that resets its connection before the handshake's 101 has left: nothing can
    reach it, and nothing is logged (uvicorn drops such a client silently too), or anyone
    could fill the error log at will. An error handler of routes/events.py; anywhere but at
    a socket's handshake, the error is what it was."""
    if request.endpoint != "api.events.account_socket":
        return unexpected_error(error)
    return Response(status=400)  # for the server's books: no client reads it


def check_socket_origin() -> None:
    """A 403 for a browser page of a foreign origin opening the socket, before the handshake
    (a ``before_request`` hook of routes/events.py)."""
    if request.endpoint != "api.events.account_socket":
        return
    runtime = get_runtime()
    origin = request.headers.get("Origin")
    if not socket_origin_allowed(origin, runtime.cors, runtime.settings.public_url):
        raise errors.OriginNotAllowed


def take_socket_place() -> None:
    """A 429 or 503 for a handshake when its client or this process holds all the stream
    places it may (``EventStreams.take_place``): the socket holds its place, and a thread,
    from here, before it authenticates. A ``before_request`` hook of routes/events.py,
    after the other checks; ``release_socket_place`` frees it."""
    if request.endpoint != "api.events.account_socket":
        return
    g.socket_place = get_event_streams().take_place(get_client_ip())


def release_socket_place(_error: BaseException | None) -> None:
    """Free the socket's place once its request is over, however it ended (a teardown hook
    of routes/events.py; freed already if its stream opened and closed)."""
    if (place := g.pop("socket_place", None)) is not None:
        get_event_streams().release(place)


def authenticate_socket(
    ws: Server, read_engine: Engine, tokens: TokenCodec, deadline: float
) -> tuple[TokenClaims, str | None] | None:
    """The claims of the socket's first message, and where to resume; None once the socket
    is closed for a missing, late or refused credential."""
    first = ws.receive(timeout=deadline)
    if first is None:
        close_socket(ws, POLICY_VIOLATION, "authentication timed out")
        return None
    auth = socket_auth(first)
    if auth is None:
        close_socket(ws, POLICY_VIOLATION, "the first message must be an auth message")
        return None
    try:
        claims = tokens.decode(auth.access_token, expected_type="access")
        find_principal(read_engine, claims)
    except Exception as exc:
        refuse_socket(ws, exc)
        return None
    return claims, auth.last_event_id


def refuse_socket(ws: Server, error: Exception) -> None:
    """Close the socket as an HTTP client would be refused (401 or 429: 1008; 503: 1013)."""
    if (refusal := socket_refusal(error)) is None:
        raise error
    close_socket(ws, *refusal)


def serve_socket(
    ws: Server, stream: EventStream, streams: EventStreams, environ: dict[str, Any]
) -> None:
    """The conversation over an authenticated socket, until it ends, the client leaves or
    gunicorn stops (1012, as uvicorn closes the FastAPI twin's).

    The thread waits on simple-websocket's own event, which its reader thread sets when the
    client sends or closes, and which the stream's inbox sets too (``wake=ws.event.set``).
    """

    def wait(seconds: float) -> None:
        ws.event.wait(seconds)
        ws.event.clear()
        # A client's own messages are not read: the socket has one in each direction.
        while ws.receive(timeout=0) is not None:  # raises ConnectionClosed once it left
            pass

    unsubscribe = ended_with_server(stream, environ)
    try:
        ws.send(SOCKET_READY)
        messages = converse(stream, streams, wait)
        while True:
            try:
                message = next(messages)
            except StopIteration as finished:
                reason: CloseReason = finished.value
                close_socket(ws, reason.ws_code, reason.text)
                return
            if not writable_within(ws.sock, streams.limits.write):
                end_connection(ws)  # a reader too slow to keep: no close frame would get out
                return
            ws.send(socket_message(message))
    except ConnectionClosed:
        pass  # the client left
    finally:
        unsubscribe()
        streams.close(stream)
