"""The tables: users, every refresh token issued, and access tokens revoked before expiry."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.infrastructure.db import Base, UTCDateTime, utcnow

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path, which email-validator enforces.
NAME_MAX_LENGTH = 255


class User(Base):
    __tablename__ = "users"
    # Never reuse a deleted user's id: a token still in flight would name the next account.
    # (PostgreSQL sequences never reuse; SQLite does without AUTOINCREMENT.)
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored normalised (lower case), so the unique constraint is case-insensitive on every
    # backend and concurrent signups are decided by the database, not by a prior SELECT.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(NAME_MAX_LENGTH), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    is_superuser: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Every token carries the generation it was issued in (claim ``gen``); raising this ends
    # every token of the user at once (password change, deactivation). A counter rather than
    # a "valid after" instant: ``iat`` has whole-second resolution and servers' clocks differ.
    token_generation: Mapped[int] = mapped_column(default=0)


class RefreshToken(Base):
    """One issued refresh token, by ``jti``.

    Rotation marks the presented token spent (``revoked_at`` + ``replaced_by``) and issues the
    next one in the same ``family_id``; presenting a spent token again means it was stolen or
    replayed, so the whole family is revoked (OAuth 2.0 Security BCP, refresh token rotation).

    A family is a session: every token of a login carries its id (claim ``sid``), and the
    session lasts as long as the family has a live row (one, after each rotation). Logout and
    reuse detection revoke every row, which ends the session's access tokens too
    (services/identity.py). A row revoked other than by rotation (``replaced_by`` empty) is
    where a family ended; TokenStore.purge finds dead families by it.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        # The bearer lookup's "is this session live?", on every authenticated request: one
        # probe of this small index, however many spent rows the family has piled up.
        Index(
            "ix_refresh_tokens_live_family",
            "family_id",
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
        # The ends of families (revoked, not by rotation): where the purge looks for dead
        # families without reading the spent rows of live ones.
        Index(
            "ix_refresh_tokens_ended_family",
            "family_id",
            postgresql_where=text("revoked_at IS NOT NULL AND replaced_by IS NULL"),
            sqlite_where=text("revoked_at IS NOT NULL AND replaced_by IS NULL"),
        ),
    )

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Indexed for the purge of expired rows.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    replaced_by: Mapped[str | None] = mapped_column(String(64), default=None)


class RevokedAccessToken(Base):
    """An access token ended by logout before its ``exp``: the ``jti`` denylist.

    A row is needed only until the token would have expired anyway; the purge (at each login
    and logout, and ``authtwin purge-tokens``) deletes the rows past ``expires_at``, so the
    table holds about 15 minutes of logouts.
    """

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
