"""The server-side token store: issue, rotate and revoke refresh tokens; deny access tokens.

Refresh tokens are JWTs whose ``jti`` must also be a live row here; that row is what makes
them revocable, single-use and traceable to a family (one login's chain of rotations, the
session every token of that login names in its ``sid``).

What the tables keep, and for how long (:meth:`TokenStore.purge`):

- a refresh row until it expires; after that its token is refused by its ``exp`` alone;
- but every row of a family with no live row left (logged out, caught replaying, ended by
  a password change) goes at once: a replay of any of them fails either way;
- the spent rows of a *live* family stay until they expire: they are what detects reuse.
  Were one deleted, its replay would be a plain 401 (an unknown token) that leaves the
  family, and the thief's working successor, alive;
- a denylist row until the access token it denies would have expired.
"""

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from shared.domain import errors
from shared.domain.models import RefreshToken, RevokedAccessToken, User
from shared.domain.schemas import TokenPair
from shared.infrastructure.db import utcnow
from shared.security.tokens import TokenClaims, TokenCodec, new_session_id
from shared.services.account_events import AccountEvents

# Rows of each kind each login and logout purges on the way. Each creates at
# most a row or two, so a sweep of this size keeps up with them many times over, and its
# DELETEs stay short enough never to hold locks anyone would notice.
SWEEP_BATCH = 100


@dataclass(frozen=True)
class Purged:
    """How many rows one purge pass deleted, by reason."""

    expired_denials: int
    expired_refresh: int
    dead_family_rows: int

    @property
    def total(self) -> int:
        return self.expired_denials + self.expired_refresh + self.dead_family_rows


