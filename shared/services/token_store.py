"""The server-side token store: issue, rotate and revoke refresh tokens; deny access tokens.

Refresh tokens are JWTs whose ``jti`` must also be a live row here; that row is what makes
them revocable, single-use and traceable to a family (one login's chain of rotations).
"""

from sqlalchemy import ColumnElement, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import RefreshToken, RevokedAccessToken, User
from shared.domain.schemas import TokenPair
from shared.infrastructure.db import utcnow
from shared.security.tokens import TokenClaims, TokenCodec


class TokenStore:
    """Mints token pairs with the codec and keeps the rows that make them revocable."""

    def __init__(self, *, tokens: TokenCodec) -> None:
        self._tokens = tokens

    def issue_pair(self, *, session: Session, user: User) -> TokenPair:
        """A new access + refresh pair whose refresh token starts a new family (a new login)."""
        pair, _ = self._mint(session=session, user=user, family_id=None)
        session.commit()
        return pair

    @staticmethod
    def find(*, session: Session, claims: TokenClaims) -> RefreshToken:
        """The stored record of a decoded refresh token, or ``InvalidToken``."""
        record = session.get(RefreshToken, claims.jti)
        if record is None or record.user_id != claims.user_id:
            raise errors.InvalidToken
        return record

    def rotate(self, *, session: Session, record: RefreshToken, user: User) -> TokenPair:
        """Spend ``record`` and issue its successor in the same family, in one transaction.

        The spend is a conditional UPDATE rather than read-then-write, so two concurrent
        refreshes with one token cannot both succeed, on any isolation level or backend; the
        loser is treated as reuse.
        """
        family_id = record.family_id
        pair, new_jti = self._mint(session=session, user=user, family_id=family_id)
        spent = _revoke(session, RefreshToken.jti == record.jti, replaced_by=new_jti)
        if spent != 1:
            session.rollback()
            self.revoke_family(session=session, family_id=family_id)
            raise errors.InvalidToken
        session.commit()
        return pair

    @staticmethod
    def revoke_family(*, session: Session, family_id: str) -> None:
        _revoke(session, RefreshToken.family_id == family_id)
        # Twice: under READ COMMITTED (PostgreSQL), a rotation that committed while the first
        # statement waited on its row lock left a successor that statement could not see; a
        # new statement sees it. (SQLite runs one writer at a time and needs no second pass.)
        _revoke(session, RefreshToken.family_id == family_id)
        session.commit()

    @staticmethod
    def deny_access_token(*, session: Session, claims: TokenClaims) -> None:
        """Refuse this access token from now until it expires on its own (logout)."""
        # Rows past expiry deny nothing any more: each logout clears them out.
        session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at <= utcnow()))
        session.add(RevokedAccessToken(jti=claims.jti, expires_at=claims.expires_at))
        try:
            session.commit()
        except IntegrityError:
            # Two logouts with this token at once: the other one denied it already.
            session.rollback()

    @staticmethod
    def revoke_all(*, session: Session, user_id: int) -> None:
        """Revoke every refresh token of a user; the caller commits with its own change."""
        _revoke(session, RefreshToken.user_id == user_id)

    def _mint(
        self, *, session: Session, user: User, family_id: str | None
    ) -> tuple[TokenPair, str]:
        issue = {"user_id": user.id, "generation": user.token_generation}
        access = self._tokens.issue(**issue, token_type="access")
        refresh = self._tokens.issue(**issue, token_type="refresh")
        session.add(
            RefreshToken(
                jti=refresh.jti,
                user_id=user.id,
                family_id=family_id or refresh.jti,
                expires_at=refresh.expires_at,
            )
        )
        pair = TokenPair(
            access_token=access.token,
            refresh_token=refresh.token,
            expires_in=self._tokens.access_ttl_seconds,
        )
        return pair, refresh.jti


def _revoke(session: Session, which: ColumnElement[bool], replaced_by: str | None = None) -> int:
    """Mark the matching live tokens revoked; returns how many were."""
    result = session.execute(
        update(RefreshToken)
        .where(which, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow(), replaced_by=replaced_by)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
