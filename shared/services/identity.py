"""Who is calling: the bearer token → active user lookup that every authenticated request makes.

The statement is built here once; each app executes it its own way (a sync connection in
Flask; in FastAPI an async one, or on SQLite a reader thread). It reads one row in
autocommit and touches no ORM session, because this is the hottest path in the service.
"""

from datetime import datetime
from typing import Final

from sqlalchemy import Engine, Row, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.errors import InvalidToken
from shared.domain.models import RefreshToken, RevokedAccessToken, User
from shared.domain.schemas import UserPublic
from shared.infrastructure.db import (
    async_read_connection,
    retry_once_if_disconnected,
    retry_once_if_disconnected_async,
)
from shared.security.tokens import TokenClaims

UserRow = Row[int, str, str | None, bool, bool, bool, datetime]

# Built once, with bind parameters: constructing the statement and its cache key on every
# request took a sixth of the Flask twin's CPU time for ``GET /users/me`` (py-spy, bench/).
ACTIVE_USER: Final = select(
    User.id,
    User.email,
    User.full_name,
    User.is_active,
    User.is_superuser,
    User.is_verified,
    User.created_at,
).where(
    User.id == bindparam("user_id"),
    User.is_active.is_(True),
    User.token_generation == bindparam("generation"),
    ~exists().where(RevokedAccessToken.jti == bindparam("jti")),
    # The session is live: its family still has an unspent refresh token. Logout and reuse
    # detection revoke them all, so every access token of the session stops here at once,
    # not only the one that logged out. Rotation adds the successor before it spends the
    # old row, in one transaction, so a live session never looks ended.
    exists().where(
        RefreshToken.family_id == bindparam("session_id"),
        RefreshToken.user_id == bindparam("user_id"),
        RefreshToken.revoked_at.is_(None),
    ),
)
"""The token's user, if the token is still good: one statement, one round trip.

It finds nothing when the user was deleted or deactivated, when their tokens were ended by a
password change (an older generation), when this token was logged out, or when its session
was (logout, or a replayed refresh token). Execute it with :func:`active_user_parameters`.
"""


def active_user_parameters(claims: TokenClaims) -> dict[str, object]:
    return {
        "user_id": claims.user_id,
        "generation": claims.generation,
        "jti": claims.jti,
        "session_id": claims.session_id,
    }


def principal_from_row(row: UserRow | None) -> UserPublic:
    """The caller, or ``InvalidToken`` when :data:`ACTIVE_USER` found no one."""
    if row is None:
        raise InvalidToken
    return UserPublic.model_validate(row._mapping)


@retry_once_if_disconnected
def find_principal(engine: Engine, claims: TokenClaims) -> UserPublic:
    """The caller, through a read engine (:func:`shared.infrastructure.db.make_read_engine`)."""
    with engine.connect() as connection:
        row = connection.execute(ACTIVE_USER, active_user_parameters(claims)).one_or_none()
    return principal_from_row(row)


@retry_once_if_disconnected_async
async def find_principal_async(engine: AsyncEngine, claims: TokenClaims) -> UserPublic:
    """The caller, through an asyncio read engine, without leaving the event loop."""
    async with async_read_connection(engine) as connection:
        result = await connection.execute(ACTIVE_USER, active_user_parameters(claims))
        row = result.one_or_none()
    return principal_from_row(row)