class TokenStore:
    """Mints token pairs with the codec and keeps the rows that make them revocable."""

    def __init__(self, *, tokens: TokenCodec, events: AccountEvents) -> None:
        self._tokens = tokens
        self._events = events

    def issue_pair(self, *, session: Session, user: User) -> TokenPair:
        """A new access + refresh pair whose refresh token starts a new family (a new login).

        Sweeps first (see :meth:`purge`), in the same transaction.
        """
        self.purge(session=session, batch=SWEEP_BATCH)
        pair, _ = self._mint(session=session, user=user, session_id=new_session_id())
        session.commit()
        return pair

    @staticmethod
    def find(*, session: Session, claims: TokenClaims) -> RefreshToken:
        """The stored record of a decoded refresh token, or ``InvalidToken``."""
        record = session.get(RefreshToken, claims.jti)
        if record is None or record.user_id != claims.user_id:
            raise errors.InvalidToken
        # A signed token naming another family than its row: never issued so.
        if record.family_id != claims.session_id:
            raise errors.InvalidToken
        return record

    def rotate(self, *, session: Session, record: RefreshToken, user: User) -> TokenPair:
        """Spend ``record`` and issue its successor in the same family, in one transaction.

        The spend is a conditional UPDATE rather than read-then-write, so two concurrent
        refreshes with one token cannot both succeed, on any isolation level or backend; the
        loser is treated as reuse. The successor is inserted before the spend, so the family
        always has a live row to anyone reading: the session never seems to end in between.
        """
        # Read now: after a rollback the record is expired, and a logout that won the race may
        # have deleted its row, which reading it again would fail on.
        family_id, user_id = record.family_id, record.user_id
        pair, new_jti = self._mint(session=session, user=user, session_id=family_id)
        spent = _revoke(session, RefreshToken.jti == record.jti, replaced_by=new_jti)
        if spent != 1:
            session.rollback()
            self.revoke_family(
                session=session, family_id=family_id, user_id=user_id, reason="reuse"
            )
            raise errors.InvalidToken
        session.commit()
        return pair

    def revoke_family(self, *, session: Session, family_id: str, user_id: int, reason: str) -> None:
        """End a session: its refresh tokens, and with them its access tokens (identity.py);
        its open event streams are told why (``reason``) and closed."""
        self._events.session_revoked(session, user_id=user_id, session_id=family_id, reason=reason)
        _revoke(session, RefreshToken.family_id == family_id)
        # Twice: under READ COMMITTED (PostgreSQL), a rotation that committed while the first
        # statement waited on its row lock left a successor that statement could not see; a
        # new statement sees it. (SQLite runs one writer at a time and needs no second pass.)
        _revoke(session, RefreshToken.family_id == family_id)
        session.commit()

    def deny_access_token(self, *, session: Session, claims: TokenClaims) -> None:
        """Refuse this access token from now until it expires on its own (logout).

        Sweeps on the way (see :meth:`purge`): the family logout just ended goes with it.
        """
        self.purge(session=session, batch=SWEEP_BATCH)
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

    @staticmethod
    def purge(*, session: Session, batch: int) -> Purged:
        """Delete up to ``batch`` rows of each kind nothing can use any more (the module
        docstring says which); the caller commits. ``authtwin purge-tokens`` repeats it
        until nothing is left; each login and logout runs one small pass.

        Every row deleted is one chosen ``FOR UPDATE SKIP LOCKED`` on PostgreSQL: two sweeps
        at once (or a sweep and a user's deletion) take different rows, and none ever waits
        for a row another transaction holds, so none can deadlock. SQLite has one writer at a
        time and no such clause.
        """
        now = utcnow()
        denials = _delete_chosen(
            session,
            RevokedAccessToken,
            select(RevokedAccessToken.jti).where(RevokedAccessToken.expires_at <= now),
            batch,
        )
        expired = _delete_chosen(
            session,
            RefreshToken,
            select(RefreshToken.jti).where(RefreshToken.expires_at <= now),
            batch,
        )
        return Purged(denials, expired, _delete_dead_families(session, batch))

    def _mint(self, *, session: Session, user: User, session_id: str) -> tuple[TokenPair, str]:
        # Both tokens name the session: the refresh token to rotate within it, the access
        # token to end with it.
        access = self._tokens.issue(
            user_id=user.id,
            generation=user.token_generation,
            session_id=session_id,
            token_type="access",
        )
        refresh = self._tokens.issue(
            user_id=user.id,
            generation=user.token_generation,
            session_id=session_id,
            token_type="refresh",
        )
        session.add(
            RefreshToken(
                jti=refresh.jti,
                user_id=user.id,
                family_id=session_id,
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


def _delete_chosen(
    session: Session,
    table: type[RefreshToken] | type[RevokedAccessToken],
    chosen: Select[str],
    batch: int,
) -> int:
    """Delete the rows whose ``jti`` the first ``batch`` rows of ``chosen`` name."""
    picked = chosen.limit(batch).with_for_update(skip_locked=True)
    result = session.execute(
        delete(table)
        .where(table.jti.in_(picked.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _delete_dead_families(session: Session, batch: int) -> int:
    """Up to ``batch`` rows of families that have no live row left.

    A dead family is found by its end (a row revoked other than by rotation, which a
    partial index keeps apart); the check for a live row guards the rare family a
    password change's single UPDATE revoked while a rotation added to it.

    Rows, not families, are chosen and locked (``SKIP LOCKED``), so the DELETE touches only
    rows this sweep holds and never waits for one another transaction holds: deleting whole
    families took rows another sweep (or a user's deletion) had locked while it waited for
    ours, a deadlock. The end row goes last, so a family cut by the batch is found again by
    the next sweep.
    """
    end, live, row = aliased(RefreshToken), aliased(RefreshToken), aliased(RefreshToken)
    dead = (
        select(end.family_id)
        .where(end.revoked_at.is_not(None), end.replaced_by.is_(None))
        .where(~exists().where(live.family_id == end.family_id, live.revoked_at.is_(None)))
        .limit(batch)
    )
    picked = (
        select(row.jti)
        .where(row.family_id.in_(dead.scalar_subquery()))
        .order_by(row.replaced_by.is_(None))
        .limit(batch)
        .with_for_update(skip_locked=True, of=row)
    )
    result = session.execute(
        delete(RefreshToken)
        .where(RefreshToken.jti.in_(picked.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
