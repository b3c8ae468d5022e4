"""Domain errors: each names its HTTP status, message and headers in one place.

Services raise these; each app has one handler that renders ``error.body()`` with
``error.status_code`` and ``error.response_headers()``, so the twins cannot disagree about an error.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from shared.infrastructure.outages import is_database_outage

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
INVALID_TOKEN_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class DomainError(Exception):
    status_code: ClassVar[int] = 400
    detail: ClassVar[str] = "Bad request"
    headers: ClassVar[Mapping[str, str]] = {}

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}

    def response_headers(self) -> dict[str, str]:
        return dict(self.headers)


class NotAuthenticated(DomainError):
    status_code, detail, headers = 401, "Not authenticated", BEARER_CHALLENGE


class InvalidCredentials(DomainError):
    status_code, detail, headers = 401, "Incorrect email or password", BEARER_CHALLENGE


class InvalidToken(DomainError):
    status_code, detail, headers = 401, "Invalid or expired token", INVALID_TOKEN_CHALLENGE


class IncorrectPassword(DomainError):
    status_code, detail = 400, "Incorrect password"


class InactiveUser(DomainError):
    status_code, detail = 403, "Inactive user"


class OriginNotAllowed(DomainError):
    """A browser page of an origin neither this service's nor CORS-allowed opening /ws."""

    status_code, detail = 403, "Origin not allowed"


class PermissionDenied(DomainError):
    status_code, detail = 403, "Not enough privileges"


class LastSuperuser(DomainError):
    status_code, detail = 403, "The last active superuser cannot be removed or demoted"


class CannotDeleteSelf(DomainError):
    status_code, detail = 403, "Superusers cannot delete themselves here; use DELETE /users/me"


class CannotChangeOwnCredentialsHere(DomainError):
    status_code = 403
    detail = (
        "Superusers cannot change their own email, password or verification here; use /users/me"
    )


class UserNotFound(DomainError):
    status_code, detail = 404, "User not found"


class EmailNotVerified(DomainError):
    """Login refused until the address is proved (AUTHTWIN_REQUIRE_VERIFIED_LOGIN), told only
    to someone who gave the right password."""

    status_code, detail = 403, "Email address not verified; follow the link mailed to it"


class InvalidOneTimeToken(DomainError):
    """A reset or verification token that is unknown, expired, used or superseded: one
    answer for all, so a guess learns nothing about which."""

    status_code, detail = 400, "Invalid, expired or already used token"


class AlreadyVerified(DomainError):
    status_code, detail = 409, "Email address already verified"


class EmailTaken(DomainError):
    status_code, detail = 409, "A user with this email already exists"


class UpgradeRequired(DomainError):
    """A plain request to the WebSocket's address (RFC 9110 §15.5.22 wants Upgrade named)."""

    status_code, detail, headers = 426, "Upgrade Required", {"Upgrade": "websocket"}


class InvalidHandshake(DomainError):
    """An upgrade to the WebSocket without RFC 6455's handshake (version 13, a key)."""

    status_code, detail = 400, "Invalid WebSocket handshake"


class BodyParseError(DomainError):
    """A body that is not even text (bad UTF-8) or nests too deep: FastAPI's words for it."""

    status_code, detail = 400, "There was an error parsing the body"


class UnsupportedMediaType(DomainError):
    status_code, detail = 415, "Content-Type must be application/json"


# RFC 9110 §10.2.3: when a 503 may end. An outage's end is unknown: this is when a client
# (or a load balancer's probe) should look again, without hammering a server that restarts.
OUTAGE_RETRY_AFTER = {"Retry-After": "5"}


class DatabaseUnavailable(DomainError):
    """The database is down, unreachable, frozen or timing out (infrastructure/outages.py)."""

    status_code, detail, headers = 503, "Database unavailable", OUTAGE_RETRY_AFTER


class ThrottleUnavailable(DomainError):
    """The rate-limit store (Redis) is down: refuse, rather than let guessing run unlimited."""

    status_code, detail, headers = 503, "Rate limiter unavailable", OUTAGE_RETRY_AFTER


class EventsUnavailable(DomainError):
    """The store that shares event streams between processes (Redis) is down: a stream
    opened now could not be counted against its user's cap, nor hear other processes."""

    status_code, detail, headers = 503, "Event streams unavailable", OUTAGE_RETRY_AFTER


class StreamCapacityReached(DomainError):
    """This process holds as many streams as it may (``events_max_streams``): another
    process, or this one a little later, can take the stream."""

    status_code, detail, headers = 503, "Too many open event streams here", OUTAGE_RETRY_AFTER


def outage_error(error: BaseException) -> DomainError | None:
    """The answer to an unexpected exception that is a dependency outage, else None (a bug).

    Both twins' last-resort handlers ask this first, so an outage is a 503 on every route
    without any route or service catching database errors itself.
    """
    return DatabaseUnavailable() if is_database_outage(error) else None


class TooManyRequests(DomainError):
    """429 with ``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3): a lockout or a rate limit."""

    status_code, detail = 429, "Too many requests; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(self.detail)
        self.retry_after = retry_after

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class OAuthError(DomainError):
    """RFC 6749 §5.2 error for the token endpoint: ``{"error", "error_description"}``."""

    status_code = 400

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


class RequestValidationFailed(DomainError):
    """422 in FastAPI's shape, for validation the Flask twin does by hand."""

    status_code = 422

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = public_validation_errors(errors)

    def body(self) -> dict[str, Any]:
        return {"detail": self.errors}


def public_validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep ``type``, ``loc`` and ``msg`` of each error; drop ``input`` and ``ctx``.

    pydantic echoes the rejected input, and a rejected input may be a password.
    """
    return [
        {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]} for error in errors
    ]


def located(errors: Iterable[Mapping[str, Any]], *prefix: str) -> list[dict[str, Any]]:
    """pydantic errors of one request part, located the way FastAPI does (``["body", ...]``)."""
    return [{**error, "loc": [*prefix, *error["loc"]]} for error in errors]


class TooManyClientStreams(TooManyRequests):
    """The client's address holds ``events_max_streams_per_client`` of this process's stream
    places (streams, and sockets not yet authenticated): one client cannot take them all."""

    detail = "Too many open event streams from this address"


class TooManyStreams(TooManyRequests):
    """The user holds ``events_max_streams_per_user`` streams already: close one first."""

    detail = "Too many open event streams for this user"
