"""Response headers every response carries (FastAPI: ``ResponseHeadersMiddleware``).

The body size limit needs no code here: Werkzeug enforces ``MAX_CONTENT_LENGTH``.
"""

from flask import Flask, Response

from shared.http import RESPONSE_HEADERS


def add_response_headers(response: Response) -> Response:
    for name, value in RESPONSE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def install_middleware(app: Flask) -> None:
    app.after_request(add_response_headers)
