"""How an account event is written on the wire: a server-sent event (the HTML Living
Standard's ``text/event-stream``) or a WebSocket JSON message; both twins write these bytes.
Also who may open a socket (``socket_origin_allowed``) and what its first message must be.
"""

import json
from urllib.parse import urlsplit

from pydantic import ValidationError

from shared.domain import errors
from shared.domain.events import AccountEvent
from shared.domain.schemas import SocketAuth, StreamEvent
from shared.services.event_streams import Heartbeat
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

SOCKET_READY = json.dumps({"type": "ready"})
SOCKET_HEARTBEAT = json.dumps({"type": "heartbeat"})
# RFC 6455 §7.4.1: what the socket closes with when the first message is not a credential.
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
# Large enough for an access token (4 KiB at most, as in an Authorization header) in its
# JSON; nothing else is read from a client.
MAX_SOCKET_MESSAGE_BYTES = 8192


def sse_frame(message: AccountEvent | Heartbeat) -> bytes:
    if isinstance(message, Heartbeat):
        return HEARTBEAT_FRAME
    # token.expired is no published event (id 0): without an id line, a reconnecting
    # client still resumes from the last event it was really sent.
    id_line = f"id: {message.id}\n" if message.id else ""
    data = json.dumps(message.data, separators=(",", ":"))
    return f"{id_line}event: {message.type}\ndata: {data}\n\n".encode()


def socket_message(message: AccountEvent | Heartbeat) -> str:
    if isinstance(message, Heartbeat):
        return SOCKET_HEARTBEAT
    event = StreamEvent(
        id=str(message.id) if message.id else None, event=message.type, data=message.data
    )
    return event.model_dump_json()


def socket_auth(message: str | bytes | None) -> SocketAuth | None:
    """The first message, if it is an ``auth`` one; anything else closes the socket."""
    if not isinstance(message, str):
        return None
    try:
        return SocketAuth.model_validate_json(message)
    except ValidationError:
        return None


def socket_refusal(error: Exception) -> tuple[int, str] | None:
    """The close code and reason for a socket whose credential or stream was refused, as an
    HTTP client would be answered 401, 429 or 503; None for an error that is a bug."""
    refusal = error if isinstance(error, errors.DomainError) else errors.outage_error(error)
    if refusal is None:
        return None
    code = TRY_AGAIN_LATER if refusal.status_code == 503 else POLICY_VIOLATION
    return code, refusal.detail


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
