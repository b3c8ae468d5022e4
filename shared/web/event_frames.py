"""How an account event is written on the wire: a server-sent event (the HTML Living
Standard's ``text/event-stream``) or a WebSocket JSON message; both twins write these bytes.
Also who may open a socket (``socket_origin_allowed``).
"""

import json
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from shared.web.cors import CorsPolicy

EVENT_STREAM = "text/event-stream; charset=utf-8"
# No caching or transforming by anything on the way, and no buffering by nginx
# (X-Accel-Buffering), which would hold events back until a buffer fills.
EVENT_STREAM_HEADERS = {
    "Content-Type": EVENT_STREAM,
    "Cache-Control": "no-store, no-transform",
    "X-Accel-Buffering": "no",
}
# First thing on the stream: how long an EventSource waits before reconnecting, in ms.
# Written at once, so the client (and any proxy) sees the stream has started.
STREAM_PREAMBLE = b"retry: 3000\n\n"
HEARTBEAT_FRAME = b": heartbeat\n\n"
# The last word of a stream its server ends as it stops, as a socket gets 1012: the client
# reconnects (an EventSource does by itself, after ``retry``) to a server not stopping.
SERVER_STOPPING_FRAME = b"event: server.stopping\ndata: {}\n\n"

SOCKET_READY = json.dumps({"type": "ready"})
SOCKET_HEARTBEAT = json.dumps({"type": "heartbeat"})
# RFC 6455 §7.4.1: a credential missing, refused or ended (also too many streams).
POLICY_VIOLATION = 1008
# RFC 6455 §7.4.1 (IANA registry): the server cannot take the socket now.
TRY_AGAIN_LATER = 1013
# Large enough for an access token (4 KiB at most, as in an Authorization header) in its
# JSON; nothing else is read from a client.
MAX_SOCKET_MESSAGE_BYTES = 8192


class WireEvent(Protocol):
    """What is written of an event (shared.domain.events.AccountEvent)."""

    @property
    def id(self) -> int: ...

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Mapping[str, object]: ...


def sse_frame(event: WireEvent | None) -> bytes:
    """An event's lines, or a heartbeat's comment for None."""
    if event is None:
        return HEARTBEAT_FRAME
    # token.expired is no published event (id 0): without an id line, a reconnecting
    # client still resumes from the last event it was really sent.
    id_line = f"id: {event.id}\n" if event.id else ""
    data = json.dumps(dict(event.data), separators=(",", ":"))
    return f"{id_line}event: {event.type}\ndata: {data}\n\n".encode()


def socket_message(event: WireEvent | None) -> str:
    """An event as ``{"type": "event", "id", "event", "data"}``, or a heartbeat for None."""
    if event is None:
        return SOCKET_HEARTBEAT
    message = {
        "type": "event",
        "id": str(event.id) if event.id else None,
        "event": event.type,
        "data": dict(event.data),
    }
    return json.dumps(message, separators=(",", ":"))


def socket_origin_allowed(origin: str | None, cors: CorsPolicy, public_url: str) -> bool:
    """A browser's socket from this service's own pages or an origin CORS allows; a
    client that is no browser sends no Origin, and is let in: its credential is checked
    all the same. (No cookie authenticates a socket here, so a page of another origin
    could only use a token it holds; the check keeps such pages off all the same, as
    CORS keeps them off the rest of the API.)"""
    if origin is None:
        return True
    own = urlsplit(public_url)
    return origin == f"{own.scheme}://{own.netloc}" or cors.allows(origin)
