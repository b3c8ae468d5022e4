"""Issuing and checking JWTs: the only module that imports python-jose.

RFC 8725 rules applied here: one allowed algorithm, every claim required, the token's kind
checked both by its ``typ`` header (RFC 8725 §3.11, RFC 9068) and by its ``type`` claim, so an
access token can never pass as a refresh token or the reverse.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from jose import jwt
from jose.exceptions import JWTError

from shared.errors import InvalidToken
from shared.schemas import MAX_DB_INT

TokenType = Literal["access", "refresh"]
ALGORITHM = "HS256"
HEADER_TYPES: dict[TokenType, str] = {"access": "at+jwt", "refresh": "rt+jwt"}
REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti", "aud", "iss")


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


class TokenCodec:
    def __init__(
        self, *, key: str, issuer: str, audience: str, access_ttl: timedelta, refresh_ttl: timedelta
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl: dict[TokenType, timedelta] = {"access": access_ttl, "refresh": refresh_ttl}

    @property
    def access_ttl_seconds(self) -> int:
        return int(self._ttl["access"].total_seconds())

    def issue(self, *, user_id: int, token_type: TokenType) -> IssuedToken:
        now = datetime.now(UTC)
        jti = uuid.uuid4().hex
        expires_at = now + self._ttl[token_type]
        claims = {
            "sub": str(user_id),
            "type": token_type,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "iss": self._issuer,
            "aud": self._audience,
        }
        token = jwt.encode(
            claims, self._key, algorithm=ALGORITHM, headers={"typ": HEADER_TYPES[token_type]}
        )
        return IssuedToken(token=token, jti=jti, expires_at=expires_at)

    def decode(self, token: str, *, expected_type: TokenType) -> TokenClaims:
        """Verify signature, claims and kind; any failure is ``InvalidToken`` (401)."""
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={f"require_{claim}": True for claim in REQUIRED_CLAIMS},
            )
        except (JWTError, ValueError, TypeError, KeyError, AttributeError):
            # jose raises JWTError for what it anticipates; hostile input has produced the
            # others from inside it, and they must not become a 500.
            raise InvalidToken from None
        return self._checked_claims(header, claims, expected_type)

    def _checked_claims(
        self, header: dict[str, Any], claims: dict[str, Any], expected_type: TokenType
    ) -> TokenClaims:
        # jose accepts ``exp == now``; RFC 7519 §4.1.4 says "on or after" is expired.
        if claims["exp"] <= datetime.now(UTC).timestamp():
            raise InvalidToken
        if header.get("typ") != HEADER_TYPES[expected_type] or claims.get("type") != expected_type:
            raise InvalidToken
        sub, jti = claims["sub"], claims["jti"]
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and isinstance(jti, str)):
            raise InvalidToken
        user_id = int(sub)
        if not 0 < user_id <= MAX_DB_INT:
            raise InvalidToken
        return TokenClaims(user_id=user_id, jti=jti, type=expected_type)
