"""Signups that wait for their address to be proved (AUTHTWIN_REQUIRE_VERIFIED_LOGIN).

In that mode signup must not tell whether an address has an account, so it cannot create
one: the one signing up chose the password, and a login with it would then answer 403
(unverified) for a free address and 401 for a taken one. The signup waits here instead, and
becomes an account, verified, when the link mailed to the address is followed, with the
password chosen at signup. Without that password a link would be enough, and anyone could
sign up with someone else's address and a password of their own: the owner, finding two
identical mails after signing up too, might follow the stranger's, and hand them the
account (an outside review found this: "account pre-hijacking").
"""

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import PendingSignup, User
from shared.domain.schemas import UserCreate
from shared.infrastructure.db import utcnow
from shared.security.passwords import PasswordHasher
from shared.services.one_time_tokens import TOKEN_BYTES, digest
from shared.services.users import flush_or_email_taken

SIGNUP_PASSWORD_MISSING = {
    "type": "missing",
    "loc": ["body", "password"],
    "msg": "This link finishes a signup: give the password you signed up with",
}


class PendingSignups:
    def __init__(self, *, lifetime: timedelta, passwords: PasswordHasher) -> None:
        self._lifetime = lifetime
        self._passwords = passwords

    def start(self, *, session: Session, data: UserCreate, hashed_password: str) -> str:
        """Keep the signup, in the caller's transaction; the token of its link."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session.add(
            PendingSignup(
                token_hash=digest(token),
                email=data.email,
                hashed_password=hashed_password,
                full_name=data.full_name,
                expires_at=utcnow() + self._lifetime,
            )
        )
        return token

    def complete(self, *, session: Session, token: str, password: str | None) -> User:
        """The account the link's signup becomes, verified; every other signup waiting for
        that address goes. ``InvalidOneTimeToken`` for a link unknown, expired or used, for
        another password than the signup's, and for an address that has found an account
        meanwhile (another link won); a 422 at ``password`` without one."""
        pending = session.scalar(
            select(PendingSignup).where(PendingSignup.token_hash == digest(token))
        )
        if pending is None or pending.expires_at <= utcnow():
            raise errors.InvalidOneTimeToken
        if password is None:
            # A missing field for this link: told only to whoever holds it, the mailbox's owner.
            raise errors.RequestValidationFailed([SIGNUP_PASSWORD_MISSING])
        if not self._passwords.verify(password, pending.hashed_password).ok:
            # The link stays: it may be the owner's own, and they mistyped.
            raise errors.InvalidOneTimeToken
        # Deleting them first settles a race between two of its links: the second delete
        # finds nothing (or waits, then finds nothing), and its account insert fails below.
        gone = session.execute(delete(PendingSignup).where(PendingSignup.email == pending.email))
        if gone.rowcount < 1:  # type: ignore[attr-defined]
            raise errors.InvalidOneTimeToken
        user = User(
            email=pending.email,
            hashed_password=pending.hashed_password,
            full_name=pending.full_name,
            is_verified=True,
        )
        session.add(user)
        try:
            flush_or_email_taken(session)
        except errors.EmailTaken:
            raise errors.InvalidOneTimeToken from None
        return user
