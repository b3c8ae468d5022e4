"""Account events: ``GET /users/me/events`` (server-sent events) and ``/ws`` (a WebSocket).

Both carry one user's events until the credential that opened them ends (services/
event_streams.py decides what is sent and when; streams.py carries it out on the loop).
"""

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, WebSocket, status

from fastapi_app.deps import (
    AccessClaims,
    ClientIP,
    CurrentUser,
    EventStreamsDep,
    ReaderDep,
    RuntimeDep,
)
from fastapi_app.middleware import is_head
from fastapi_app.openapi import error_responses
from fastapi_app.streams import (
    EventSourceResponse,
    authenticate_socket,
    check_socket_origin,
    open_stream,
    refuse_socket,
    serve_socket,
    take_socket_place,
)
from shared.domain import errors
from shared.web.event_frames import EVENT_STREAM_HEADERS

router = APIRouter(tags=["events"])
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


@router.get(
    "/users/me/events",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **error_responses(401, 429, 503),
    },
)
async def account_events(
    request: Request,
    claims: AccessClaims,
    _user: CurrentUser,
    streams: EventStreamsDep,
    client_ip: ClientIP,
    last_event_id: LastEventId = None,
) -> Response:
    """The caller's account events, as server-sent events, until the token that opened the
    stream ends: each has an ``id``, an ``event`` (``session.revoked``, ``sessions.revoked``,
    ``user.updated``, ``token.expired``) and JSON ``data``; a comment line is a heartbeat.
    A server that stops ends the stream with ``server.stopping`` (no ``id``): reconnect.
    ``Last-Event-ID`` resumes after an event still held. Browsers: ``EventSource`` cannot
    send the Authorization header; read the stream with ``fetch``, or use ``/ws``."""
    if is_head(request.scope):  # what a stream would start with, and no stream
        return Response(headers=EVENT_STREAM_HEADERS)
    place = streams.take_place(client_ip)
    stream, waker = await open_stream(streams, claims, last_event_id, place)
    return EventSourceResponse(stream, streams, waker)


@router.get(
    "/ws",
    status_code=status.HTTP_426_UPGRADE_REQUIRED,
    response_model=None,
    responses=error_responses(426),
)
async def account_socket_without_upgrade() -> None:
    """The same events over a WebSocket; a request that is not a WebSocket handshake gets
    426. The first message must be ``{"type": "auth", "access_token": "...",
    "last_event_id": "..."}`` (the last optional) within a few seconds, else the socket
    closes with 1008. Then the server sends ``{"type": "ready"}``, each event as
    ``{"type": "event", "id", "event", "data"}``, and ``{"type": "heartbeat"}``; it closes
    with 1008 when the credential ends, 1001 at the stream's idle or lifetime limit, 1012
    when the server stops, and 1013 when it cannot check the credential. A browser's Origin
    must be this service's or one CORS allows. A socket counts as a stream from its
    handshake on: past this process's streams the handshake gets 503, past the client
    address's share 429."""
    raise errors.UpgradeRequired


@router.websocket("/ws")
async def account_socket(
    websocket: WebSocket,
    runtime: RuntimeDep,
    reader: ReaderDep,
    streams: EventStreamsDep,
    client_ip: ClientIP,
) -> None:
    if not await check_socket_origin(websocket, runtime):
        return
    if (place := await take_socket_place(websocket, streams, client_ip)) is None:
        return
    try:
        await websocket.accept()
        authenticated = await authenticate_socket(
            websocket, reader, runtime.tokens, runtime.settings.events_auth_seconds
        )
        if authenticated is None:
            return
        claims, last_event_id = authenticated
        try:
            stream, waker = await open_stream(streams, claims, last_event_id, place)
        except Exception as exc:  # too many, not now, or the credential ended meanwhile
            await refuse_socket(websocket, exc)
            return
        await serve_socket(websocket, stream, streams, waker)
    finally:
        streams.release(place)  # freed already if its stream opened
