"""Accounts: creating, reading, changing and deleting users."""

import functools

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import RefreshToken, User
from shared.domain.schemas import (
    PageParams,
    UserCreate,
    UserPage,
    UserPublic,
    UserUpdate,
    UserUpdateMe,
)
from shared.infrastructure.audit import admin_event, auth_event
from shared.security.password_policy import PasswordPolicy
from shared.security.passwords import PasswordHasher
from shared.security.throttle import Throttle
from shared.services.token_store import TokenStore


class UserService:
    """The use cases on accounts but signing up (``AuthService``), holding what they need.

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
    ) -> None:
        self._passwords = passwords
        self._policy = policy
        self._throttle = throttle
        self._token_store = token_store

    def create_user(
        self, *, session: Session, data: UserCreate, is_superuser: bool = False
    ) -> User:
        """Insert a user; the unique index, not a prior SELECT, decides who wins a race."""
        user = User(
            email=data.email,
            hashed_password=self._passwords.hash(data.password),
            full_name=data.full_name,
            is_superuser=is_superuser,
        )
        session.add(user)
        _commit_or_email_taken(session)
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

    @staticmethod
    def require_superuser(actor: UserPublic, *, client_ip: str, resource: str) -> UserPublic:
        """The gate of the administrative routes; every refusal is an audit event."""
        if not actor.is_superuser:
            admin_event(
                "admin_access",
                "failure",
                actor_id=actor.id,
                client_ip=client_ip,
                resource=resource,
                reason="forbidden",
            )
            raise errors.PermissionDenied
        return actor

    @staticmethod
    def get_user(*, session: Session, actor: UserPublic, user_id: int, client_ip: str) -> User:
        """A user by id, for superusers or the user themself."""
        if not actor.is_superuser and actor.id != user_id:
            admin_event(
                "read_user",
                "failure",
                actor_id=actor.id,
                target_id=user_id,
                client_ip=client_ip,
                reason="forbidden",
            )
            raise errors.PermissionDenied  # before the lookup: others' ids do not leak existence
        return _load(session, user_id)

    @staticmethod
    def list_users(*, session: Session, page: PageParams) -> UserPage:
        total = session.scalar(select(func.count()).select_from(User)) or 0
        found = session.scalars(
            select(User).order_by(User.id).offset(page.offset).limit(page.limit)
        )
        items = [UserPublic.model_validate(user) for user in found]
        return UserPage(items=items, total=total, offset=page.offset, limit=page.limit)

    def update_me(
        self, *, session: Session, user_id: int, data: UserUpdateMe, client_ip: str
    ) -> User:
        user = _load(session, user_id)
        if data.current_password is not None:
            self._check_current_password(
                user, data.current_password, client_ip=client_ip, event="update_me"
            )
        if "full_name" in data.model_fields_set:
            user.full_name = data.full_name
        changing_email = data.email is not None and data.email != user.email
        if data.email is not None:
            user.email = data.email
        _commit_or_email_taken(session)
        if changing_email:
            auth_event("email_change", "success", client_ip=client_ip, user_id=user_id)
        return user

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
        user = _load(session, user_id)
        self._check_current_password(user, current, client_ip=client_ip, event="password_change")
        self.check_new_password(new, email=user.email, field="new_password")
        user.hashed_password = self._passwords.hash(new)
        self._end_every_session(session, user)
        session.commit()
        auth_event("password_change", "success", client_ip=client_ip, user_id=user_id)

    def update_user(
        self, *, session: Session, actor: UserPublic, user_id: int, data: UserUpdate, client_ip: str
    ) -> User:
        """A superuser's change to any account. ``null`` leaves a non-nullable field as it is.

        Each privilege or credential change is an audit event (:func:`_admin_acts`), logged once
        it is committed, or as a failure with the reason it was refused.
        """
        user = _load(session, user_id)
        acts = _admin_acts(user, data)
        audit = functools.partial(
            _audit_acts, actor_id=actor.id, target_id=user_id, client_ip=client_ip
        )
        try:
            self._apply_update(session, user, data)
        except errors.LastSuperuser:
            audit([act for act in acts if act in {"demote", "deactivate"}], "last_superuser")
            raise
        except errors.EmailTaken:
            audit(["email_change"], "email_taken")
            raise
        audit(acts, None)
        return user

    def _apply_update(self, session: Session, user: User, data: UserUpdate) -> None:
        demoting = data.is_superuser is False or data.is_active is False
        if demoting and user.is_superuser and user.is_active:
            _keep_one_superuser(session, user)
        if data.password is not None:
            self.check_new_password(data.password, email=data.email or user.email, field="password")
            user.hashed_password = self._passwords.hash(data.password)
        if data.password is not None or (data.is_active is False and user.is_active):
            self._end_every_session(session, user)
        if "full_name" in data.model_fields_set:
            user.full_name = data.full_name
        for field in ("email", "is_active", "is_superuser"):
            if (value := getattr(data, field)) is not None:
                setattr(user, field, value)
        _commit_or_email_taken(session)

    @staticmethod
    def delete_me(*, session: Session, user_id: int) -> None:
        user = _load(session, user_id)
        if user.is_superuser and user.is_active:
            _keep_one_superuser(session, user)
        _delete(session, user)

    @staticmethod
    def delete_user(*, session: Session, actor: UserPublic, user_id: int, client_ip: str) -> None:
        audit = functools.partial(
            _audit_acts, ["delete_user"], actor_id=actor.id, target_id=user_id, client_ip=client_ip
        )
        if actor.id == user_id:
            audit("self")
            raise errors.CannotDeleteSelf
        user = _load(session, user_id)
        if user.is_superuser and user.is_active:
            try:
                _keep_one_superuser(session, user)
            except errors.LastSuperuser:
                audit("last_superuser")
                raise
        _delete(session, user)
        audit(None)

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

    def _end_every_session(self, session: Session, user: User) -> None:
        """Every token of ``user`` stops working: access tokens by generation, refresh by row."""
        # Incremented by the database, not in Python: two concurrent changes each move it on.
        user.token_generation = User.token_generation + 1
        self._token_store.revoke_all(session=session, user_id=user.id)


def _admin_acts(user: User, data: UserUpdate) -> list[str]:
    """What an administrator's change does to an account, in the audit log's words."""
    acts = []
    if data.is_superuser is not None and data.is_superuser != user.is_superuser:
        acts.append("promote" if data.is_superuser else "demote")
    if data.is_active is not None and data.is_active != user.is_active:
        acts.append("reactivate" if data.is_active else "deactivate")
    if data.password is not None:
        acts.append("password_reset")
    if data.email is not None and data.email != user.email:
        acts.append("email_change")
    return acts


def _audit_acts(
    acts: list[str], reason: str | None, *, actor_id: int, target_id: int, client_ip: str
) -> None:
    """One record per act: a success when ``reason`` is None, else a refusal and why."""
    for act in acts:
        admin_event(
            act,
            "success" if reason is None else "failure",
            actor_id=actor_id,
            target_id=target_id,
            client_ip=client_ip,
            reason=reason,
        )


def _load(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise errors.UserNotFound
    return user


def _keep_one_superuser(session: Session, user: User) -> None:
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


def _delete(session: Session, user: User) -> None:
    # Explicit, rather than relying on ON DELETE CASCADE, which SQLite enforces only by pragma.
    session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))
    session.delete(user)
    session.commit()


def _commit_or_email_taken(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise errors.EmailTaken from None
