"""What every request passes through: request and response hooks (fastapi_app/middleware.py:
pure ASGI middleware)."""

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from flask_app.deps import get_runtime
from shared.runtime import Runtime
from shared.web.bodies import BODY_METHODS
from shared.web.cors import CorsPolicy, is_preflight, merged_vary
from shared.web.headers import response_headers


def add_response_headers(response: Response) -> Response:
    """Adds ``shared.web.headers.response_headers`` to every response (FastAPI:
    ``ResponseHeadersMiddleware``)."""
    for name, value in response_headers(request.path).items():
        response.headers.setdefault(name, value)
    return response


def reject_oversized_body() -> None:
    """413 for a declared Content-Length over the limit, before routing, as FastAPI's
    ``BodyLimitMiddleware`` does; Werkzeug alone would object only when a body is read."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge
    if request.content_length is None and request.method in BODY_METHODS:
        # A chunked body: Werkzeug cuts it off at the limit without a word. Read it (cached
        # for the JSON and form parsers); if it reached the limit, a byte more on the wire
        # means it was cut short. (Werkzeug's own stream would 413 a body of exactly the limit.)
        try:
            body = request.get_data(cache=True)
            cut_short = len(body) >= limit and request.environ["wsgi.input"].read(1)
        except Exception:  # only the server's input stream runs in here
            # The server could not decode the chunked framing, and raised its own parse
            # error from inside this read (gunicorn: InvalidChunkSize; WSGI names no class
            # for it). A broken request, answered 400 as uvicorn answers it, not a bug.
            raise BadRequest from None
        if cut_short:
            raise RequestEntityTooLarge


def cors_policy() -> CorsPolicy:
    return get_runtime().cors


def answer_preflight() -> Response | None:
    """A 204 for an allowed CORS preflight, as FastAPI's ``CorsMiddleware`` answers it.

    Returning None lets the OPTIONS go on to routing, which 405s it as any OPTIONS
    (``PROVIDE_AUTOMATIC_OPTIONS`` stays off: a refused preflight gets no CORS headers).
    """
    request_method = request.headers.get("Access-Control-Request-Method")
    if not is_preflight(request.method, request_method) or not cors_policy().enabled:
        return None
    headers = cors_policy().preflight_headers(
        request.headers.get("Origin"),
        request_method,
        request.headers.get("Access-Control-Request-Headers"),
    )
    if headers is None:
        return None
    response = Response(status=204, headers=headers)
    # Werkzeug gives every response a text/html type; Starlette gives a bodiless 204 none.
    del response.headers["Content-Type"]
    return response


def add_cors_headers(response: Response) -> Response:
    """The policy's headers on every response (for a preflight, answered or not, only Vary)."""
    preflight = is_preflight(request.method, request.headers.get("Access-Control-Request-Method"))
    origin = request.headers.get("Origin")
    for name, value in cors_policy().response_headers(origin, preflight=preflight).items():
        if name == "Vary":
            value = merged_vary(response.headers.get(name), value)
        response.headers[name] = value
    return response


def install_middleware(app: Flask) -> None:
    """``before_request`` hooks run in the order added, ``after_request`` ones in reverse."""
    runtime: Runtime = app.extensions["authtwin"]  # create_app registers it first
    # Werkzeug enforces it wherever a body is read; reject_oversized_body answers up front.
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    # Preflight first: it reads no body, so there is nothing for the size limit to guard,
    # and FastAPI's CorsMiddleware sits outside its BodyLimitMiddleware.
    app.before_request(answer_preflight)
    app.before_request(reject_oversized_body)
    app.after_request(add_response_headers)
    app.after_request(add_cors_headers)
