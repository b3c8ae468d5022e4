"""Domain errors, framework errors and bugs → the JSON bodies of the contract, as FastAPI
renders them."""

from http import HTTPStatus

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from shared.domain.errors import DomainError, outage_error
from shared.infrastructure.logs import log_unexpected_error
from shared.infrastructure.outages import log_outage
from shared.web.bodies import CONTENT_TOO_LARGE


def domain_error(exc: DomainError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(exc.body()), exc.status_code, exc.response_headers()


def http_error(exc: HTTPException) -> WerkzeugResponse:
    """Werkzeug's HTML error pages (404, 405, 413) become ``{"detail": <reason phrase>}``."""
    response = exc.get_response()  # keeps headers such as 405's Allow
    status = exc.code or 500
    detail = CONTENT_TOO_LARGE if status == 413 else HTTPStatus(status).phrase
    response.set_data(jsonify(detail=detail).get_data())
    if "Allow" in response.headers:  # one order on both twins
        methods = response.headers["Allow"].split(", ")
        response.headers["Allow"] = ", ".join(sorted(methods))
    response.content_type = "application/json"
    return response


def unexpected_error(exc: Exception) -> tuple[Response, int, dict[str, str]]:
    """A dependency outage: one warning line and its 503. Anything else is a bug: logged
    once with its traceback, answered with a bare JSON 500. The after_request hooks still
    add their headers (FastAPI: ``UnexpectedErrorMiddleware``, which adds them itself)."""
    if (outage := outage_error(exc)) is not None:
        log_outage(exc)
        return domain_error(outage)
    log_unexpected_error(exc)
    return jsonify(detail="Internal Server Error"), 500, {}


def install_error_handlers(app: Flask) -> None:
    """Order does not matter here: Flask picks the handler of the nearest class in the error's
    MRO (a 422 is ``RequestValidationFailed``, a ``DomainError``)."""
    app.register_error_handler(DomainError, domain_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
