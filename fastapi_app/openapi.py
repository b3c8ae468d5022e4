"""What each route may answer besides success, declared for the OpenAPI document.

FastAPI documents a route's success and, for routes with parameters, its 422; every other
answer a client must handle is declared here, once, and named by status on each route.
"""

from typing import Any

from shared.domain.schemas import ErrorResponse, OAuthErrorResponse

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'Bearer, or Bearer error="invalid_token" when a token was refused',
        "schema": {"type": "string"},
    }
}
_ERRORS: dict[int, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "A body that is not UTF-8 or nests too deep; or a wrong current password",
    },
    401: {
        "model": ErrorResponse,
        "description": "Missing, invalid, expired or revoked credentials",
        "headers": _WWW_AUTHENTICATE,
    },
    403: {"model": ErrorResponse, "description": "Not allowed for this account"},
    404: {"model": ErrorResponse, "description": "No such user"},
    409: {"model": ErrorResponse, "description": "A user with this email already exists"},
    413: {"model": ErrorResponse, "description": "Body over the size limit"},
    415: {"model": ErrorResponse, "description": "Body not declared as JSON"},
    429: {
        "model": ErrorResponse,
        "description": "Locked account or too many requests from this address",
        "headers": _RETRY_AFTER,
    },
    426: {
        "model": ErrorResponse,
        "description": "Not a WebSocket handshake",
        "headers": {"Upgrade": {"description": "websocket", "schema": {"type": "string"}}},
    },
    503: {
        "model": ErrorResponse,
        "description": (
            "Database or rate limiter (Redis) unavailable, or for streams this server's capacity"
        ),
        "headers": _RETRY_AFTER,
    },
}
# The token endpoint's 400 is RFC 6749 §5.2's body, not ``{"detail"}``.
OAUTH_ERROR: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorResponse, "description": "RFC 6749 §5.2 error"}
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer with these statuses."""
    return {status: _ERRORS[status] for status in statuses}


# A JSON body can always be unparseable, too large or of the wrong type.
JSON_BODY_ERRORS = (400, 413, 415)
