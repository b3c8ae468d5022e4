"""Ending tokens before they expire (RFC 7009 §2.1, ASVS v5 7.4.1 to 7.4.3).

Logout ends the access token that made the request at once (a ``jti`` denylist that
forgets each entry when the token would have expired anyway) and its refresh family. A
password change or reset ends every token of the user, in every session.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
from jose import jwt
from sqlalchemy import select

from shared.domain.models import RevokedAccessToken, User
from shared.domain.schemas import UserCreate, UserPublic
from shared.runtime import Runtime
from tests.conftest import in_process_settings, migrated_sqlite
from tests.support import Account, all_at_once, assert_unauthorized, bearer, log_in

NEW_PASSWORD = "a brand new password"


def logout(client: httpx2.Client, account: Account) -> httpx2.Response:
    return client.post(
        "/auth/logout", json={"refresh_token": account.refresh_token}, headers=account.headers
    )


def refresh(client: httpx2.Client, token: str) -> httpx2.Response:
    return client.post("/auth/refresh", json={"refresh_token": token})


def other_session(client: httpx2.Client, user: Account) -> Account:
    tokens = log_in(client, user.email, user.password)
    return Account(user.id, user.email, user.password, tokens["access_token"],
                   tokens["refresh_token"])  # fmt: skip


def test_logout_ends_the_presented_access_token_at_once(
    client: httpx2.Client, user: Account
) -> None:
    assert logout(client, user).status_code == 204
    response = client.get("/users/me", headers=user.headers)
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert_unauthorized(refresh(client, user.refresh_token))


def test_logging_out_twice_is_401(client: httpx2.Client, user: Account) -> None:
    assert logout(client, user).status_code == 204
    assert_unauthorized(logout(client, user))


def test_logout_leaves_the_users_other_sessions_working(
    client: httpx2.Client, user: Account
) -> None:
    second = other_session(client, user)
    assert logout(client, user).status_code == 204
    assert client.get("/users/me", headers=second.headers).status_code == 200
    assert refresh(client, second.refresh_token).status_code == 200


def change_password(client: httpx2.Client, user: Account) -> httpx2.Response:
    return client.put(
        "/users/me/password",
        json={"current_password": user.password, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )


def test_password_change_ends_every_token_of_every_session(
    client: httpx2.Client, user: Account
) -> None:
    second = other_session(client, user)
    assert change_password(client, user).status_code == 204
    for session in (user, second):
        assert_unauthorized(client.get("/users/me", headers=session.headers))
        assert_unauthorized(refresh(client, session.refresh_token))
    fresh = log_in(client, user.email, NEW_PASSWORD)
    assert client.get("/users/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_password_reset_by_an_admin_ends_every_token(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    response = client.patch(
        f"/users/{user.id}", json={"password": NEW_PASSWORD}, headers=admin.headers
    )
    assert response.status_code == 200
    assert "password" not in response.text
    assert_unauthorized(client.get("/users/me", headers=user.headers))
    assert_unauthorized(refresh(client, user.refresh_token))
    old = client.post("/auth/login", json={"email": user.email, "password": user.password})
    assert old.status_code == 401
    assert log_in(client, user.email, NEW_PASSWORD)["access_token"]


def test_other_changes_by_an_admin_end_no_tokens(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    client.patch(f"/users/{user.id}", json={"full_name": "Renamed"}, headers=admin.headers)
    assert client.get("/users/me", headers=user.headers).status_code == 200


def test_tokens_issued_after_a_password_change_work_at_once(
    client: httpx2.Client, user: Account
) -> None:
    """Revocation by generation, not by time: a login in the same second is not caught."""
    assert change_password(client, user).status_code == 204
    for _ in range(3):
        fresh = log_in(client, user.email, NEW_PASSWORD)
        assert client.get("/users/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_denylist_entries_expire_with_their_token(tmp_path: Path) -> None:
    """A logout's denylist row lives as long as the token would have; later logouts purge
    the rows of tokens that have expired, so the table stays small."""
    settings = in_process_settings(
        migrated_sqlite(tmp_path / "deny.db"), first_superuser_email=None
    )
    runtime = Runtime.build(settings)
    runtime.prepare()
    email, password = "deny@example.com", "a fine long password"

    def log_in_and_out() -> str:
        with runtime.sessions() as session:
            pair = runtime.auth.login(session=session, email=email, password=password,
                                      client_ip="192.0.2.1")  # fmt: skip
            access = runtime.tokens.decode(pair.access_token, expected_type="access")
            me = UserPublic.model_validate(session.get(User, access.user_id))
            runtime.auth.logout(session=session, actor=me, access=access,
                                refresh_token=pair.refresh_token,
                                client_ip="192.0.2.1")  # fmt: skip
            exp = jwt.get_unverified_claims(pair.access_token)["exp"]
            row = session.get(RevokedAccessToken, access.jti)
            assert row is not None
            assert row.expires_at == datetime.fromtimestamp(exp, UTC)
            return access.jti

    with runtime.sessions() as session:
        runtime.users.create_user(session=session,
                                  data=UserCreate(email=email, password=password))  # fmt: skip
    first = log_in_and_out()
    with runtime.sessions() as session:
        row = session.get(RevokedAccessToken, first)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    second = log_in_and_out()
    with runtime.sessions() as session:
        remaining = set(session.scalars(select(RevokedAccessToken.jti)))
    assert remaining == {second}
    runtime.dispose()


def test_two_logouts_with_one_access_token_at_once_never_fail(
    client: httpx2.Client, user: Account
) -> None:
    second = other_session(client, user)
    bodies = iter([user.refresh_token, second.refresh_token])

    def log_out() -> httpx2.Response:
        body = {"refresh_token": next(bodies)}
        return client.post("/auth/logout", json=body, headers=user.headers)

    statuses = all_at_once(2, log_out)
    assert statuses in ([204, 204], [204, 401])
    assert_unauthorized(client.get("/users/me", headers=user.headers))
