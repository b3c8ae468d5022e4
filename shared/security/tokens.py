"""Issuing and checking JWTs: the only module that imports python-jose.

RFC 8725 rules applied here:
- one algorithm, chosen by configuration and never by the token (§3.1): HS256 with the
  secret, or RS256 with a private key whose public half anyone may fetch as a JWKS;
- no key material from the token: a header other than ``alg``, ``typ`` and our own ``kid``
  (``jwk``, ``jku``, ``x5u``, ``x5c``, ``crit``, …) is refused outright (§3.10, RFC 7515 §4.1);
- every claim required, issuer and audience checked (§3.8, §3.9);
- the token's kind checked by both its ``typ`` header (§3.11, RFC 9068) and its ``type``
  claim, so an access token can never pass as a refresh token or the reverse;
- each kind addressed to its own audience (§3.9): access tokens to the API, refresh tokens
  to this service alone, so a resource server that trusts our key (the JWKS) and checks its
  audience refuses a refresh token as any verifier would, without knowing our ``typ``;
- access tokens name the client they were issued to (``client_id``, RFC 9068 §2.2);
- one spelling per token: compact form in canonical base64url only (RFC 7515 §2), so no
  second string for the same signed bytes slips past anything keyed on the token's text.

Every token names its session (``sid``: the refresh family, see models.RefreshToken), which
the bearer lookup checks is still live. Tokens issued before ``sid`` existed are refused:
at that deployment every session ends and its users log in again (access tokens lived 15
minutes anyway; refresh tokens are the cost, accepted for a lookup with no exception).
"""

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt
from jose.exceptions import JOSEError

from shared.domain.errors import InvalidToken
from shared.domain.schemas import MAX_DB_INT

TokenType = Literal["access", "refresh"]
HEADER_TYPES: dict[TokenType, str] = {"access": "at+jwt", "refresh": "rt+jwt"}
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "sub", "jti", "aud", "iss")
ALLOWED_HEADERS = frozenset({"alg", "typ", "kid"})
# Three non-empty segments of the base64url alphabet, nothing else: no padding, no '+' or
# '/', no whitespace; what jose's lenient decoder would otherwise skip or translate.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# A session id as issued (uuid4().hex): the refresh family's, models.RefreshToken.family_id.
SESSION_ID = re.compile(r"[0-9a-f]{32}")
# Decimal without a leading zero (one spelling per id); and the ids this service mints
# (uuid4 hex), with room for another issuer's URL-safe ones.
USER_ID = re.compile(r"[1-9][0-9]{0,9}")
TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    jti: str
    type: TokenType
    # The user's token generation when this was issued; see models.User.token_generation.
    generation: int
    # The session (refresh family) it was issued in; ended with it (services/identity.py).
    session_id: str
    expires_at: datetime


def new_session_id() -> str:
    """The id of a new session: a new login's refresh family (claim ``sid``)."""
    return uuid.uuid4().hex


class SigningKey:
    """The key that signs and the key that verifies, with the one algorithm they allow."""

    def __init__(self, *, secret: str | None = None, private_pem: str | None = None) -> None:
        if private_pem:
            _require_strong_rsa_private_key(private_pem)
            private = jwk.construct(private_pem, algorithm="RS256")
            self.algorithm = "RS256"
            self.sign_with: Any = private_pem
            public = private.public_key()
            self.verify_with: Any = public.to_pem().decode()
            self.public_jwk: dict[str, str] | None = {
                k: str(v) for k, v in public.to_dict().items() if k in {"kty", "n", "e"}
            }
            self.kid: str | None = _thumbprint(self.public_jwk)
        elif secret:
            self.algorithm, self.sign_with, self.verify_with = "HS256", secret, secret
            self.public_jwk, self.kid = None, None
        else:
            raise ValueError("a secret or a private key is required")

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public key set (RFC 7517 §5); empty for HS256, whose key must stay secret."""
        if self.public_jwk is None or self.kid is None:
            return {"keys": []}
        return {"keys": [{**self.public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}


MIN_RSA_BITS = 2048  # RFC 8725 §3.5 defers to NIST SP 800-131A / 800-57: at least 2048


def _require_strong_rsa_private_key(pem: str) -> None:
    """Fail at start-up, with a message, rather than at the first login with a 500."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("the JWT private key must be an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the JWT private key must be an RSA key (RS256)")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the JWT private key must have at least {MIN_RSA_BITS} bits")


