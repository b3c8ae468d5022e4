"""POST /auth/refresh (rotation, reuse detection) and POST /auth/logout."""

from datetime import timedelta

import httpx2
from jose import jwt

from tests.support import (
    Account,
    all_at_once,
    assert_error,
    assert_unauthorized,
    bearer,
    forge,
    log_in,
    sign_up,
)


def refresh(client: httpx2.Client, token: str) -> httpx2.Response:
    return client.post("/auth/refresh", json={"refresh_token": token})


def test_refresh_returns_a_new_working_pair(client: httpx2.Client, user: Account) -> None:
    response = refresh(client, user.refresh_token)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    pair = response.json()
    assert pair["token_type"] == "bearer"
    assert pair["refresh_token"] != user.refresh_token
    assert pair["access_token"] != user.access_token
    assert client.get("/users/me", headers=bearer(pair["access_token"])).status_code == 200
    assert refresh(client, pair["refresh_token"]).status_code == 200


def test_a_refresh_token_is_spent_by_use(client: httpx2.Client, user: Account) -> None:
    assert refresh(client, user.refresh_token).status_code == 200
    assert_unauthorized(refresh(client, user.refresh_token))


def test_reusing_a_spent_token_revokes_its_whole_family(
    client: httpx2.Client, user: Account
) -> None:
    successor = refresh(client, user.refresh_token).json()["refresh_token"]
    assert_unauthorized(refresh(client, user.refresh_token))  # replay: a thief, or the victim
    assert_unauthorized(refresh(client, successor))  # so the legitimate chain is cut as well


def test_reuse_revokes_only_that_family(client: httpx2.Client, user: Account) -> None:
    other_login = log_in(client, user.email, user.password)["refresh_token"]
    refresh(client, user.refresh_token)
    refresh(client, user.refresh_token)
    assert refresh(client, other_login).status_code == 200


def test_concurrent_refreshes_with_one_token_succeed_once(
    client: httpx2.Client, user: Account
) -> None:
    statuses = all_at_once(6, lambda: refresh(client, user.refresh_token))
    assert statuses == [200] + [401] * 5


def test_a_refresh_token_re_signed_into_another_session_is_401(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """Its row says which family it belongs to; a token naming another is not one we issued."""
    issued = jwt.get_unverified_claims(user.refresh_token)
    other = log_in(client, user.email, user.password)["refresh_token"]
    token = forge(secret_key, sub=str(user.id), token_type="refresh", typ="rt+jwt",
                  jti=issued["jti"], session=jwt.get_unverified_claims(other)["sid"])  # fmt: skip
    assert_unauthorized(refresh(client, token))


def test_a_refresh_token_for_the_api_audience_is_401(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """Refresh tokens are addressed to this service alone (not to the API's audience)."""
    issued = jwt.get_unverified_claims(user.refresh_token)
    token = forge(secret_key, sub=str(user.id), token_type="refresh", typ="rt+jwt",
                  jti=issued["jti"], session=issued["sid"], audience="authtwin-api")  # fmt: skip
    assert_unauthorized(refresh(client, token))


def test_refresh_with_garbage_is_401(client: httpx2.Client) -> None:
    assert_unauthorized(refresh(client, "not-a-token"))


def test_a_signed_refresh_token_that_was_never_issued_is_401(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """The signature is not enough: a refresh token must also be a live row in the store."""
    token = forge(secret_key, sub=str(user.id), token_type="refresh", typ="rt+jwt")
    assert_unauthorized(refresh(client, token))


def test_an_expired_refresh_token_is_401_though_its_row_is_live(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """The issued token's own ``jti`` (a live row in the store), re-signed as expired: only
    the expiry check can refuse it."""
    issued = jwt.get_unverified_claims(user.refresh_token)
    token = forge(
        secret_key,
        sub=str(user.id),
        token_type="refresh",
        typ="rt+jwt",
        lifetime=timedelta(seconds=-1),
        jti=issued["jti"],
        session=issued["sid"],
    )
    assert_unauthorized(refresh(client, token))
    control = forge(secret_key, sub=str(user.id), token_type="refresh", typ="rt+jwt",
                    jti=issued["jti"], session=issued["sid"])  # fmt: skip
    assert refresh(client, control).status_code == 200


def test_refresh_body_is_validated(client: httpx2.Client) -> None:
    response = client.post("/auth/refresh", json={})
    assert response.status_code == 422


def test_logout_revokes_the_refresh_family(client: httpx2.Client, user: Account) -> None:
    successor = refresh(client, user.refresh_token).json()["refresh_token"]
    response = client.post("/auth/logout", json={"refresh_token": successor}, headers=user.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers  # no body, so no media type (RFC 9110 §8.3)
    assert_unauthorized(refresh(client, successor))


def test_logout_leaves_other_sessions_alone(client: httpx2.Client, user: Account) -> None:
    other = log_in(client, user.email, user.password)["refresh_token"]
    client.post("/auth/logout", json={"refresh_token": user.refresh_token}, headers=user.headers)
    assert refresh(client, other).status_code == 200


def test_logout_needs_a_bearer_token(client: httpx2.Client, user: Account) -> None:
    response = client.post("/auth/logout", json={"refresh_token": user.refresh_token})
    assert_unauthorized(response)
    assert refresh(client, user.refresh_token).status_code == 200


def test_logout_cannot_end_another_users_session(client: httpx2.Client, user: Account) -> None:
    other = sign_up(client)
    response = client.post(
        "/auth/logout", json={"refresh_token": other.refresh_token}, headers=user.headers
    )
    assert_unauthorized(response)
    assert refresh(client, other.refresh_token).status_code == 200


def test_logout_with_an_access_token_as_body_is_401(client: httpx2.Client, user: Account) -> None:
    response = client.post(
        "/auth/logout", json={"refresh_token": user.access_token}, headers=user.headers
    )
    assert_unauthorized(response)


def test_refresh_stops_for_a_deactivated_user(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    client.patch(f"/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    assert_unauthorized(refresh(client, user.refresh_token))


def test_refresh_stops_for_a_deleted_user(client: httpx2.Client, user: Account) -> None:
    assert client.delete("/users/me", headers=user.headers).status_code == 204
    assert_unauthorized(refresh(client, user.refresh_token))


def test_password_change_revokes_every_refresh_token(client: httpx2.Client, user: Account) -> None:
    second = log_in(client, user.email, user.password)["refresh_token"]
    response = client.put(
        "/users/me/password",
        json={"current_password": user.password, "new_password": "a brand new password"},
        headers=user.headers,
    )
    assert response.status_code == 204
    for token in (user.refresh_token, second):
        assert_error(refresh(client, token), 401)
