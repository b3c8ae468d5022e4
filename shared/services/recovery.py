"""The two flows a mailed link completes: recovering a forgotten password, and proving that
an address belongs to the account's owner.
"""

from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import User
from shared.domain.schemas import Accepted
from shared.infrastructure.audit import auth_event
from shared.security.passwords import PasswordHasher
from shared.security.throttle import Throttle
from shared.services.account_mail import AccountMail
from shared.services.email_changes import EmailChanges
from shared.services.one_time_tokens import OneTimeTokens
from shared.services.pending_signups import PendingSignups
from shared.services.users import UserService, load_user

# The 202s: one text whatever happens next (the reset's says nothing of the address).
RESET_REQUESTED = Accepted(
    detail="If an account exists for this address, a link to reset its password was sent to it"
)
VERIFICATION_SENT = Accepted(detail="A verification link was sent to your address")


class RecoveryService:
    def __init__(
        self,
        *,
        passwords: PasswordHasher,
        throttle: Throttle,
        tokens: OneTimeTokens,
        mail: AccountMail,
        users: UserService,
        pending: PendingSignups,
        changes: EmailChanges,
    ) -> None:
        self._passwords = passwords
        self._throttle = throttle
        self._tokens = tokens
        self._mail = mail
        self._users = users
        self._pending = pending
        self._changes = changes

    def request_password_reset(self, *, session: Session, email: str, client_ip: str) -> Accepted:
        """The same work and answer for every address: counted, one row written, committed.

        Whether the address has an account is decided after the response, when the message
        is prepared (``AccountMail.prepare``). The count is per address and asking client
        (a 429 tells the client of its own requests only), under a ceiling per address: past
        it nothing is mailed, and the newest link already mailed still works, so strangers
        asking cannot keep the owner from recovering (``Throttle.limit_link_mail``). It is
        not the login lockout: asking for resets never locks anyone out.
        """
        if self._throttle.limit_link_mail("password_reset", email, client_ip=client_ip):
            self._mail.password_reset_requested(session, email)
        session.commit()
        auth_event("password_reset_request", "success", client_ip=client_ip)
        return RESET_REQUESTED

    def reset_password(
        self, *, session: Session, token: str, new_password: str, client_ip: str
    ) -> None:
        """Set the password a reset link was mailed for, and end every session.

        No tokens are issued: whoever reset the password logs in with it, like anyone else
        (OWASP: no automatic login, which would also skip a second factor). Following the
        link proves the mailbox, so the address counts as verified too.
        """
        try:
            user = self._tokens.redeem(session=session, token=token, purpose="password_reset")
        except errors.InvalidOneTimeToken:
            auth_event("password_reset", "failure", client_ip=client_ip, reason="token")
            raise
        # A password the policy refuses rolls the transaction back: the link still works.
        self._users.check_new_password(new_password, email=user.email, field="new_password")
        user.hashed_password = self._passwords.hash(new_password)
        user.is_verified = True
        self._users.end_every_session(session, user)
        self._mail.password_changed(session, user)
        session.commit()
        # Whoever was guessing at the old password has lost the race: start the count again.
        self._throttle.record_success(user.email)
        auth_event("password_reset", "success", client_ip=client_ip, user_id=user.id)

    def verify_email(
        self, *, session: Session, token: str, password: str | None = None, client_ip: str
    ) -> User:
        """Prove an account's address; for a change of address, move the account to it
        (``EmailChanges``); for a signup that waited for it, create the account
        (``PendingSignups``). The last two want a ``password``: the account's, the signup's.
        Whichever, the answer is the verified User."""
        try:
            user, moved = self._redeem_either(session, token, password)
        except errors.InvalidOneTimeToken:
            auth_event("verify_email", "failure", client_ip=client_ip, reason="token")
            raise
        user.is_verified = True
        session.commit()
        auth_event("verify_email", "success", client_ip=client_ip, user_id=user.id)
        if moved:
            auth_event("email_change", "success", client_ip=client_ip, user_id=user.id)
        return user

    def _redeem_either(
        self, session: Session, token: str, password: str | None
    ) -> tuple[User, bool]:
        """The link's account, and whether it moved to a new address."""
        try:
            return self._tokens.redeem(session=session, token=token, purpose="verify_email"), False
        except errors.InvalidOneTimeToken:
            pass
        moved = self._changes.confirm(session=session, token=token, password=password)
        if moved is not None:
            return moved, True
        return self._pending.complete(session=session, token=token, password=password), False

    def request_verification(self, *, session: Session, user_id: int, client_ip: str) -> Accepted:
        """A new link to the account's current address; the previous link stops working."""
        user = load_user(session, user_id)
        if user.is_verified:
            raise errors.AlreadyVerified
        # This client's budget for the address, which its signup counted too. Past the
        # address's ceiling nothing is mailed: the newest link mailed to it is still alive.
        if self._throttle.limit_link_mail("verify_email", user.email, client_ip=client_ip):
            self._mail.verification(session, user, counted=True)
        session.commit()
        auth_event("verify_email_request", "success", client_ip=client_ip, user_id=user.id)
        return VERIFICATION_SENT
