"""Access and refresh tokens: their claims, and every way a bad one must be refused (RFC 8725)."""

import base64
import json
import time
from datetime import datetime, timedelta, tzinfo

import httpx2
import pytest
from jose import jwt
from jose.exceptions import JWTError
from pydantic import ValidationError

from shared.infrastructure.config import Settings
from shared.security import tokens
from tests.conftest import ConfiguredApi
from tests.support import (
    Account,
    Api,
    assert_unauthorized,
    bearer,
    session_of,
    sign_up,
)
from tests.support import forge as forge_token


def decode_unverified(token: str) -> tuple[dict[str, object], dict[str, object]]:
    return jwt.get_unverified_header(token), jwt.get_unverified_claims(token)


def test_access_token_carries_every_required_claim(target: Api, user: Account) -> None:
    header, claims = decode_unverified(user.access_token)
    assert header == {"alg": "HS256", "typ": "at+jwt"}
    # The user's id and nothing personal: no email, name, role or password hash.
    assert set(claims) == {
        "sub", "type", "gen", "jti", "sid", "iat", "nbf", "exp", "iss", "aud", "client_id",
    }  # fmt: skip
    assert claims["nbf"] == claims["iat"]
    assert claims["sub"] == str(user.id)
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 15 * 60  # type: ignore[operator]
    # RFC 9068 §2.2: an access token names the client it was issued to.
    assert claims["client_id"] == target.client_id


def test_refresh_token_is_typed_apart_and_lives_14_days(target: Api, user: Account) -> None:
    header, claims = decode_unverified(user.refresh_token)
    assert header["typ"] == "rt+jwt"
    assert claims["type"] == "refresh"
    assert claims["exp"] - claims["iat"] == 14 * 24 * 3600  # type: ignore[operator]
    assert claims["jti"] != decode_unverified(user.access_token)[1]["jti"]
    # Addressed to this service alone, and of the same session as its access token.
    assert claims["aud"] == target.refresh_audience
    assert claims["aud"] != target.audience
    assert claims["sid"] == session_of(user.access_token)
    assert "client_id" not in claims


def test_each_login_is_a_session_of_its_own(client: httpx2.Client, user: Account) -> None:
    again = client.post("/auth/login", json={"email": user.email, "password": user.password})
    assert session_of(again.json()["access_token"]) != session_of(user.access_token)
    rotated = client.post("/auth/refresh", json={"refresh_token": user.refresh_token}).json()
    assert session_of(rotated["access_token"]) == session_of(user.access_token)
    assert session_of(rotated["refresh_token"]) == session_of(user.access_token)


def test_a_resource_server_refuses_our_refresh_tokens(
    target: Api, user: Account, secret_key: str
) -> None:
    """A third party that trusts our key and its own audience, verifying with plain jose as
    it would: the refresh token is not for it, though the signature and issuer are good."""
    with pytest.raises(JWTError):
        jwt.decode(user.refresh_token, secret_key, algorithms=["HS256"],
                   audience=target.audience, issuer=target.issuer)  # fmt: skip
    claims = jwt.decode(user.access_token, secret_key, algorithms=["HS256"],
                        audience=target.audience, issuer=target.issuer)  # fmt: skip
    assert claims["sub"] == str(user.id)  # the control: access tokens are for it


def test_tokens_are_signed_with_the_configured_key(user: Account, secret_key: str) -> None:
    claims = jwt.decode(
        user.access_token, secret_key, algorithms=["HS256"], audience="authtwin-api",
        issuer="authtwin",
    )  # fmt: skip
    assert claims["sub"] == str(user.id)


