"""The API contract as pydantic models: what comes in, what goes out."""

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from shared.domain.errors import RequestValidationFailed
from shared.domain.models import NAME_MAX_LENGTH

PASSWORD_MIN_LENGTH = 8  # NIST SP 800-63B §3.1.1.2; no composition rules.
PASSWORD_MAX_LENGTH = 128
MAX_DB_INT = 2**31 - 1  # PostgreSQL ``integer``; larger ids or offsets would fail in the driver.


def _encodable(value: str) -> str:
    """Reject lone surrogates: JSON allows them, but no database or hash can encode them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("Input should be valid Unicode text") from None
    return value


def _printable(value: str) -> str:
    """Names are shown to people: no NUL (PostgreSQL rejects it) or other control characters."""
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError("Input should not contain control characters")
    return value


# email-validator normalises the domain; lower-casing the whole address makes uniqueness
# case-insensitive (RFC 5321 lets local parts differ by case, but no mail provider does).
Email = Annotated[EmailStr, AfterValidator(str.lower)]
NewPassword = Annotated[
    str,
    Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH),
    AfterValidator(_encodable),
]
# A password being checked, not chosen: old accounts may predate today's minimum.
GivenPassword = Annotated[
    str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH), AfterValidator(_encodable)
]
FullName = Annotated[
    str, Field(max_length=NAME_MAX_LENGTH), AfterValidator(_encodable), AfterValidator(_printable)
]
UserId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]


# More members than any request body of the contract has (five at most), with room to spare.
# Past it, a body is refused whole: validated, 87,000 tiny keys in a 1 MiB body were 87,000
# "extra_forbidden" errors, an 8 MB answer built in over a second of CPU, on FastAPI's event
# loop, before any rate limit was counted.
MAX_BODY_MEMBERS = 32


def check_body_members(payload: object) -> None:
    """422 for a JSON object of more than ``MAX_BODY_MEMBERS`` members, before validation."""
    if isinstance(payload, dict) and len(payload) > MAX_BODY_MEMBERS:
        raise RequestValidationFailed(
            [
                {
                    "type": "too_many_members",
                    "loc": ["body"],
                    "msg": f"Body must have at most {MAX_BODY_MEMBERS} members",
                }
            ]
        )


class Input(BaseModel):
    """Request bodies: unknown fields are an error, so no one can mass-assign ``is_superuser``.

    Strict, too: a JSON body carries its own types, so a value is taken only as the type the
    contract declares. Lax mode would read ``0``, ``"off"`` and ``"yes"`` as booleans and
    ``"5"`` as a number, accepting requests the published schema calls invalid, on a
    privilege flag among others. (Query and path values are text on the wire and keep their
    documented parsing: ``PageParams`` is not an ``Input``.)
    """

    model_config = ConfigDict(extra="forbid", strict=True)


class UserCreate(Input):
    email: Email
    password: NewPassword
    full_name: FullName | None = None


class LoginRequest(Input):
    email: Email
    password: GivenPassword


class RefreshRequest(Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class UserUpdateMe(Input):
    full_name: FullName | None = None
    email: Email | None = Field(
        default=None,
        description=(
            "A new address for the account. Nothing changes yet: a link is mailed to it, "
            "which moves the account there (verified) once followed with this account's "
            "password (POST /auth/verify). The answer is the same whether the address is "
            "free or taken, and shows the address the account still has. The account's own "
            "address takes back a change still pending."
        ),
    )
    current_password: GivenPassword | None = None

    @model_validator(mode="after")
    def _email_change_needs_password(self) -> Self:
        """ASVS v5 7.5.1: re-authenticate before changing the address that recovers the account."""
        if self.email is not None and self.current_password is None:
            raise ValueError("current_password is required to change the email address")
        return self


class PasswordChange(Input):
    current_password: GivenPassword
    new_password: NewPassword


class UserUpdate(Input):
    """What a superuser may change on any account."""

    full_name: FullName | None = None
    email: Email | None = None
    # A reset by an administrator: ends every session of the user, like a change does.
    password: NewPassword | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None
    is_verified: bool | None = None


# secrets.token_urlsafe(32) gives 43 characters; anything much longer is not ours.
OneTimeTokenText = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_encodable)]


class PasswordResetRequest(Input):
    email: Email


class PasswordResetConfirm(Input):
    token: OneTimeTokenText
    new_password: NewPassword


class EmailVerification(Input):
    token: OneTimeTokenText
    # For a link that finishes a signup (AUTHTWIN_REQUIRE_VERIFIED_LOGIN): the password chosen
    # at signup, so a link from someone else's signup with this address, followed by the
    # address's owner, cannot create an account with that someone's password. For a link
    # that moves an account: that account's, so the address's owner cannot move a stranger's
    # account to their own address by following it.
    password: GivenPassword | None = Field(
        default=None,
        description=(
            "For a link that finishes a signup: the password chosen at signup. For a link "
            "that moves an account to a new address: that account's password. Without it "
            "such a link answers 422; with another, 400, and the link keeps working. Other "
            "links need none."
        ),
    )


class SocketAuth(Input):
    """The first message on ``/ws``: the credential, never in the URL (where logs keep it),
    and where to resume from, as ``Last-Event-ID`` says on the event stream."""

    type: Literal["auth"]
    access_token: Annotated[str, Field(min_length=1, max_length=4096)]
    last_event_id: Annotated[str, Field(max_length=20)] | None = None


class PageParams(BaseModel):
    offset: int = Field(default=0, ge=0, le=MAX_DB_INT)
    limit: int = Field(default=50, ge=1, le=100)


class OAuth2PasswordForm(BaseModel):
    """RFC 6749 §4.3.2 form; ``username`` carries the email."""

    grant_type: str  # REQUIRED by RFC 6749; any value but "password" is unsupported_grant_type
    username: Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH * 4)]
    password: GivenPassword
    scope: str = ""


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    is_verified: bool
    created_at: datetime


class UserPage(BaseModel):
    items: list[UserPublic]
    total: int
    offset: int
    limit: int


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class Accepted(BaseModel):
    """202: the request is taken; what follows happens by mail."""

    detail: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorResponse(BaseModel):
    detail: str


class OAuthErrorResponse(BaseModel):
    """RFC 6749 §5.2: how the token endpoint says no."""

    error: Literal["invalid_request", "invalid_grant", "unsupported_grant_type"]
    error_description: str


class JsonWebKey(BaseModel):
    """An RSA public key (RFC 7517 §4, RFC 7518 §6.3.1): all a verifier needs."""

    kty: Literal["RSA"]
    n: str
    e: str
    kid: str
    use: Literal["sig"]
    alg: Literal["RS256"]


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey]


_email_adapter: TypeAdapter[str] = TypeAdapter(Email)


def normalize_email(raw: str) -> str | None:
    """The stored form of an address, or None if it is not one (lookups then find no user)."""
    try:
        return _email_adapter.validate_python(raw)
    except ValidationError:
        return None
