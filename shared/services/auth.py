"""Signing up, logging in, and the token lifecycle (refresh, logout)."""

from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import errors
from shared.models import User
from shared.passwords import PasswordHasher
from shared.schemas import OAuth2PasswordForm, TokenPair, UserCreate, UserPublic, normalize_email
from shared.services import refresh_tokens, users
from shared.tokens import TokenCodec


def signup(*, session: Session, passwords: PasswordHasher, data: UserCreate) -> User:
    return users.create_user(session=session, passwords=passwords, data=data)


def authenticate(*, session: Session, passwords: PasswordHasher, email: str, password: str) -> User:
    """The user these credentials prove, upgrading an outdated password hash on the way.

    Unknown email and wrong password raise the same error after the same amount of hashing,
    so neither the answer nor its timing tells whether an account exists.
    """
    address = normalize_email(email)
    user = session.scalar(select(User).where(User.email == address)) if address else None
    verification = passwords.verify(password, user.hashed_password if user else None)
    if user is None or not verification.ok:
        raise errors.InvalidCredentials
    if not user.is_active:
        raise errors.InactiveUser
    if verification.new_hash:
        user.hashed_password = verification.new_hash  # committed with the new refresh token
    return user


def login(
    *, session: Session, passwords: PasswordHasher, tokens: TokenCodec, email: str, password: str
) -> TokenPair:
    user = authenticate(session=session, passwords=passwords, email=email, password=password)
    return refresh_tokens.issue_pair(session=session, tokens=tokens, user_id=user.id)


MAX_FORM_FIELDS = 20  # the grant has four parameters; a client may add a few of its own


def token_from_form(
    *,
    session: Session,
    passwords: PasswordHasher,
    tokens: TokenCodec,
    fields: Sequence[tuple[str, str]],
) -> TokenPair:
    """RFC 6749 §4.3 resource owner password grant; errors in §5.2's vocabulary.

    ``fields`` is the form as sent, repeats included: §3.2 forbids repeating a parameter, and
    frameworks that silently keep the first or the last one would disagree with each other.
    """
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
    try:
        return login(
            session=session,
            passwords=passwords,
            tokens=tokens,
            email=request.username,
            password=request.password,
        )
    except errors.InvalidCredentials:
        raise errors.OAuthError("invalid_grant", errors.InvalidCredentials.detail) from None
    except errors.InactiveUser:
        raise errors.OAuthError("invalid_grant", errors.InactiveUser.detail) from None


def refresh(*, session: Session, tokens: TokenCodec, refresh_token: str) -> TokenPair:
    """Trade a refresh token for a new pair; replaying a spent one revokes its family."""
    claims = tokens.decode(refresh_token, expected_type="refresh")
    record = refresh_tokens.find(session=session, claims=claims)
    if record.revoked_at is not None:
        refresh_tokens.revoke_family(session=session, family_id=record.family_id)
        raise errors.InvalidToken
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise errors.InvalidToken
    return refresh_tokens.rotate(session=session, tokens=tokens, record=record)


def logout(*, session: Session, tokens: TokenCodec, actor: UserPublic, refresh_token: str) -> None:
    """End the session (refresh family) that ``refresh_token`` belongs to."""
    claims = tokens.decode(refresh_token, expected_type="refresh")
    if claims.user_id != actor.id:
        raise errors.InvalidToken
    record = refresh_tokens.find(session=session, claims=claims)
    refresh_tokens.revoke_family(session=session, family_id=record.family_id)
