"""Signing up, logging in, and the token lifecycle (refresh, logout)."""

from collections.abc import Sequence
from urllib.parse import parse_qsl

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.domain import errors
from shared.domain.models import User
from shared.domain.schemas import (
    Accepted,
    OAuth2PasswordForm,
    TokenPair,
    UserCreate,
    UserPublic,
    normalize_email,
)
from shared.infrastructure.audit import auth_event
from shared.security.passwords import PasswordHasher
from shared.security.throttle import Throttle
from shared.security.tokens import TokenClaims, TokenCodec
from shared.services.account_mail import AccountMail
from shared.services.pending_signups import PendingSignups
from shared.services.token_store import TokenStore
from shared.services.users import UserService

MAX_FORM_FIELDS = 20  # the grant has four parameters; a client may add a few of its own
NOT_A_FORM = "The request must be application/x-www-form-urlencoded"
# With verified login required, every signup gets this, taken address or not.
SIGNUP_ACCEPTED = Accepted(detail="Check your inbox: we sent you a link to finish signing up")


class AuthService:
    """Who may have tokens, and the tokens' lifecycle; built once per app with what it needs.

    Routes pass only what comes with the request: the session, the validated body, the
    principal and the client's address.
    """

    def __init__(
        self,
        *,
        passwords: PasswordHasher,
        tokens: TokenCodec,
        throttle: Throttle,
        token_store: TokenStore,
        users: UserService,
        mail: AccountMail,
        pending: PendingSignups,
        require_verified: bool,
    ) -> None:
        self._passwords = passwords
        self._tokens = tokens
        self._throttle = throttle
        self._token_store = token_store
        self._users = users
        self._mail = mail
        self._pending = pending
        self._require_verified = require_verified

    def signup(self, *, session: Session, data: UserCreate, client_ip: str) -> User | Accepted:
        """The new account, with a verification link mailed to it; or, when login requires a
        verified address, ``SIGNUP_ACCEPTED`` whatever the address (``_signup_unseen``).

        (Without that requirement the new account's tokens are one login away, so the 409
        has nothing left to hide: README, "Two signup modes".)
        """
        self._users.check_new_password(data.password, email=data.email, field="password")
        if self._require_verified:
            return self._signup_unseen(session, data, client_ip)
        try:
            user = self._users.add_user(session=session, data=data)
        except errors.EmailTaken:
            auth_event("signup", "failure", client_ip=client_ip, email=data.email, reason="taken")
            raise
        self._mail.verification(session, user, client_ip=client_ip)
        session.commit()
        auth_event("signup", "success", client_ip=client_ip, user_id=user.id)
        return user

    def _signup_unseen(self, session: Session, data: UserCreate, client_ip: str) -> Accepted:
        """A signup that tells no one whether the address has an account: the same answer,
        and the same work (a hash, one transaction), for both. A free address gets a link
        that creates the account (pending_signups.py says why not before); a taken one's
        owner, a mail about the attempt (OWASP Authentication cheat sheet)."""
        hashed_password = self._passwords.hash(data.password)
        if session.scalar(select(User.id).where(User.email == data.email)) is not None:
            auth_event("signup", "failure", client_ip=client_ip, email=data.email, reason="taken")
            self._mail.signup_attempt(session, data.email)
        elif self._mail.may_send_verification(data.email, client_ip=client_ip):
            token = self._pending.start(session=session, data=data, hashed_password=hashed_password)
            self._mail.verification_link(session, data.email, token)
            auth_event("signup", "success", client_ip=client_ip, email=data.email, reason="pending")
        session.commit()
        return SIGNUP_ACCEPTED

    def authenticate(self, *, session: Session, email: str, password: str, client_ip: str) -> User:
        """The user these credentials prove, upgrading an outdated password hash on the way.

        Unknown email and wrong password raise the same error after the same amount of
        hashing, and count towards the same lockout, so neither the answer, its timing nor a
        lockout tells whether an account exists.

        The order is lookup, count, verify. The lookup comes first so that an attempt the
        database could not answer (an outage: 503) is never counted: retrying the right
        password through an outage must not lock the account. It is made whether the account
        exists or not, so it costs every attempt the same. The count stays before the password
        check, in one atomic step, so guesses sent at once cannot all pass.
        """
        stored_form = normalize_email(email)
        # Not an address at all: no account to find, but guesses at it are counted all the
        # same. It is not logged either: people type passwords into the username box.
        address, logged = (stored_form, stored_form) if stored_form else (email.casefold(), None)
        user = (
            session.scalar(select(User).where(User.email == stored_form)) if stored_form else None
        )
        try:
            self._throttle.count_login_attempt(address)
        except errors.TooManyRequests:
            auth_event("login", "failure", client_ip=client_ip, email=logged, reason="locked")
            raise
        verification = self._passwords.verify(password, user.hashed_password if user else None)
        if user is None or not verification.ok:
            auth_event("login", "failure", client_ip=client_ip, email=logged, reason="credentials")
            raise errors.InvalidCredentials
        self._throttle.record_success(address)
        if not user.is_active:
            auth_event("login", "failure", client_ip=client_ip, user_id=user.id, reason="inactive")
            raise errors.InactiveUser
        if self._require_verified and not user.is_verified:
            # After the password check: only the account's owner learns it is unverified.
            auth_event(
                "login", "failure", client_ip=client_ip, user_id=user.id, reason="unverified"
            )
            raise errors.EmailNotVerified
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

    def login(self, *, session: Session, email: str, password: str, client_ip: str) -> TokenPair:
        user = self.authenticate(
            session=session, email=email, password=password, client_ip=client_ip
        )
        return self._token_store.issue_pair(session=session, user=user)

    def token_from_form(self, *, session: Session, form: bytes | None, client_ip: str) -> TokenPair:
        """RFC 6749 §4.3 resource owner password grant; errors in §5.2's vocabulary.

        ``form`` is the body as sent, or None when it was not declared
        application/x-www-form-urlencoded (§4.3.2; a multipart body is never parsed). The
        twins call this off any event loop: the parse is bounded, but it is CPU work.
        """
        if form is None:
            raise errors.OAuthError("invalid_request", NOT_A_FORM)
        grant = _password_grant(parse_form(form))
        try:
            return self.login(
                session=session,
                email=grant.username,
                password=grant.password,
                client_ip=client_ip,
            )
        except errors.InvalidCredentials:
            raise errors.OAuthError("invalid_grant", errors.InvalidCredentials.detail) from None
        except (errors.InactiveUser, errors.EmailNotVerified) as refused:
            raise errors.OAuthError("invalid_grant", refused.detail) from None

    def refresh(self, *, session: Session, refresh_token: str, client_ip: str) -> TokenPair:
        """Trade a refresh token for a new pair; replaying a spent one revokes its family."""
        claims = self._tokens.decode(refresh_token, expected_type="refresh")
        record = self._token_store.find(session=session, claims=claims)
        if record.revoked_at is not None:
            self._token_store.revoke_family(
                session=session, family_id=record.family_id, user_id=record.user_id, reason="reuse"
            )
            auth_event(
                "refresh", "failure", client_ip=client_ip, user_id=claims.user_id, reason="reuse"
            )
            raise errors.InvalidToken
        user = session.get(User, claims.user_id)
        if user is None or not user.is_active or user.token_generation != claims.generation:
            raise errors.InvalidToken
        if self._require_verified and not user.is_verified:
            # As at login: an address moved to one not yet proved keeps no session going.
            raise errors.EmailNotVerified
        pair = self._token_store.rotate(session=session, record=record, user=user)
        auth_event("refresh", "success", client_ip=client_ip, user_id=user.id)
        return pair

    def logout(
        self,
        *,
        session: Session,
        actor: UserPublic,
        access: TokenClaims,
        refresh_token: str,
        client_ip: str,
    ) -> None:
        """End the session: the refresh family ``refresh_token`` belongs to, and, at once, the
        access token that made this request (RFC 7009 §2.1 revokes both kinds).

        Both tokens must be of one session: given another session's refresh token, a logout
        would end that one and leave the caller's own session alive."""
        claims = self._tokens.decode(refresh_token, expected_type="refresh")
        if claims.user_id != actor.id or claims.session_id != access.session_id:
            raise errors.InvalidToken
        record = self._token_store.find(session=session, claims=claims)
        self._token_store.revoke_family(
            session=session, family_id=record.family_id, user_id=actor.id, reason="logout"
        )
        self._token_store.deny_access_token(session=session, claims=access)
        auth_event("logout", "success", client_ip=client_ip, user_id=actor.id)