@pytest.mark.parametrize(
    "authorization",
    # "Bearer " is "Bearer" on the wire: HTTP strips a field value's trailing whitespace.
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Token abc", "Bearer garbage",
     "Bearer a.b.c", "Bearer " + "A" * 5000],
    ids=["absent", "empty", "scheme-only", "basic", "other-scheme", "garbage",
         "three-garbage-parts", "huge"],
)  # fmt: skip
def test_requests_without_a_usable_bearer_token_are_401(
    client: httpx2.Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_unauthorized(client.get("/users/me", headers=headers))


def forged_cases(secret: str, user_id: int, session: str) -> dict[str, str]:
    """Each case a valid token (of the user's live session) with one thing changed."""
    sub = str(user_id)

    def forge(secret: str, **changes: object) -> str:
        return forge_token(secret, **{"session": session, **changes})  # type: ignore[arg-type]

    return {
        "expired": forge(secret, sub=sub, lifetime=timedelta(seconds=-1)),
        "expires-now": forge(secret, sub=sub, lifetime=timedelta(0)),
        "no-exp": forge(secret, sub=sub, drop=("exp",)),
        "no-sub": forge(secret, sub=sub, drop=("sub",)),
        "no-jti": forge(secret, sub=sub, drop=("jti",)),
        "no-iat": forge(secret, sub=sub, drop=("iat",)),
        "no-iss": forge(secret, sub=sub, drop=("iss",)),
        "no-aud": forge(secret, sub=sub, drop=("aud",)),
        "wrong-iss": forge(secret, sub=sub, issuer="someone-else"),
        "wrong-aud": forge(secret, sub=sub, audience="another-api"),
        "refresh-typed": forge(secret, sub=sub, token_type="refresh", typ="rt+jwt"),
        "refresh-claim-only": forge(
            secret, sub=sub, token_type="refresh", audience="authtwin-api", client_id="authtwin"
        ),
        "refresh-header-only": forge(secret, sub=sub, typ="rt+jwt"),
        "plain-jwt-typ": forge(secret, sub=sub, typ="JWT"),
        "hs384": forge(secret, sub=sub, algorithm="HS384"),
        "hs512": forge(secret, sub=sub, algorithm="HS512"),
        "not-yet-valid": forge(secret, sub=sub, not_before=timedelta(minutes=5)),
        "no-nbf": forge(secret, sub=sub, drop=("nbf",)),
        "no-gen": forge(secret, sub=sub, drop=("gen",)),
        "older-generation": forge(secret, sub=sub, generation=-1),
        "newer-generation": forge(secret, sub=sub, generation=1),
        "gen-not-a-number": forge(secret, sub=sub, generation="0"),
        "no-type": forge(secret, sub=sub, drop=("type",)),
        "jwk-header": forge(secret, sub=sub, headers={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
        "jku-header": forge(secret, sub=sub, headers={"jku": "https://attacker.example/jwks"}),
        "x5u-header": forge(secret, sub=sub, headers={"x5u": "https://attacker.example/cert"}),
        "x5c-header": forge(secret, sub=sub, headers={"x5c": ["MIIB"]}),
        "crit-header": forge(secret, sub=sub, headers={"crit": ["exp"]}),
        "kid-path": forge(secret, sub=sub, headers={"kid": "../../../../dev/null"}),
        "kid-sql": forge(secret, sub=sub, headers={"kid": "' OR '1'='1"}),
        "kid-empty": forge(secret, sub=sub, headers={"kid": ""}),
        "kid-null": forge(secret, sub=sub, headers={"kid": None}),
        "wrong-key": forge("another-key-entirely-another-key-entirely", sub=sub),
        "sub-not-a-number": forge(secret, sub="admin"),
        "sub-negative": forge(secret, sub="-1"),
        "sub-huge": forge(secret, sub="9" * 40),
        "sub-unknown-user": forge(secret, sub="2147483647"),
        "no-sid": forge(secret, sub=sub, drop=("sid",)),
        "sid-unknown": forge(secret, sub=sub, session="0" * 32),
        "sid-not-hex": forge(secret, sub=sub, session="not-a-session-id-not-a-session-id"),
        "sid-a-number": forge(secret, sub=sub, sid=1),
        "refresh-audience": forge(secret, sub=sub, audience="authtwin-refresh"),
        "both-audiences": forge(secret, sub=sub, audience=["authtwin-api", "authtwin-refresh"]),
        "no-client-id": forge(secret, sub=sub, drop=("client_id",)),
        "other-client-id": forge(secret, sub=sub, client_id="someone-else"),
        # Values only a holder of the key could sign, which once reached the database: a NUL
        # (PostgreSQL refuses it: a 500) or a lone surrogate (no driver encodes it).
        "jti-nul": forge(secret, sub=sub, jti="a\x00b"),
        "jti-lone-surrogate": forge(secret, sub=sub, jti="\ud800"),
        "jti-with-a-space": forge(secret, sub=sub, jti="a b"),
        "sub-leading-zero": forge(secret, sub="0" + sub),
        "nbf-a-string": forge(secret, sub=sub, nbf="0"),
        "exp-a-float": forge(secret, sub=sub, exp=time.time() + 300.5),
        "issued-in-the-future": forge(secret, sub=sub, iat=int(time.time()) + 3600),
        # Beyond any leeway for clock skew, which is seconds (AUTHTWIN_JWT_LEEWAY_SECONDS).
        "issued-a-minute-ahead": forge(secret, sub=sub, iat=int(time.time()) + 61),
        "valid-from-a-minute-on": forge(secret, sub=sub, not_before=timedelta(seconds=61)),
    }


FORGED = list(forged_cases("k", 1, "0" * 32))


@pytest.mark.parametrize("case", FORGED)
def test_forged_or_invalid_access_tokens_are_401(
    client: httpx2.Client, user: Account, secret_key: str, case: str
) -> None:
    token = forged_cases(secret_key, user.id, session_of(user.access_token))[case]
    response = client.get("/users/me", headers=bearer(token))
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_correctly_forged_token_is_accepted(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """The control for the cases above: only the changed property made them fail."""
    token = forge_token(secret_key, sub=str(user.id), session=session_of(user.access_token))
    assert client.get("/users/me", headers=bearer(token)).status_code == 200


def test_a_token_minted_a_few_seconds_ahead_is_accepted(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """RFC 7519 §4.1.4's leeway: a replica whose clock runs ahead of this one by a second or
    two issues tokens this one must take, or its users are refused at random."""
    ahead = int(time.time()) + 2
    token = forge_token(secret_key, sub=str(user.id), session=session_of(user.access_token),
                        iat=ahead, nbf=ahead)  # fmt: skip
    assert client.get("/users/me", headers=bearer(token)).status_code == 200


def test_an_expired_token_gets_no_leeway(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """Skew is forgiven where a token starts, never where it ends: an expiry is when a
    stolen token stops working, and the refresh token renews it anyway."""
    token = forge_token(secret_key, sub=str(user.id), session=session_of(user.access_token),
                        lifetime=timedelta(seconds=-1))  # fmt: skip
    assert_unauthorized(client.get("/users/me", headers=bearer(token)))


class ClockAhead(datetime):
    """``datetime`` for a process whose clock runs three seconds ahead of the real one."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> "ClockAhead":
        return cls.fromtimestamp(time.time() + 3, tz)


def test_two_replicas_whose_clocks_differ_take_each_others_tokens(
    configured: ConfiguredApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One database, one key, two apps: the one whose clock is ahead mints, the other
    verifies; then the same with no leeway, which refuses them."""
    ahead, behind, strict = configured(), configured(), configured(jwt_leeway_seconds=0)
    with monkeypatch.context() as clock:
        clock.setattr(tokens, "datetime", ClockAhead)
        user = sign_up(ahead.client)
    assert behind.client.get("/users/me", headers=user.headers).status_code == 200
    refreshed = behind.client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    with monkeypatch.context() as clock:
        clock.setattr(tokens, "datetime", ClockAhead)
        other = sign_up(ahead.client)
    assert_unauthorized(strict.client.get("/users/me", headers=other.headers))


def test_a_token_naming_another_users_session_is_401(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    other = sign_up(client)
    token = forge_token(secret_key, sub=str(user.id), session=session_of(other.access_token))
    assert_unauthorized(client.get("/users/me", headers=bearer(token)))


def b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_unsigned_alg_none_tokens_are_401(client: httpx2.Client, user: Account, alg: str) -> None:
    _, claims = decode_unverified(user.access_token)
    token = f"{b64({'alg': alg, 'typ': 'at+jwt'})}.{b64(claims)}."
    assert_unauthorized(client.get("/users/me", headers=bearer(token)))


def test_tampered_payload_is_401(client: httpx2.Client, user: Account, admin: Account) -> None:
    header, _payload, signature = user.access_token.split(".")
    _, claims = decode_unverified(user.access_token)
    tampered = f"{header}.{b64({**claims, 'sub': str(admin.id)})}.{signature}"
    assert_unauthorized(client.get("/users/me", headers=bearer(tampered)))


def test_refresh_token_is_not_an_access_token(client: httpx2.Client, user: Account) -> None:
    assert_unauthorized(client.get("/users/me", headers=bearer(user.refresh_token)))


def test_access_token_is_not_a_refresh_token(client: httpx2.Client, user: Account) -> None:
    response = client.post("/auth/refresh", json={"refresh_token": user.access_token})
    assert_unauthorized(response)


def test_token_in_the_query_string_is_ignored(client: httpx2.Client, user: Account) -> None:
    """RFC 6750 §2.3 allows it, RFC 8725 and OWASP advise against: URLs end up in logs."""
    response = client.get("/users/me", params={"access_token": user.access_token})
    assert_unauthorized(response)
    assert 'error="invalid_token"' not in response.headers["www-authenticate"]


def test_tokens_of_a_deleted_user_are_401(client: httpx2.Client, user: Account) -> None:
    assert client.delete("/users/me", headers=user.headers).status_code == 204
    response = client.get("/users/me", headers=user.headers)
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert_unauthorized(client.post("/auth/refresh", json={"refresh_token": user.refresh_token}))


def test_tokens_of_a_deactivated_user_are_401(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    client.patch(f"/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    response = client.get("/users/me", headers=user.headers)
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_issuer_and_audience_come_from_settings(target: Api, user: Account) -> None:
    _, claims = decode_unverified(user.access_token)
    assert claims["iss"] == target.issuer
    assert claims["aud"] == target.audience


def test_refresh_tokens_cannot_be_configured_into_the_access_audience() -> None:
    """A deployment setting both audiences alike would make refresh tokens API tokens again."""
    with pytest.raises(ValidationError, match="must differ"):
        Settings(jwt_audience="api", jwt_refresh_audience="api")
