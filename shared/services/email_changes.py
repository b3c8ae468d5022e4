"""A change of address, pending until the link mailed to the new address is followed with
the password of the account that asked for it.

The link alone would not do: it reaches whoever owns the new address, who may not be the
one asking. Someone could ask to move their own account to another person's address; that
person, finding a "confirm your address" mail, follows it, and the asker now holds an
account with a proved address that is not theirs (and, where a signup for that address
waits, takes it from its owner). With the password, following a stranger's link moves
nothing; the account keeps its address until the one who asked completes the change.
"""

from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import User
from shared.infrastructure.db import utcnow
from shared.security.passwords import PasswordHasher
from shared.security.throttle import Throttle
from shared.services.one_time_tokens import find, mark_used
from shared.services.users import UserService

CHANGE_PASSWORD_MISSING = {
    "type": "missing",
    "loc": ["body", "password"],
    "msg": "This link moves an account to this address: give that account's password",
}


class EmailChanges:
    def __init__(
        self, *, passwords: PasswordHasher, throttle: Throttle, users: UserService
    ) -> None:
        self._passwords = passwords
        self._throttle = throttle
        self._users = users

    def confirm(self, *, session: Session, token: str, password: str | None) -> User | None:
        """Move the account to the address its link was mailed to, verified, in the caller's
        transaction; None if ``token`` is no change link. ``InvalidOneTimeToken`` for a link
        expired or used, for another password than the account's, and for an address another
        account took meanwhile; a 422 at ``password`` without one."""
        row = find(session, token, "change_email")
        if row is None:
            return None
        user = session.get(User, row.user_id)
        # The generation moves on when the password changes or every session ends: a change
        # asked for before either is not the account's wish any more.
        if (
            row.used_at is not None
            or row.expires_at <= utcnow()
            or user is None
            or not user.is_active
            or user.token_generation != row.generation
        ):
            raise errors.InvalidOneTimeToken
        if password is None:
            # A missing field for this link: told only to whoever holds it, the mailbox's owner.
            raise errors.RequestValidationFailed([CHANGE_PASSWORD_MISSING])
        # Counted like a login: a link is no way around the account's lockout.
        self._throttle.count_login_attempt(user.email)
        if not self._passwords.verify(password, user.hashed_password).ok:
            # The link stays: the one who asked may have mistyped.
            raise errors.InvalidOneTimeToken
        self._throttle.record_success(user.email)
        mark_used(session, row)
        try:
            self._users.change_email(session, user, row.email, verified=True)
        except errors.EmailTaken:
            raise errors.InvalidOneTimeToken from None
        return user
