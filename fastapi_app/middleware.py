"""What every request passes through: pure ASGI middleware (flask_app/middleware.py: hooks).

Pure ASGI, not ``BaseHTTPMiddleware``: no extra task per request, no body buffering.
"""

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.runtime import Runtime
from shared.web.bodies import BODY_METHODS, CONTENT_TOO_LARGE
from shared.web.cors import CorsPolicy, is_preflight, merged_vary
from shared.web.headers import RESPONSE_HEADERS, response_headers


def install_middleware(app: FastAPI) -> None:
    """The last added runs first: (UnexpectedError, errors.py) → Head → ResponseHeaders →
    Cors → BodyLimit → the routes."""
    runtime: Runtime = app.state.runtime  # create_app sets it first
    app.add_middleware(BodyLimitMiddleware, max_bytes=runtime.settings.max_body_bytes)
    # Outside the body limit, so a 413 to an allowed origin carries CORS headers (a browser
    # client can read it); a preflight, whose body nobody reads, is answered before it.
    app.add_middleware(CorsMiddleware, policy=runtime.cors)
    app.add_middleware(ResponseHeadersMiddleware)
    app.add_middleware(HeadMiddleware)


class ResponseHeadersMiddleware:
    """Adds ``shared.web.headers.response_headers`` to every response (Flask: after_request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in response_headers(scope["path"]).items():
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
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            await self.too_large(scope, receive, send)
            return
        if not declared and scope["method"] in BODY_METHODS:
            # A chunked body: read it now, as the Flask twin does, so that one over the limit
            # is a 413 wherever it was sent — also to a route that would never read it.
            try:
                body = await self.read_within_limit(receive)
            except ClientDisconnect:
                return  # gone before the body ended: nothing to run, no one to answer
            if body is None:
                await self.too_large(scope, receive, send)
                return
            await self.app(scope, replay(body, receive), send)
            return
        await self.app(scope, receive, send)

    async def read_within_limit(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it exceeds ``max_bytes``."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    @staticmethod
    async def too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": CONTENT_TOO_LARGE}, status_code=413)
        await response(scope, receive, send)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then whatever the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


# Set in the scope of a HEAD request that routing sees as GET: a route whose GET does more
# than answer (opens an event stream) asks ``is_head`` before doing it.
HEAD_SCOPE_KEY = "authtwin.head"


def is_head(scope: Scope) -> bool:
    return bool(scope.get(HEAD_SCOPE_KEY))


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

        await self.app({**scope, "method": "GET", HEAD_SCOPE_KEY: True}, receive, send_headers_only)


class CorsMiddleware:
    """CORS as ``shared.web.cors.CorsPolicy`` decides (Flask: answer_preflight, add_cors_headers).

    Answers an allowed preflight itself, as routing would 405 an OPTIONS; adds the policy's
    headers to every other response, errors included, so a browser client can read them.
    """

    def __init__(self, app: ASGIApp, *, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.policy.enabled:
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        origin = request_headers.get("origin")
        request_method = request_headers.get("access-control-request-method")
        preflight = is_preflight(scope["method"], request_method)
        if preflight:
            answer = self.policy.preflight_headers(
                origin, request_method, request_headers.get("access-control-request-headers")
            )
            if answer is not None:
                # RESPONSE_HEADERS here too, whichever way the middleware stack is ordered.
                response = Response(status_code=204, headers={**RESPONSE_HEADERS, **answer})
                await response(scope, receive, send)
                return
        cors_headers = self.policy.response_headers(origin, preflight=preflight)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in cors_headers.items():
                    headers[name] = (
                        merged_vary(headers.get(name), value) if name == "Vary" else value
                    )
            await send(message)

        await self.app(scope, receive, send_with_cors)
