"""The tokens of reset and verification links: random, stored hashed, used once.

Not JWTs: a link token must be revocable (used, superseded, killed by a password change),
so the database holds it anyway, and a random string needs no signature to be unguessable.
"""

import hashlib
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import OneTimeToken, User
from shared.infrastructure.db import utcnow

# ``change_email``: a change of address waiting for its link (services/email_changes.py).
Purpose = Literal["password_reset", "verify_email", "change_email"]
# 256 bits from the OS's CSPRNG (OWASP Forgot Password cheat sheet asks for at least 128).
TOKEN_BYTES = 32


def digest(token: str) -> str:
    """What the table stores. A plain SHA-256 is enough: the token is random and long, so
    there is no dictionary to try (a password needs argon2 because it is neither)."""
    return hashlib.sha256(token.encode()).hexdigest()


class OneTimeTokens:
    def __init__(self, *, lifetimes: Mapping[Purpose, timedelta]) -> None:
        self._lifetimes = dict(lifetimes)

    def lifetime(self, purpose: Purpose) -> timedelta:
        return self._lifetimes[purpose]

    def issue(
        self, *, session: Session, user: User, purpose: Purpose, email: str | None = None
    ) -> str:
        """A new token for ``user``, in the caller's transaction; every earlier one of the
        same purpose dies with it (a newer link supersedes the older), and its row goes: the
        table keeps at most one row per account and purpose. ``email`` is the address the
        link is for, when it is not the account's (a change of address)."""
        session.execute(
            delete(OneTimeToken).where(
                OneTimeToken.user_id == user.id, OneTimeToken.purpose == purpose
            )
        )
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session.add(
            OneTimeToken(
                token_hash=digest(token),
                purpose=purpose,
                user_id=user.id,
                email=email or user.email,
                generation=user.token_generation,
                expires_at=utcnow() + self._lifetimes[purpose],
            )
        )
        return token

    @staticmethod
    def redeem(*, session: Session, token: str, purpose: Purpose) -> User:
        """The account ``token`` was issued for, marking it used; one error for every
        reason it is not valid (unknown, other purpose, expired, used, superseded, or the
        account moved on: another address, another password, deactivated)."""
        row = find(session, token, purpose)
        if row is None or row.used_at is not None:
            raise errors.InvalidOneTimeToken
        user = session.get(User, row.user_id)
        if row.expires_at <= utcnow() or user is None or not _still_applies(row, user):
            raise errors.InvalidOneTimeToken
        mark_used(session, row)
        return user


def find(session: Session, token: str, purpose: Purpose) -> OneTimeToken | None:
    """The row of ``token`` if it was issued for ``purpose``, used or not."""
    row = session.scalar(select(OneTimeToken).where(OneTimeToken.token_hash == digest(token)))
    return row if row is not None and row.purpose == purpose else None


def mark_used(session: Session, row: OneTimeToken) -> None:
    """``InvalidOneTimeToken`` unless this request is the one that uses ``row``."""
    # Compare-and-set, not a read: of two requests presenting the token at once, the
    # database lets exactly one mark it (the other's UPDATE then finds it used).
    used = session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.id == row.id, OneTimeToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise errors.InvalidOneTimeToken


def revoke_links(session: Session, user_id: int, *, purpose: Purpose | None = None) -> None:
    """Every link of the user stops working (of one ``purpose``, if given): their password
    or address changed (a link must not come back to life if the address changes back), or
    every session was ended."""
    links = delete(OneTimeToken).where(OneTimeToken.user_id == user_id)
    if purpose is not None:
        links = links.where(OneTimeToken.purpose == purpose)
    session.execute(links)


def _still_applies(row: OneTimeToken, user: User) -> bool:
    if not user.is_active or user.email != row.email:
        return False
    # A reset token dies when the password changes any other way (or every session is ended:
    # deactivation, an administrator's reset), which moves the generation on.
    return row.purpose != "password_reset" or user.token_generation == row.generation
