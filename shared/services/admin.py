"""Administration: what a superuser does to other accounts, and the audit trail it leaves.

Every privilege or credential change is an audit event with its actor and target, logged once
committed, or as a refusal with its reason (ASVS v5 16.3.2, 16.3.3); so is every request
refused at the gate of the administrative routes.
"""

import functools

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import User
from shared.domain.schemas import PageParams, UserPage, UserPublic, UserUpdate
from shared.infrastructure.audit import admin_event
from shared.security.passwords import PasswordHasher
from shared.services.account_mail import AccountMail
from shared.services.users import (
    UserService,
    commit_or_email_taken,
    delete_account,
    keep_one_superuser,
    load_user,
)


class AdminService:
    """The administrative use cases, built once per app like ``UserService``, whose rules for
    passwords and sessions they share."""

    def __init__(self, *, passwords: PasswordHasher, users: UserService, mail: AccountMail) -> None:
        self._passwords = passwords
        self._users = users
        self._mail = mail

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
        return load_user(session, user_id)

    @staticmethod
    def list_users(*, session: Session, page: PageParams) -> UserPage:
        total = session.scalar(select(func.count()).select_from(User)) or 0
        found = session.scalars(
            select(User).order_by(User.id).offset(page.offset).limit(page.limit)
        )
        items = [UserPublic.model_validate(user) for user in found]
        return UserPage(items=items, total=total, offset=page.offset, limit=page.limit)

    def update_user(
        self, *, session: Session, actor: UserPublic, user_id: int, data: UserUpdate, client_ip: str
    ) -> User:
        """A superuser's change to any account. ``null`` leaves a non-nullable field as it is."""
        audit = functools.partial(_audit, actor_id=actor.id, target_id=user_id, client_ip=client_ip)
        if actor.id == user_id and (own := _own_credential_acts(data)):
            # ASVS v5 7.5.1: /users/me asks for the current password before the email or the
            # password changes, and proves a new address by mail; this route asks for neither,
            # so a stolen superuser's access token would otherwise take the account over.
            audit(own, "self")
            raise errors.CannotChangeOwnCredentialsHere
        try:
            user = load_user(session, user_id)
        except errors.UserNotFound:
            audit(["update_user"], "not_found")
            raise
        acts = _acts(user, data)
        try:
            self._apply(session, user, data)
        except errors.LastSuperuser:
            audit([act for act in acts if act in {"demote", "deactivate"}], "last_superuser")
            raise
        except errors.EmailTaken:
            audit(["email_change"], "email_taken")
            raise
        except errors.RequestValidationFailed:  # the only one _apply raises: the policy's
            audit(["password_reset"], "password_policy")
            raise
        audit(acts, None)
        return user

    def _apply(self, session: Session, user: User, data: UserUpdate) -> None:
        demoting = data.is_superuser is False or data.is_active is False
        if demoting and user.is_superuser and user.is_active:
            keep_one_superuser(session, user)
        if data.password is not None:
            email = data.email or user.email
            self._users.check_new_password(data.password, email=email, field="password")
            user.hashed_password = self._passwords.hash(data.password)
        if data.password is not None or (data.is_active is False and user.is_active):
            self._users.end_every_session(session, user)
        if "full_name" in data.model_fields_set:
            user.full_name = data.full_name
        for field in ("is_active", "is_superuser", "is_verified"):
            if (value := getattr(data, field)) is not None:
                setattr(user, field, value)
        if data.email is not None and data.email != user.email:
            # Unverified again unless the administrator says in the same request that it is.
            self._users.change_email(session, user, data.email, verified=bool(data.is_verified))
        if data.password is not None:
            self._mail.password_changed(session, user)
        commit_or_email_taken(session)

    @staticmethod
    def delete_user(*, session: Session, actor: UserPublic, user_id: int, client_ip: str) -> None:
        audit = functools.partial(
            _audit, ["delete_user"], actor_id=actor.id, target_id=user_id, client_ip=client_ip
        )
        if actor.id == user_id:
            audit("self")
            raise errors.CannotDeleteSelf
        try:
            user = load_user(session, user_id)
        except errors.UserNotFound:
            audit("not_found")
            raise
        if user.is_superuser and user.is_active:
            try:
                keep_one_superuser(session, user)
            except errors.LastSuperuser:
                audit("last_superuser")
                raise
        delete_account(session, user)
        audit(None)


def _acts(user: User, data: UserUpdate) -> list[str]:
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
    if data.is_verified is not None and data.is_verified != user.is_verified:
        acts.append("verify" if data.is_verified else "unverify")
    if "full_name" in data.model_fields_set and data.full_name != user.full_name:
        acts.append("name_change")
    return acts


def _own_credential_acts(data: UserUpdate) -> list[str]:
    """What a request would do to the credentials of the account that sends it."""
    acts = ["email_change"] if data.email is not None else []
    if data.password is not None:
        acts.append("password_reset")
    if data.is_verified is not None:
        acts.append("verify" if data.is_verified else "unverify")
    return acts


def _audit(
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
