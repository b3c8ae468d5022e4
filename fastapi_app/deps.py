"""What routes need, declared once as ``Annotated`` dependencies (flask_app/deps.py: the same
names, called by the route).

Routes that hash passwords or write are plain ``def`` functions: FastAPI runs them (and the
sync ``get_session`` generator) in its threadpool, so neither argon2 nor the sync driver ever
blocks the event loop. The one dependency every authenticated request shares — token to
user — is ``async``: it decodes the JWT (tens of µs) on the loop and awaits one row from
the reader (readers.py), so ``GET /users/me`` never waits in the threadpool.
"""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.requests import HTTPConnection
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from fastapi_app.readers import Reader
from shared.domain import errors
from shared.domain.schemas import UserPublic, check_body_members
from shared.infrastructure.config import Settings
from shared.runtime import Runtime
from shared.security.throttle import Operation
from shared.security.tokens import TokenClaims
from shared.services.admin import AdminService
from shared.services.auth import AuthService
from shared.services.event_streams import EventStreams
from shared.services.mail_pool import MailPool
from shared.services.recovery import RecoveryService
from shared.services.users import UserService
from shared.web.bodies import is_json_media_type
from shared.web.client_ip import client_ip
from shared.web.headers import MAX_AUTHORIZATION_BYTES, bearer_token_in

TOKEN_URL = "/api/v1/auth/token"


# Dependencies that only read request state are ``async def``: FastAPI runs a plain ``def``
# dependency in its threadpool, and a thread hop to read an attribute cost ``GET /users/me``
# about a tenth of its throughput (bench/README.md).
async def get_runtime(connection: HTTPConnection) -> Runtime:
    # HTTPConnection: a request or a WebSocket (routes/events.py).
    runtime: Runtime = connection.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One session per request, closed when the response is done."""
    with runtime.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_client_ip(connection: HTTPConnection, settings: SettingsDep) -> str:
    # HTTPConnection: a request's or a WebSocket's (routes/events.py).
    peer = connection.client.host if connection.client else None
    forwarded = connection.headers.getlist("x-forwarded-for")
    return client_ip(peer, forwarded, settings.trusted_proxies)


ClientIP = Annotated[str, Depends(get_client_ip)]


async def get_auth_service(runtime: RuntimeDep) -> AuthService:
    return runtime.auth


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


async def get_user_service(runtime: RuntimeDep) -> UserService:
    return runtime.users


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


async def get_admin_service(runtime: RuntimeDep) -> AdminService:
    return runtime.admins


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]


async def get_recovery_service(runtime: RuntimeDep) -> RecoveryService:
    return runtime.recovery


RecoveryServiceDep = Annotated[RecoveryService, Depends(get_recovery_service)]


async def get_mail_pool(runtime: RuntimeDep) -> MailPool:
    return runtime.mail_pool


MailPoolDep = Annotated[MailPool, Depends(get_mail_pool)]


async def get_event_streams(runtime: RuntimeDep) -> EventStreams:
    return runtime.streams


EventStreamsDep = Annotated[EventStreams, Depends(get_event_streams)]


class CappedBearer(OAuth2PasswordBearer):
    """FastAPI's bearer scheme (for the OpenAPI document), with the header measured before
    it is parsed, and parsed as the Flask twin does: FastAPI's own parser trims with
    ``str.strip()``, which also takes NBSP and NEL off a token (``bearer_token_in``)."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        if any(len(v) > MAX_AUTHORIZATION_BYTES for v in request.headers.getlist("authorization")):
            raise errors.InvalidToken
        return bearer_token_in(request.headers.get("authorization", ""))


# The token of ``Authorization: Bearer <token>``, or None; it also puts the password flow in
# the OpenAPI document. auto_error=False: a missing token is our NotAuthenticated (401 and a
# challenge), not FastAPI's own error. A header longer than MAX_AUTHORIZATION_BYTES is an
# invalid token, whatever it holds.
bearer_token = CappedBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    scheme_name="OAuth2PasswordBearer",  # the contract's
)


async def get_access_claims(
    request: Request, token: Annotated[str | None, Depends(bearer_token)], runtime: RuntimeDep
) -> TokenClaims:
    """The verified claims of the request's access token."""
    if not token:
        raise errors.NotAuthenticated
    if len(request.headers.getlist("authorization")) > 1:
        # Two credentials: Starlette would read the first, other servers join or pick the
        # last. Refuse rather than guess (RFC 6750 §3.1: more than one method is invalid).
        raise errors.InvalidToken
    return runtime.tokens.decode(token, expected_type="access")


# FastAPI solves a dependency once per request, so CurrentUser and AccessClaims share one decode.
AccessClaims = Annotated[TokenClaims, Depends(get_access_claims)]


async def get_reader(connection: HTTPConnection) -> Reader:
    """The FastAPI twin's read path (readers.py); the Flask twin reads in its worker thread."""
    reader: Reader = connection.app.state.reader
    return reader


ReaderDep = Annotated[Reader, Depends(get_reader)]


async def get_current_user(claims: AccessClaims, reader: ReaderDep) -> UserPublic:
    return await reader.principal(claims)


CurrentUser = Annotated[UserPublic, Depends(get_current_user)]


async def get_current_superuser(
    user: CurrentUser, ip: ClientIP, request: Request, admins: AdminServiceDep
) -> UserPublic:
    resource = f"{request.method} {request.url.path}"
    return admins.require_superuser(user, client_ip=ip, resource=resource)


CurrentSuperuser = Annotated[UserPublic, Depends(get_current_superuser)]


async def require_json_content_type(request: Request) -> None:
    """415 for a body that is not declared JSON (FastAPI alone would answer 422); and 422
    for an object of too many members, before FastAPI validates it member by member."""
    declared = request.headers.getlist("content-type")
    # Two Content-Type headers: refuse rather than pick one (gunicorn refuses such a request).
    if len(declared) != 1 or not is_json_media_type(declared[0]):
        raise errors.UnsupportedMediaType
    if await request.body():
        # Parsed already: FastAPI reads the body before it solves any dependency, and
        # Starlette keeps the result (a body that was not JSON never gets here).
        check_body_members(await request.json())


JSONContentType = Depends(require_json_content_type)


def rate_limited(operation: Operation) -> Any:
    """A route dependency counting ``operation`` per client address (429 over the limit).

    List it after ``JSONContentType``: route dependencies run in order, and a 415 comes first.

    A plain ``def``: with Redis the check is network I/O, so it runs in the threadpool.
    """

    def limit(ip: ClientIP, runtime: RuntimeDep) -> None:
        runtime.throttle.limit_client(operation, ip)

    return Depends(limit)
