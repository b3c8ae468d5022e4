"""Signing up, logging in, and the token lifecycle (refresh, logout)."""

from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared import errors
from shared.audit import auth_event
from shared.models import User
from shared.password_policy import PasswordPolicy
from shared.passwords import PasswordHasher
from shared.schemas import OAuth2PasswordForm, TokenPair, UserCreate, UserPublic, normalize_email
from shared.services import refresh_tokens, users
from shared.throttle import Throttle
from shared.tokens import TokenClaims, TokenCodec


def signup(
    *,
    session: Session,
    passwords: PasswordHasher,
    policy: PasswordPolicy,
    data: UserCreate,
    client_ip: str,
) -> User:
    users.check_new_password(policy, data.password, email=data.email, field="password")
    try:
        user = users.create_user(session=session, passwords=passwords, data=data)
    except errors.EmailTaken:
        auth_event("signup", "failure", client_ip=client_ip, email=data.email, reason="taken")
        raise
    auth_event("signup", "success", client_ip=client_ip, user_id=user.id)
    return user


def authenticate(
    *,
    session: Session,
    passwords: PasswordHasher,
    throttle: Throttle,
    email: str,
    password: str,
    client_ip: str,
) -> User:
    """The user these credentials prove, upgrading an outdated password hash on the way.

    Unknown email and wrong password raise the same error after the same amount of hashing,
    and count towards the same lockout, so neither the answer, its timing nor a lockout tells
    whether an account exists.
    """
    stored_form = normalize_email(email)
    # Not an address at all: no account to find, but guesses at it are counted all the same.
    # It is not logged either: people type passwords into the username box.
    address, logged = (stored_form, stored_form) if stored_form else (email.casefold(), None)
    try:
        throttle.count_login_attempt(address)
    except errors.TooManyRequests:
        auth_event("login", "failure", client_ip=client_ip, email=logged, reason="locked")
        raise
    user = session.scalar(select(User).where(User.email == stored_form)) if stored_form else None
    verification = passwords.verify(password, user.hashed_password if user else None)
    if user is None or not verification.ok:
        auth_event("login", "failure", client_ip=client_ip, email=logged, reason="credentials")
        raise errors.InvalidCredentials
    throttle.record_success(address)
    if not user.is_active:
        auth_event("login", "failure", client_ip=client_ip, user_id=user.id, reason="inactive")
        raise errors.InactiveUser
    if verification.new_hash:
        # Committed with the new refresh token, and only over the hash just verified: a
        # password change that committed meanwhile must not be overwritten with the old one.
        session.execute(
            update(User)
            .where(User.id == user.id, User.hashed_password == user.hashed_password)
            .values(hashed_password=verification.new_hash)
            .execution_options(synchronize_session=False)
        )
    auth_event("login", "success", client_ip=client_ip, user_id=user.id)
    return user


def login(
    *,
    session: Session,
    passwords: PasswordHasher,
    tokens: TokenCodec,
    throttle: Throttle,
    email: str,
    password: str,
    client_ip: str,
) -> TokenPair:
    user = authenticate(
        session=session,
        passwords=passwords,
        throttle=throttle,
        email=email,
        password=password,
        client_ip=client_ip,
    )
    return refresh_tokens.issue_pair(session=session, tokens=tokens, user=user)


MAX_FORM_FIELDS = 20  # the grant has four parameters; a client may add a few of its own


def token_from_form(
    *,
    session: Session,
    passwords: PasswordHasher,
    tokens: TokenCodec,
    throttle: Throttle,
    fields: Sequence[tuple[str, str]],
    client_ip: str,
) -> TokenPair:
    """RFC 6749 §4.3 resource owner password grant; errors in §5.2's vocabulary.

    ``fields`` is the form as sent, repeats included: §3.2 forbids repeating a parameter, and
    frameworks that silently keep the first or the last one would disagree with each other.
    """
    request = _password_grant(fields)
    try:
        return login(
            session=session,
            passwords=passwords,
            tokens=tokens,
            throttle=throttle,
            email=request.username,
            password=request.password,
            client_ip=client_ip,
        )
    except errors.InvalidCredentials:
        raise errors.OAuthError("invalid_grant", errors.InvalidCredentials.detail) from None
    except errors.InactiveUser:
        raise errors.OAuthError("invalid_grant", errors.InactiveUser.detail) from None


def _password_grant(fields: Sequence[tuple[str, str]]) -> OAuth2PasswordForm:
    names = [name for name, _ in fields]
    if len(names) > MAX_FORM_FIELDS:
        raise errors.OAuthError("invalid_request", "Too many parameters")
    if len(names) != len(set(names)):
        raise errors.OAuthError("invalid_request", "Parameters must not be repeated")
    try:
        # An empty value is an absent one (§3.1).
        request = OAuth2PasswordForm.model_validate({k: v for k, v in fields if v})
    except ValidationError:
        raise errors.OAuthError(
            "invalid_request", "username, password and grant_type are required"
        ) from None
    if request.grant_type != "password":
        raise errors.OAuthError("unsupported_grant_type", "Only the password grant is supported")
    return request


def refresh(
    *, session: Session, tokens: TokenCodec, refresh_token: str, client_ip: str
) -> TokenPair:
    """Trade a refresh token for a new pair; replaying a spent one revokes its family."""
    claims = tokens.decode(refresh_token, expected_type="refresh")
    record = refresh_tokens.find(session=session, claims=claims)
    if record.revoked_at is not None:
        refresh_tokens.revoke_family(session=session, family_id=record.family_id)
        auth_event(
            "refresh", "failure", client_ip=client_ip, user_id=claims.user_id, reason="reuse"
        )
        raise errors.InvalidToken
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active or user.token_generation != claims.generation:
        raise errors.InvalidToken
    pair = refresh_tokens.rotate(session=session, tokens=tokens, record=record, user=user)
    auth_event("refresh", "success", client_ip=client_ip, user_id=user.id)
    return pair


def logout(
    *,
    session: Session,
    tokens: TokenCodec,
    actor: UserPublic,
    access: TokenClaims,
    refresh_token: str,
    client_ip: str,
) -> None:
    """End the session: the refresh family ``refresh_token`` belongs to, and, at once, the
    access token that made this request (RFC 7009 §2.1 revokes both kinds)."""
    claims = tokens.decode(refresh_token, expected_type="refresh")
    if claims.user_id != actor.id:
        raise errors.InvalidToken
    record = refresh_tokens.find(session=session, claims=claims)
    refresh_tokens.revoke_family(session=session, family_id=record.family_id)
    refresh_tokens.deny_access_token(session=session, claims=access)
    auth_event("logout", "success", client_ip=client_ip, user_id=actor.id)
