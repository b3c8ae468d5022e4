"""The tables: users, every refresh token issued, access tokens revoked before expiry, the
one-time tokens of reset and verification links, and the outbox of mail to send."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, false, text
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
    # The owner proved the address by following a link mailed to it (or an operator vouched
    # for it); an email change makes it false again. Last, where migration 0003 added it;
    # the server default is for the rows that existed before the column.
    is_verified: Mapped[bool] = mapped_column(default=False, server_default=false())


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


class OneTimeToken(Base):
    """A password reset or email verification token: stored only as its SHA-256 (whoever
    reads the table cannot use it), and used at most once.

    ``email`` and ``generation`` are the account's when it was issued: a token dies when
    the address changes, and a reset token when the password changes any other way (every
    password change raises ``User.token_generation``). ``used_at`` is set when it is used
    and when a newer token of the same purpose supersedes it.
    """

    __tablename__ = "one_time_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    generation: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class PendingSignup(Base):
    """A signup waiting for its address to be proved (AUTHTWIN_REQUIRE_VERIFIED_LOGIN): the
    account is created only when the link mailed to the address is followed.

    Not a user row: an account created at signup, with a password the one signing up chose,
    would answer a login with that password differently from a taken address (whose owner's
    password it is not), and tell the very thing the 202 hides. Several may wait for one
    address (people mistype, or try someone else's); the first link followed wins.
    """

    __tablename__ = "pending_signups"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), index=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(NAME_MAX_LENGTH), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OutboxMessage(Base):
    """A mail to send, written in the transaction that decided to send it (the outbox
    pattern): a message exists if and only if what it announces was committed, and a crash
    or an SMTP outage after the commit loses nothing, as the row waits to be delivered.

    ``context`` holds what the template needs, a link's token included, sealed
    (security/sealing.py: of no use without the service's secret), until the message is
    sent or given up; then it is erased. A password reset request is written with no context
    and no account: the account is looked up when the message is prepared, after the
    response (services/outbox.py says why).
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # What the delivery asks for: unsent messages, oldest first.
        Index(
            "ix_outbox_messages_pending",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
            sqlite_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    context: Mapped[str | None] = mapped_column(Text(), default=None)
    # The same Message-ID on every attempt: a resend after a crash can be recognised.
    message_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    # A sender holds a message until then; another may take it only after (it crashed).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(String(255), default=None)
