"""Pure ASGI middleware (no ``BaseHTTPMiddleware``: no extra task, no body buffering)."""

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http import CONTENT_TOO_LARGE, RESPONSE_HEADERS


class ResponseHeadersMiddleware:
    """Adds ``shared.http.RESPONSE_HEADERS`` to every response (Flask: an after_request hook)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in RESPONSE_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes`` — declared or streamed (Flask: MAX_CONTENT_LENGTH).

    FastAPI's own ``max_body_size`` answers a too-large Content-Length in plain text; the
    contract wants the JSON error body for every error, so this does the same job in JSON.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": CONTENT_TOO_LARGE}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # An HTTPException passes through FastAPI's body reading to our handler.
                raise HTTPException(status_code=413, detail=CONTENT_TOO_LARGE)
            return message

        await self.app(scope, receive_within_limit, send)


class HeadMiddleware:
    """Answers HEAD like GET, without the body (RFC 9110 §9.3.2; Werkzeug does this by itself).

    FastAPI routes declare GET alone, and a HEAD request would otherwise be a 405.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
