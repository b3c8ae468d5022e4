"""Optional RS256 signing and its public key set (RFC 7517, RFC 8725 §2.1 / §3.1).

With a private key configured, tokens are signed with it and anyone can verify them from
``/.well-known/jwks.json``; no token signed any other way — least of all an HS256 token
"signed" with the public key (the classic key-confusion attack) — is accepted.
"""

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt
from jose.exceptions import JWTError

from shared.infrastructure.config import Settings
from shared.security.sealing import Seal, sealing_secret
from shared.security.tokens import SigningKey
from tests.conftest import ConfiguredApi
from tests.support import Account, Api, assert_unauthorized, bearer, session_of, sign_up


@cache
def private_pem(name: str = "ours", bits: int = 2048) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(private: str) -> str:
    key = serialization.load_pem_private_key(private.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(user: Account) -> dict[str, Any]:
    """A valid access token's claims, of ``user``'s live session."""
    now = int(datetime.now(UTC).timestamp())
    return {
        "sub": str(user.id), "type": "access", "gen": 0, "jti": uuid.uuid4().hex,
        "sid": session_of(user.access_token), "iat": now, "nbf": now, "exp": now + 300,
        "iss": "authtwin", "aud": "authtwin-api", "client_id": "authtwin",
    }  # fmt: skip


def hs256_by_hand(key: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """HMAC-signed without jose, which (rightly) refuses a PEM key as an HMAC secret."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def rs256(configured: ConfiguredApi) -> Api:
    return configured(jwt_private_key=private_pem())


def published_keys(client: httpx2.Client) -> list[dict[str, Any]]:
    # At the server's root, outside the /api/v1 the client is rooted at.
    response = client.get(client.base_url.copy_with(path="/.well-known/jwks.json"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    keys: list[dict[str, Any]] = response.json()["keys"]
    return keys


def test_hs256_publishes_an_empty_key_set(client: httpx2.Client) -> None:
    assert published_keys(client) == []


def test_rs256_tokens_verify_with_the_published_key_alone(rs256: Api) -> None:
    user = sign_up(rs256.client)
    [key] = published_keys(rs256.client)
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)  # nothing private
    header = jwt.get_unverified_header(user.access_token)
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": key["kid"]}
    claims = jwt.decode(
        user.access_token,
        jwk.construct(key),
        algorithms=["RS256"],
        audience="authtwin-api",
        issuer="authtwin",
    )
    assert claims["sub"] == str(user.id)
    assert rs256.client.get("/users/me", headers=user.headers).status_code == 200


def test_a_resource_server_with_the_published_key_refuses_refresh_tokens(rs256: Api) -> None:
    """What a third-party API trusting our JWKS does (plain jose, its own audience): our
    access tokens pass, our refresh tokens do not, though signed with the same key."""
    user = sign_up(rs256.client)
    [key] = published_keys(rs256.client)
    verify = {"algorithms": ["RS256"], "audience": "authtwin-api", "issuer": "authtwin"}
    assert jwt.decode(user.access_token, jwk.construct(key), **verify)["sub"] == str(user.id)
    with pytest.raises(JWTError):
        jwt.decode(user.refresh_token, jwk.construct(key), **verify)


def test_rs256_refresh_and_logout_work(rs256: Api) -> None:
    user = sign_up(rs256.client)
    refreshed = rs256.client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json()["refresh_token"])["alg"] == "RS256"


def test_a_token_signed_with_our_key_by_hand_is_accepted(rs256: Api) -> None:
    """The control for the cases below: only the changed property made them fail."""
    user = sign_up(rs256.client)
    kid = published_keys(rs256.client)[0]["kid"]
    token = jwt.encode(claims_for(user), private_pem(), algorithm="RS256",
                       headers={"typ": "at+jwt", "kid": kid})  # fmt: skip
    assert rs256.client.get("/users/me", headers=bearer(token)).status_code == 200


def test_key_confusion_hs256_signed_with_the_public_key_is_401(rs256: Api) -> None:
    user = sign_up(rs256.client)
    kid = published_keys(rs256.client)[0]["kid"]
    public = public_pem(private_pem()).encode()
    for header in (
        {"alg": "HS256", "typ": "at+jwt"},
        {"alg": "HS256", "typ": "at+jwt", "kid": kid},
    ):
        token = hs256_by_hand(public, header, claims_for(user))
        assert_unauthorized(rs256.client.get("/users/me", headers=bearer(token)))


def test_rs256_app_refuses_hs256_even_with_its_own_secret(rs256: Api) -> None:
    user = sign_up(rs256.client)
    assert rs256.secret_key
    token = jwt.encode(claims_for(user), rs256.secret_key, algorithm="HS256",
                       headers={"typ": "at+jwt"})  # fmt: skip
    assert_unauthorized(rs256.client.get("/users/me", headers=bearer(token)))


def test_rs256_token_from_another_key_is_401_even_with_our_kid(rs256: Api) -> None:
    user = sign_up(rs256.client)
    kid = published_keys(rs256.client)[0]["kid"]
    token = jwt.encode(
        claims_for(user), private_pem("theirs"), algorithm="RS256",
        headers={"typ": "at+jwt", "kid": kid},
    )  # fmt: skip
    assert_unauthorized(rs256.client.get("/users/me", headers=bearer(token)))


def test_rs256_token_with_an_embedded_jwk_is_401(rs256: Api) -> None:
    """RFC 8725 §3.10: a key carried in the token proves nothing about who signed it."""
    user = sign_up(rs256.client)
    attacker = private_pem("theirs")
    embedded = jwk.construct(public_pem(attacker), algorithm="RS256").to_dict()
    token = jwt.encode(claims_for(user), attacker, algorithm="RS256",
                       headers={"typ": "at+jwt", "jwk": embedded})  # fmt: skip
    assert_unauthorized(rs256.client.get("/users/me", headers=bearer(token)))


def test_an_expired_rs256_token_is_401(rs256: Api) -> None:
    user = sign_up(rs256.client)
    kid = published_keys(rs256.client)[0]["kid"]
    claims = {**claims_for(user), "exp": int((datetime.now(UTC) - timedelta(1)).timestamp())}
    token = jwt.encode(claims, private_pem(), algorithm="RS256",
                       headers={"typ": "at+jwt", "kid": kid})  # fmt: skip
    assert_unauthorized(rs256.client.get("/users/me", headers=bearer(token)))


def ec_private_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    ("make_pem", "message"),
    [
        (lambda: private_pem("weak", bits=1024), "at least 2048 bits"),
        (lambda: public_pem(private_pem()), "PEM private key"),
        (ec_private_pem, "must be an RSA key"),
        (lambda: "not a key", "PEM private key"),
    ],
    ids=["rsa-1024", "public-key", "ec-key", "garbage"],
)
def test_an_unusable_private_key_stops_the_app_at_start_up(
    make_pem: Callable[[], str], message: str
) -> None:
    """Refused when the app is built, with a reason, not at the first login with a 500."""
    with pytest.raises(ValueError, match=message):
        SigningKey(private_pem=make_pem())


def test_mail_sealed_under_an_rs256_key_opens_wherever_the_key_is_given(tmp_path: Path) -> None:
    """Servers and ``authtwin deliver-mail`` may be given one key in two ways: a file (its
    PEM ending in a newline) and a variable (stripped). The same key seals alike, or every
    waiting message would be given up as sealed with another key."""
    key_file = tmp_path / "key.pem"
    key_file.write_text(private_pem() + "\n")
    from_file = Settings(env="development", jwt_private_key_file=key_file)
    from_variable = Settings(env="development", jwt_private_key=private_pem().strip())
    sealed = Seal(secret=sealing_secret(from_file)).seal("a link", bound_to="kind:addr")
    assert Seal(secret=sealing_secret(from_variable)).open(sealed, bound_to="kind:addr") == (
        "a link"
    )
