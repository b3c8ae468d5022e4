"""The FastAPI twin drives an ``EventStream`` (services/event_streams.py) with awaits: each
stream is a coroutine on the event loop, waiting on an ``asyncio.Event`` that the inbox sets
from whichever thread delivers an event. No thread is held while a stream waits; only the
credential checks (a database read, a Redis renewal) go to the threadpool, one per heartbeat.

flask_app/streams.py drives the same conversation with a thread per stream.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import anyio
from fastapi import WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect, WebSocketState

from fastapi_app.readers import Reader
from shared.domain import errors
from shared.domain.events import AccountEvent
from shared.runtime import Runtime
from shared.security.tokens import TokenClaims, TokenCodec
from shared.services.event_streams import (
    Check,
    Close,
    CloseReason,
    EventStream,
    EventStreams,
    Place,
    Wait,
    socket_auth,
    socket_refusal,
)
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

Writer = Callable[[AccountEvent | None], Awaitable[None]]


class Waker:
    """The inbox's ``wake``, callable from any thread, for a stream on this loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def __call__(self) -> None:
        # The loop may have closed under a stream still subscribed (shutdown): nothing to wake.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.event.set)

    async def wait(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self.event.wait()
        self.event.clear()


async def open_stream(
    streams: EventStreams, claims: TokenClaims, last_event_id: str | None, place: Place
) -> tuple[EventStream, Waker]:
    waker = Waker()
    stream = await run_in_threadpool(
        streams.open, claims, place=place, last_event_id=last_event_id, wake=waker
    )
    return stream, waker


async def converse(
    stream: EventStream, streams: EventStreams, waker: Waker, write: Writer
) -> CloseReason:
    """Carry out the stream's conversation; the reason it ended."""
    conversation = stream.conversation()
    step = next(conversation)
    while True:
        answer: bool | None = None
        if isinstance(step, Close):
            return step.reason
        if isinstance(step, Wait):
            await waker.wait(step.seconds)
        elif isinstance(step, Check):
            answer = await run_in_threadpool(streams.check, stream)
        else:
            try:
                with anyio.fail_after(streams.limits.write):
                    await write(step.event)
            except TimeoutError:
                return CloseReason.SLOW_READER
        step = conversation.send(answer)


class EventSourceResponse(Response):
    """``text/event-stream`` for as long as the conversation goes on, or the client stays.

    Not Starlette's ``StreamingResponse``: its writes have no deadline, so a client that
    stops reading would hold its stream for ever.
    """

    def __init__(self, stream: EventStream, streams: EventStreams, waker: Waker) -> None:
        super().__init__(headers=EVENT_STREAM_HEADERS)
        # Response counts the empty body it was given; a stream has no length.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.stream, self.streams, self.waker = stream, streams, waker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server_stop = server_stop_in(scope.get("extensions"))
        unsubscribe = server_stop.subscribe(self.stream.stop) if server_stop else None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": STREAM_PREAMBLE, "more_body": True})

            async def write(message: AccountEvent | None) -> None:
                await send(
                    {"type": "http.response.body", "body": sse_frame(message), "more_body": True}
                )

            async with anyio.create_task_group() as group:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(until_disconnect)
                reason = await converse(self.stream, self.streams, self.waker, write)
                last_word = SERVER_STOPPING_FRAME if reason is CloseReason.SERVER_STOPPING else b""
                await send({"type": "http.response.body", "body": last_word, "more_body": False})
                group.cancel_scope.cancel()
        finally:
            if unsubscribe is not None:
                unsubscribe()
            await run_in_threadpool(self.streams.close, self.stream)


async def authenticate_socket(
    websocket: WebSocket, reader: Reader, tokens: TokenCodec, deadline: float
) -> tuple[TokenClaims, str | None] | None:
    """The claims of the socket's first message, and where to resume; None once the socket
    is closed for a missing, late or refused credential."""
    try:
        with anyio.fail_after(deadline):
            first = await websocket.receive()
    except TimeoutError:
        await websocket.close(POLICY_VIOLATION, "authentication timed out")
        return None
    if first["type"] == "websocket.disconnect":
        return None  # gone before it said anything: nothing to close
    auth = socket_auth(first.get("text"))
    if auth is None:
        await websocket.close(POLICY_VIOLATION, "the first message must be an auth message")
        return None
    try:
        claims = tokens.decode(auth.access_token, expected_type="access")
        await reader.principal(claims)
    except Exception as exc:
        await refuse_socket(websocket, exc)
        return None
    return claims, auth.last_event_id


async def refuse_socket(websocket: WebSocket, error: Exception) -> None:
    """Close the socket as an HTTP client would be refused (401 or 429: 1008; 503: 1013)."""
    if (refusal := socket_refusal(error)) is None:
        raise error
    await websocket.close(*refusal)


async def serve_socket(
    websocket: WebSocket, stream: EventStream, streams: EventStreams, waker: Waker
) -> None:
    """The conversation over an authenticated socket, until it ends or the client leaves.
    It does not listen for the server's stop (``ServerStop``), as the event stream does:
    uvicorn closes every open socket with 1012 itself as it stops, and the client's leaving
    then ends the conversation."""
    try:
        await websocket.send_text(SOCKET_READY)

        async def write(message: AccountEvent | None) -> None:
            await websocket.send_text(socket_message(message))

        async with anyio.create_task_group() as group:

            async def until_disconnect() -> None:
                # A client's own messages are not read: the socket has one in each direction.
                with contextlib.suppress(WebSocketDisconnect):
                    while (await websocket.receive())["type"] != "websocket.disconnect":
                        pass
                group.cancel_scope.cancel()

            group.start_soon(until_disconnect)
            reason = await converse(stream, streams, waker, write)
            if websocket.client_state == WebSocketState.CONNECTED:
                await websocket.close(reason.ws_code, reason.text)
            group.cancel_scope.cancel()
    finally:
        await run_in_threadpool(streams.close, stream)


async def take_socket_place(
    websocket: WebSocket, streams: EventStreams, client: str
) -> Place | None:
    """A place for the socket (``EventStreams.take_place``), held before it authenticates;
    if none, the handshake is refused with the contract's JSON 429 or 503, as the Flask twin
    refuses it, before any socket exists."""
    try:
        return streams.take_place(client)
    except errors.DomainError as refused:
        answer = JSONResponse(refused.body(), refused.status_code, refused.response_headers())
        await websocket.send_denial_response(answer)
        return None


async def check_socket_origin(websocket: WebSocket, runtime: Runtime) -> bool:
    """Whether the socket's Origin may open it; if not, the handshake is refused with the
    contract's JSON 403 (the ASGI denial response extension), before any socket exists."""
    origin = websocket.headers.get("origin")
    if socket_origin_allowed(origin, runtime.cors, runtime.settings.public_url):
        return True
    refused = errors.OriginNotAllowed()
    await websocket.send_denial_response(JSONResponse(refused.body(), refused.status_code))
    return False
