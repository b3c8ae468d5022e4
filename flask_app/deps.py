"""What routes need, the Flask way: the same names as fastapi_app/deps.py, called by the route.

FastAPI injects these as parameters and solves each once per request; here a route calls
them, and the per-request ones keep their result on ``g`` so a second call costs nothing.
App-wide things (the runtime, the services) come from ``current_app``.
"""

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app, g, request
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.schemas import UserPublic
from shared.infrastructure.config import Settings
from shared.infrastructure.logs import log_unexpected_error
from shared.runtime import Runtime
from shared.security.throttle import Operation
from shared.security.tokens import TokenClaims
from shared.services.admin import AdminService
from shared.services.auth import AuthService
from shared.services.event_streams import EventStreams
from shared.services.identity import find_principal
from shared.services.mail_pool import MailPool
from shared.services.recovery import RecoveryService
from shared.services.users import UserService
from shared.web.bodies import is_json_media_type
from shared.web.client_ip import client_ip
from shared.web.headers import MAX_AUTHORIZATION_BYTES, bearer_token_in

P = ParamSpec("P")
R = TypeVar("R")


def get_runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["authtwin"]
    return runtime


def get_settings() -> Settings:
    return get_runtime().settings


def get_session() -> Session:
    """One session per request, closed at teardown (``close_session``)."""
    if "session" not in g:
        g.session = get_runtime().sessions()
    session: Session = g.session
    return session


def close_session(_exc: BaseException | None) -> None:
    """What the end of FastAPI's ``get_session`` generator does; a teardown hook here."""
    session = g.pop("session", None)
    if session is not None:
        try:
            session.close()
        except Exception as exc:  # the answer is made: a bug here is logged, not raised
            log_unexpected_error(exc)


def get_client_ip() -> str:
    if "client_ip" not in g:
        forwarded = request.headers.getlist("X-Forwarded-For")
        g.client_ip = client_ip(request.remote_addr, forwarded, get_settings().trusted_proxies)
    address: str = g.client_ip
    return address


def get_auth_service() -> AuthService:
    return get_runtime().auth


def get_user_service() -> UserService:
    return get_runtime().users


def get_admin_service() -> AdminService:
    return get_runtime().admins


def get_recovery_service() -> RecoveryService:
    return get_runtime().recovery


def get_mail_pool() -> MailPool:
    return get_runtime().mail_pool


def get_event_streams() -> EventStreams:
    return get_runtime().streams


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 §2.1), else None.

    Parsed by the same ``bearer_token_in`` as the FastAPI twin's, so the twins agree on odd
    headers. A WSGI server joins two Authorization headers into one value, which then fails
    to decode: the same 401 that the FastAPI twin gives two headers. A header longer than
    ``MAX_AUTHORIZATION_BYTES`` is an invalid token, measured before anything reads it.
    """
    header = request.headers.get("Authorization", "")
    if len(header) > MAX_AUTHORIZATION_BYTES:
        raise errors.InvalidToken
    return bearer_token_in(header)


def get_access_claims() -> TokenClaims:
    """The verified claims of the request's access token."""
    if "access_claims" not in g:
        token = bearer_token()
        if not token:
            raise errors.NotAuthenticated
        g.access_claims = get_runtime().tokens.decode(token, expected_type="access")
    claims: TokenClaims = g.access_claims
    return claims


def get_current_user() -> UserPublic:
    # In this worker thread, a blocking read is fine: FastAPI awaits it (fastapi_app/readers.py).
    if "current_user" not in g:
        g.current_user = find_principal(get_runtime().read_engine, get_access_claims())
    user: UserPublic = g.current_user
    return user


def get_current_superuser() -> UserPublic:
    user = get_current_user()
    resource = f"{request.method} {request.path}"
    return get_admin_service().require_superuser(user, client_ip=get_client_ip(), resource=resource)


def require_json_content_type() -> None:
    """415 for a body that is not declared JSON; validation.py calls it before parsing."""
    if not is_json_media_type(request.content_type):
        raise errors.UnsupportedMediaType


def rate_limited(operation: Operation) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count ``operation`` per client address before the view runs (429 over the limit).

    FastAPI's twin is a route dependency; both run after the body is parsed and before the
    caller is authenticated or the body validated. Put it under ``@bp.post(...)``: the
    blueprint registers the function the decorators above it are given.
    """

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            get_runtime().throttle.limit_client(operation, get_client_ip())
            return view(*args, **kwargs)

        return limited

    return decorate