def _thumbprint(public_jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint: a ``kid`` that names the key by its content."""
    canonical = json.dumps(
        {name: public_jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenCodec:
    def __init__(
        self,
        *,
        key: SigningKey,
        issuer: str,
        audience: str,
        refresh_audience: str,
        client_id: str,
        access_ttl: timedelta,
        refresh_ttl: timedelta,
        leeway_seconds: int = 0,
    ) -> None:
        if audience == refresh_audience:
            raise ValueError("refresh tokens need an audience of their own")
        self.key = key
        self._leeway = leeway_seconds
        self._issuer = issuer
        self._audience: dict[TokenType, str] = {"access": audience, "refresh": refresh_audience}
        self._client_id = client_id
        self._ttl: dict[TokenType, timedelta] = {"access": access_ttl, "refresh": refresh_ttl}

    @property
    def access_ttl_seconds(self) -> int:
        return int(self._ttl["access"].total_seconds())

    def issue(
        self, *, user_id: int, generation: int, session_id: str, token_type: TokenType
    ) -> IssuedToken:
        """A signed token. Its claims name the user by id only: no email, name or role."""
        now = datetime.now(UTC).replace(microsecond=0)
        jti = uuid.uuid4().hex
        expires_at = now + self._ttl[token_type]
        claims: dict[str, object] = {
            "sub": str(user_id),
            "type": token_type,
            "gen": generation,
            "jti": jti,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "iss": self._issuer,
            "aud": self._audience[token_type],
        }
        if token_type == "access":
            claims["client_id"] = self._client_id
        headers = {"typ": HEADER_TYPES[token_type]}
        if self.key.kid:
            headers["kid"] = self.key.kid
        token = jwt.encode(
            claims, self.key.sign_with, algorithm=self.key.algorithm, headers=headers
        )
        return IssuedToken(token=token, jti=jti, expires_at=expires_at)

    def decode(self, token: str, *, expected_type: TokenType) -> TokenClaims:
        """Verify header, signature, claims and kind; any failure is ``InvalidToken`` (401)."""
        _require_canonical(token)
        try:
            header = jwt.get_unverified_header(token)
            self._check_header(header, expected_type)
            claims = jwt.decode(
                token,
                self.key.verify_with,
                algorithms=[self.key.algorithm],
                audience=self._audience[expected_type],
                issuer=self._issuer,
                # The leeway serves jose's nbf check; _checked_claims checks iat and exp.
                options={f"require_{claim}": True for claim in REQUIRED_CLAIMS}
                | {"leeway": self._leeway},
            )
            return self._checked_claims(claims, expected_type)
        except (JOSEError, ValueError, TypeError, KeyError, AttributeError, OverflowError):
            # jose raises JOSEError for what it anticipates; hostile input has produced the
            # others from inside it (and from our own int()), and they must not become a 500.
            raise InvalidToken from None

    def _check_header(self, header: dict[str, Any], expected_type: TokenType) -> None:
        if not isinstance(header, dict) or set(header) - ALLOWED_HEADERS:
            raise InvalidToken
        if header.get("alg") != self.key.algorithm:
            raise InvalidToken
        # Our kid exactly when we have one: under HS256 even ``"kid": null`` is refused.
        if ("kid" in header) != (self.key.kid is not None) or header.get("kid") != self.key.kid:
            raise InvalidToken
        if header.get("typ") != HEADER_TYPES[expected_type]:
            raise InvalidToken

    def _checked_claims(self, claims: dict[str, Any], expected_type: TokenType) -> TokenClaims:
        _require_well_formed(claims)
        now = datetime.now(UTC).timestamp()
        # jose accepts ``exp == now``; RFC 7519 §4.1.4 says "on or after" is expired, and no
        # leeway is given there: an expiry is when a stolen token stops working, and jose's
        # leeway on it is overridden here. A token is not issued in the future, but another
        # replica's clock may run a little ahead of ours: iat (and nbf, above) get the
        # leeway, seconds, so that its tokens are not refused for the first of them.
        if claims["exp"] <= now or claims["iat"] > now + self._leeway:
            raise InvalidToken
        if claims["type"] != expected_type:
            raise InvalidToken
        # Exactly our audience for this kind: jose also accepts a list that includes it.
        if claims["aud"] != self._audience[expected_type]:
            raise InvalidToken
        if expected_type == "access" and claims["client_id"] != self._client_id:
            raise InvalidToken
        return TokenClaims(
            user_id=int(claims["sub"]),
            jti=claims["jti"],
            type=expected_type,
            generation=claims["gen"],
            session_id=claims["sid"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )


def _require_well_formed(claims: dict[str, Any]) -> None:
    """Each claim in the one form this service issues, or ``InvalidToken``.

    The signature already proves the issuer; this keeps a token minted elsewhere with the key
    (or by a bug) from reaching the database with values it cannot store or compare alike on
    SQLite and PostgreSQL (a NUL or a lone surrogate in ``jti``), or meaning two things
    (``"07"`` and ``"7"`` as ``sub``; ``"0"`` as a time).
    """
    sub, jti, generation, session_id = claims["sub"], claims["jti"], claims["gen"], claims["sid"]
    if not (isinstance(sub, str) and USER_ID.fullmatch(sub) and int(sub) <= MAX_DB_INT):
        raise InvalidToken
    if not (isinstance(jti, str) and TOKEN_ID.fullmatch(jti)):
        raise InvalidToken
    if not (isinstance(session_id, str) and SESSION_ID.fullmatch(session_id)):
        raise InvalidToken
    if type(generation) is not int or not 0 <= generation <= MAX_DB_INT:
        raise InvalidToken
    if any(type(claims[time]) is not int for time in ("exp", "iat", "nbf")):
        raise InvalidToken


def _require_canonical(token: str) -> None:
    """``InvalidToken`` unless ``token`` is the one spelling of its bytes (RFC 7515 §2, app. C).

    jose decodes leniently: it accepts padding, and Python's decoder ignores the unused low
    bits of the last character, so ``...A`` and ``...B`` may be one signature. Each segment
    must therefore re-encode to itself.
    """
    if not COMPACT_JWS.fullmatch(token):
        raise InvalidToken
    for segment in token.split("."):
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError):  # a length no encoding has (4n + 1)
            raise InvalidToken from None
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
            raise InvalidToken
