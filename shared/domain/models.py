"""The tables: users, every refresh token issued, and access tokens revoked before expiry."""

from datetime import datetime

from sqlalchemy import ForeignKey, String
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
    """

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    replaced_by: Mapped[str | None] = mapped_column(String(64), default=None)


class RevokedAccessToken(Base):
    """An access token ended by logout before its ``exp``: the ``jti`` denylist.

    A row is needed only until the token would have expired anyway; later logouts delete
    the rows past ``expires_at``, so the table holds at most ~15 minutes of logouts.
    """

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
