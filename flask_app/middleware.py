"""Request and response hooks every request passes (FastAPI: ``middleware.py``)."""

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from shared.http import BODY_METHODS, RESPONSE_HEADERS


def add_response_headers(response: Response) -> Response:
    for name, value in RESPONSE_HEADERS.items():
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
        # for the JSON and form parsers); one more read raises 413 if it was cut short.
        request.get_data(cache=True)
        request.stream.read(1)


def install_middleware(app: Flask) -> None:
    app.before_request(reject_oversized_body)
    app.after_request(add_response_headers)
