"""Domain errors, framework errors and bugs → the JSON bodies of the contract
(flask_app/errors.py: Flask's error handlers)."""

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.domain.errors import DomainError, outage_error, public_validation_errors
from shared.infrastructure.logs import log_unexpected_error
from shared.infrastructure.outages import log_outage
from shared.runtime import Runtime
from shared.web.cors import CorsPolicy
from shared.web.headers import response_headers


async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.response_headers())


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 shape, minus ``input``/``ctx``: a rejected field may be a password."""
    return JSONResponse({"detail": public_validation_errors(exc.errors())}, status_code=422)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Routing and parsing errors (404, 405, 400): ``{"detail": <reason>}``."""
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method the path accepts (RFC 9110 §15.5.6).

    Starlette's Allow names only the first route that matched the path, and ``/users/me``
    is three routes (GET, PATCH, DELETE); Werkzeug names all of them, and so do we.
    """
    methods = [
        method
        for method in ("DELETE", "GET", "PATCH", "POST", "PUT")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return sorted([*methods, "HEAD"] if "GET" in methods else methods)  # see HeadMiddleware


class UnexpectedErrorMiddleware:
    """A bug: logged once, answered with a bare JSON 500 — as the Flask twin's handler does.
    A dependency outage (``outage_error``) is not a bug: a 503 and one warning line.

    Not ``add_exception_handler(Exception, ...)``: Starlette runs that handler outside every
    middleware too, but then re-raises the error to the server, which logs it a second time,
    as plain text. Outermost, this catches a bug anywhere, in the middleware as in a route,
    and so adds the security and CORS headers itself: the middleware that adds them to every
    other answer is behind it. (Flask's handler answers before the ``after_request`` hooks,
    which add them there.)
    """

    def __init__(self, app: ASGIApp, *, cors: CorsPolicy) -> None:
        self.app = app
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch_start)
        except ClientDisconnect:
            return  # the client left mid-body: no one to answer, and no bug to log
        except Exception as exc:
            # A dependency outage: one warning line and its 503, as flask_app/errors.py does.
            if (outage := outage_error(exc)) is not None:
                log_outage(exc)
                answer = JSONResponse(outage.body(), outage.status_code, outage.response_headers())
            else:
                log_unexpected_error(exc)
                answer = JSONResponse({"detail": "Internal Server Error"}, 500)
            # Once an answer has started, the server ends it by closing the connection;
            # raising would only have the server log the bug a second time.
            if not started:
                await self.answer(answer, scope, receive, send)

    async def answer(
        self, response: JSONResponse, scope: Scope, receive: Receive, send: Send
    ) -> None:
        origin = Headers(scope=scope).get("origin")
        response.headers.update(
            {**response_headers(scope["path"]), **self.cors.response_headers(origin)}
        )
        await response(scope, receive, send)


def with_socket_not_found(http_not_found: ASGIApp) -> ASGIApp:
    """A WebSocket handshake to no route gets the contract's JSON 404, as from the Flask twin
    (Starlette closes it unaccepted, which uvicorn answers with a bare 403)."""

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await http_not_found(scope, receive, send)
            return
        refused = JSONResponse({"detail": "Not Found"}, status_code=404)
        await WebSocket(scope, receive, send).send_denial_response(refused)

    return not_found


def install_error_handlers(app: FastAPI) -> None:
    """After ``install_middleware``: the middleware added last runs first, around the rest."""
    runtime: Runtime = app.state.runtime  # create_app sets it first
    # Starlette types handlers as taking any Exception; each of these gets only its own class.
    app.add_exception_handler(DomainError, domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.router.default = with_socket_not_found(app.router.default)
    app.add_middleware(UnexpectedErrorMiddleware, cors=runtime.cors)