def parse_form(form: bytes) -> list[tuple[str, str]]:
    """The fields of an application/x-www-form-urlencoded body, repeats and empty values
    included: §3.2 forbids repeating a parameter, and a parser that silently kept the first
    or the last one would decide for the client.

    Counted before anything is built: a 1 MiB body of ``a=1&`` is 262,144 fields, which
    frameworks' parsers built in full (0.5 s) before anyone counted them. UTF-8 (Appendix B),
    strictly: a password that does not decode is not silently changed into another one.
    """
    if form.count(b"&") >= MAX_FORM_FIELDS:  # one field more than separators
        raise errors.OAuthError("invalid_request", "Too many parameters")
    try:
        return parse_qsl(form.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise errors.OAuthError("invalid_request", "The form must be UTF-8") from None


def _password_grant(fields: Sequence[tuple[str, str]]) -> OAuth2PasswordForm:
    names = [name for name, _ in fields]
    if len(names) != len(set(names)):
        raise errors.OAuthError("invalid_request", "Parameters must not be repeated")
    try:
        # An empty value is an absent one (§3.1).
        grant = OAuth2PasswordForm.model_validate({k: v for k, v in fields if v})
    except ValidationError:
        raise errors.OAuthError(
            "invalid_request", "username, password and grant_type are required"
        ) from None
    if grant.grant_type != "password":
        raise errors.OAuthError("unsupported_grant_type", "Only the password grant is supported")
    return grant
