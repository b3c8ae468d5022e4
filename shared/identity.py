"""Who is calling: the bearer token → active user lookup that every authenticated request makes.

The statement is built here once; each app executes it its own way (a sync connection in
Flask, an async one in FastAPI). It reads one row in autocommit and touches no ORM session,
because this is the hottest path in the service.
"""

from datetime import datetime

from sqlalchemy import Row, Select, exists, select

from shared.errors import InvalidToken
from shared.models import RevokedAccessToken, User
from shared.schemas import UserPublic
from shared.tokens import TokenClaims


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1), else None.

    Parsed exactly as FastAPI's ``OAuth2PasswordBearer`` does, so the twins agree on odd headers.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


UserRow = Row[int, str, str | None, bool, bool, datetime]


def active_user_statement(
    claims: TokenClaims,
) -> Select[int, str, str | None, bool, bool, datetime]:
    """The token's user, if the token is still good: one statement, one round trip.

    It finds nothing when the user was deleted or deactivated, when their tokens were ended
    by a password change (an older generation), or when this token was logged out.
    """
    logged_out = exists().where(RevokedAccessToken.jti == claims.jti)
    return select(
        User.id, User.email, User.full_name, User.is_active, User.is_superuser, User.created_at
    ).where(
        User.id == claims.user_id,
        User.is_active.is_(True),
        User.token_generation == claims.generation,
        ~logged_out,
    )


def principal_from_row(row: UserRow | None) -> UserPublic:
    """The caller, or ``InvalidToken`` when :func:`active_user_statement` found no one."""
    if row is None:
        raise InvalidToken
    return UserPublic.model_validate(row._mapping)
