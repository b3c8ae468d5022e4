"""Accounts: creating users, and what each user does to their own account.

What one account does to another (a superuser's administration) is ``admin.AdminService``;
the rules both keep (the last superuser, deleting, a taken email) are here, public to it.
"""

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import RefreshToken, User
from shared.domain.schemas import UserCreate, UserUpdateMe
from shared.infrastructure.audit import auth_event
from shared.security.password_policy import PasswordPolicy
from shared.security.passwords import PasswordHasher
from shared.security.throttle import Throttle
from shared.services.account_mail import AccountMail
from shared.services.one_time_tokens import revoke_links
from shared.services.token_store import TokenStore


class UserService:
    """The use cases of one's own account but signing up (``AuthService``), and creating
    accounts; holding what they need.

    A class whose methods are the use cases, like fastapi-users' ``UserManager``, but built
    once per app by ``shared.runtime.Runtime`` and handed the request's session on each call.
    """

    def __init__(
        self,
        *,
        passwords: PasswordHasher,
        policy: PasswordPolicy,
        throttle: Throttle,
        token_store: TokenStore,
        mail: AccountMail,
    ) -> None:
        self._passwords = passwords
        self._policy = policy
        self._throttle = throttle
        self._token_store = token_store
        self._mail = mail

    def add_user(self, *, session: Session, data: UserCreate, is_superuser: bool = False) -> User:
        """Insert a user, uncommitted; the unique index, not a prior SELECT, decides who wins
        a race. Superusers are created by an operator, who vouches for their address."""
        user = User(
            email=data.email,
            hashed_password=self._passwords.hash(data.password),
            full_name=data.full_name,
            is_superuser=is_superuser,
            is_verified=is_superuser,
        )
        session.add(user)
        flush_or_email_taken(session)
        return user

    def create_user(
        self, *, session: Session, data: UserCreate, is_superuser: bool = False
    ) -> User:
        user = self.add_user(session=session, data=data, is_superuser=is_superuser)
        session.commit()
        return user

    def ensure_superuser(self, *, session: Session, email: str, password: str) -> User:
        """Create a superuser, or promote the existing account: an operator's explicit act (CLI)."""
        data = UserCreate(email=email, password=password)
        user = session.scalar(select(User).where(User.email == data.email))
        if user is None:
            try:
                return self.create_user(session=session, data=data, is_superuser=True)
            except errors.EmailTaken:  # created a moment ago by someone else
                user = session.scalars(select(User).where(User.email == data.email)).one()
        user.is_superuser, user.is_active = True, True
        session.commit()
        return user

    def create_first_superuser(self, *, session: Session, email: str, password: str) -> bool:
        """Create the configured superuser if no account has that email; True if it did.

        Only ever creates. Promoting an existing account at every start would hand superuser
        rights to whoever signed up with that address after the first one was deleted, and
        undo a deliberate deactivation; promotion is the CLI's job.
        """
        data = UserCreate(email=email, password=password)
        if session.scalar(select(User.id).where(User.email == data.email)) is not None:
            return False
        try:
            self.create_user(session=session, data=data, is_superuser=True)
        except errors.EmailTaken:  # another worker, starting at the same moment, created it
            return False
        return True

    def update_me(
        self, *, session: Session, user_id: int, data: UserUpdateMe, client_ip: str
    ) -> User:
        """Change the name now; a new address only once its link is followed
        (``EmailChanges``): the answer shows the account as it is, the address unchanged."""
        user = load_user(session, user_id)
        if data.current_password is not None:
            self._check_current_password(
                user, data.current_password, client_ip=client_ip, event="update_me"
            )
        if "full_name" in data.model_fields_set:
            user.full_name = data.full_name
        if data.email is not None:
            self.request_email_change(session, user, data.email, client_ip=client_ip)
        session.commit()
        if data.email is not None:
            auth_event("email_change_request", "success", client_ip=client_ip, user_id=user_id)
        return user

    def request_email_change(
        self, session: Session, user: User, email: str, *, client_ip: str
    ) -> None:
        """Mail a link to ``email`` that moves the account there. Any change asked for before
        is taken back first, even when the address's mail budget leaves this one unmailed:
        only the latest request is the account's wish. Nothing here looks at whether
        ``email`` has an account: the answer and the work are the same either way."""
        revoke_links(session, user.id, purpose="change_email")
        if email != user.email:
            self._mail.email_change(session, user, email, client_ip=client_ip)

    def change_email(
        self, session: Session, user: User, email: str, *, verified: bool = False
    ) -> None:
        """Move the account to ``email`` now: an administrator's change, or a change whose
        link was followed. Unless ``verified``, the new address is unproved until its owner
        follows the link mailed to it; the old one is told, in case the change was not its
        owner's doing."""
        old_email, user.email, user.is_verified = user.email, email, verified
        flush_or_email_taken(session)  # a taken address fails here, before any mail is written
        revoke_links(session, user.id)
        if not verified:
            self._mail.verification(session, user)
        self._mail.email_changed(session, user, old_email=old_email)

    def check_new_password(self, password: str, *, email: str | None, field: str) -> None:
        """422 at ``["body", field]`` for a password the policy refuses, with its reason."""
        if (problem := self._policy.problem(password, email=email)) is not None:
            raise errors.RequestValidationFailed(
                [{"type": "password_policy", "loc": ["body", field], "msg": problem}]
            )

    def change_password(
        self, *, session: Session, user_id: int, current: str, new: str, client_ip: str
    ) -> None:
        """Set a new password and end every session: a changed password may mean a stolen one."""
        user = load_user(session, user_id)
        self._check_current_password(user, current, client_ip=client_ip, event="password_change")
        self.check_new_password(new, email=user.email, field="new_password")
        user.hashed_password = self._passwords.hash(new)
        self.end_every_session(session, user)
        self._mail.password_changed(session, user)
        session.commit()
        auth_event("password_change", "success", client_ip=client_ip, user_id=user_id)

    @staticmethod
    def delete_me(*, session: Session, user_id: int, client_ip: str) -> None:
        """Every deletion of an account is an audit event, its owner's as an administrator's."""
        user = load_user(session, user_id)
        if user.is_superuser and user.is_active:
            try:
                keep_one_superuser(session, user)
            except errors.LastSuperuser:
                auth_event("account_delete", "failure", client_ip=client_ip, user_id=user_id,
                           reason="last_superuser")  # fmt: skip
                raise
        delete_account(session, user)
        auth_event("account_delete", "success", client_ip=client_ip, user_id=user_id)

    def _check_current_password(
        self, user: User, password: str, *, client_ip: str, event: str
    ) -> None:
        """Re-authentication counts towards the login lockout: a stolen access token must not
        buy unlimited guesses at the password through these routes instead of /auth/login."""
        self._throttle.count_login_attempt(user.email)
        if not self._passwords.verify(password, user.hashed_password).ok:
            auth_event(event, "failure", client_ip=client_ip, user_id=user.id, reason="current")
            raise errors.IncorrectPassword
        self._throttle.record_success(user.email)

    def end_every_session(self, session: Session, user: User) -> None:
        """Every token of ``user`` stops working: access tokens by generation, refresh by row."""
        # Incremented by the database, not in Python: two concurrent changes each move it on.
        user.token_generation = User.token_generation + 1
        self._token_store.revoke_all(session=session, user_id=user.id)
        revoke_links(session, user.id)


def load_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise errors.UserNotFound
    return user


def keep_one_superuser(session: Session, user: User) -> None:
    """Refuse to remove the last active superuser: no one could administer the service.

    Two superusers demoting each other at once must take turns, the second seeing the first's
    change. PostgreSQL: the superusers' rows stay locked (FOR UPDATE, in id order) until this
    transaction ends. SQLite has no row locks and reads outside any transaction, so a no-op
    write first takes its single writer lock, and a concurrent demotion waits for our commit.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(User).where(User.id == user.id).values(is_superuser=User.is_superuser)
        )
    superusers = (
        select(User.id)
        .where(User.is_superuser.is_(True), User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    if not [user_id for user_id in session.scalars(superusers) if user_id != user.id]:
        raise errors.LastSuperuser


def delete_account(session: Session, user: User) -> None:
    # Explicit, rather than relying on ON DELETE CASCADE, which SQLite enforces only by pragma.
    session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))
    session.delete(user)
    session.commit()


def commit_or_email_taken(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise errors.EmailTaken from None


def flush_or_email_taken(session: Session) -> None:
    """``commit_or_email_taken`` for a transaction that goes on (its mail is still to write)."""
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise errors.EmailTaken from None
