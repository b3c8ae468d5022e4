"""Domain errors and framework errors → the JSON bodies of the contract."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shared.cors import CorsPolicy
from shared.errors import DomainError, public_validation_errors
from shared.http import response_headers


async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.response_headers())


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 shape, minus ``input``/``ctx``: a rejected field may be a password."""
    return JSONResponse({"detail": public_validation_errors(exc.errors())}, status_code=422)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Routing and parsing errors (404, 405, 413, 400): ``{"detail": <reason>}``."""
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


async def unexpected_error(request: Request, _exc: Exception) -> JSONResponse:
    """A bug: JSON like every other answer, and nothing about the bug in it."""
    # Starlette runs this outside every middleware, so their headers are added here.
    policy: CorsPolicy = request.app.state.cors_policy
    headers = {
        **response_headers(request.url.path),
        **policy.response_headers(request.headers.get("origin")),
    }
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types handlers as taking any Exception; each of these gets only its own class.
    app.add_exception_handler(DomainError, domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected_error)
