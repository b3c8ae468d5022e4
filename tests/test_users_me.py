"""/users/me: read, update, change password, delete."""

import httpx2
import pytest

from tests.mailbox import Mailbox
from tests.mails import move_address
from tests.support import (
    PASSWORD,
    Account,
    assert_error,
    assert_unauthorized,
    assert_validation_error,
    sign_up,
    unique_email,
)


def test_read_me(client: httpx2.Client, user: Account) -> None:
    response = client.get("/users/me", headers=user.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["id"] == user.id
    assert response.json()["email"] == user.email


def test_read_me_needs_a_token(client: httpx2.Client) -> None:
    response = client.get("/users/me")
    assert_error(response, 401, "Not authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_update_full_name(client: httpx2.Client, user: Account) -> None:
    response = client.patch("/users/me", json={"full_name": "New Name"}, headers=user.headers)
    assert response.status_code == 200
    assert response.json()["full_name"] == "New Name"
    assert client.get("/users/me", headers=user.headers).json()["full_name"] == "New Name"


def test_full_name_can_be_cleared_and_an_empty_patch_changes_nothing(
    client: httpx2.Client, user: Account
) -> None:
    client.patch("/users/me", json={"full_name": "Someone"}, headers=user.headers)
    assert client.patch("/users/me", json={}, headers=user.headers).json()["full_name"] == "Someone"
    cleared = client.patch("/users/me", json={"full_name": None}, headers=user.headers)
    assert cleared.json()["full_name"] is None


def test_change_email_with_current_password(
    client: httpx2.Client, user: Account, inbox: Mailbox
) -> None:
    """The address moves when the link mailed to it is followed with the account's password;
    the request itself leaves it as it is."""
    new_email = unique_email("moved")
    response = move_address(
        client, inbox, headers=user.headers, password=PASSWORD, email=new_email.upper()
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == new_email
    assert client.get("/users/me", headers=user.headers).json()["email"] == new_email
    assert (
        client.post("/auth/login", json={"email": new_email, "password": PASSWORD}).status_code
        == 200
    )
    old = client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_error(old, 401)


def test_change_email_without_current_password_is_422(client: httpx2.Client, user: Account) -> None:
    response = client.patch("/users/me", json={"email": unique_email()}, headers=user.headers)
    assert_validation_error(response, ["body"])
    assert client.get("/users/me", headers=user.headers).json()["email"] == user.email


def test_change_email_with_wrong_password_is_400(client: httpx2.Client, user: Account) -> None:
    response = client.patch(
        "/users/me",
        json={"email": unique_email(), "current_password": "wrong-password", "full_name": "X"},
        headers=user.headers,
    )
    assert_error(response, 400, "Incorrect password")
    me = client.get("/users/me", headers=user.headers).json()
    assert (me["email"], me["full_name"]) == (user.email, None)  # nothing half-applied


def test_change_email_to_a_taken_one_answers_as_for_a_free_one(
    client: httpx2.Client, user: Account
) -> None:
    """No 409: that would tell whoever asks which addresses have accounts. The change waits
    for a link its owner would have to follow with this account's password."""
    other = sign_up(client)
    response = client.patch(
        "/users/me",
        json={"email": other.email, "current_password": PASSWORD},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user.email
    assert client.get("/users/me", headers=other.headers).json()["email"] == other.email


@pytest.mark.parametrize(
    "body",
    [{"is_superuser": True}, {"is_active": False}, {"id": 999}, {"password": "x" * 10},
     {"full_name": 5}, {"email": "nope", "current_password": PASSWORD}],
    ids=["is_superuser", "is_active", "id", "password", "name-number", "bad-email"],
)  # fmt: skip
def test_self_update_rejects_fields_it_does_not_own(
    client: httpx2.Client, user: Account, body: dict[str, object]
) -> None:
    assert client.patch("/users/me", json=body, headers=user.headers).status_code == 422
    me = client.get("/users/me", headers=user.headers).json()
    assert me["is_superuser"] is False
    assert me["is_active"] is True


def change_password(
    client: httpx2.Client, user: Account, current: str, new: str
) -> httpx2.Response:
    return client.put(
        "/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=user.headers,
    )


def test_change_password(client: httpx2.Client, user: Account) -> None:
    response = change_password(client, user, PASSWORD, "another good password")
    assert response.status_code == 204
    assert response.content == b""
    new_login = {"email": user.email, "password": "another good password"}
    assert client.post("/auth/login", json=new_login).status_code == 200
    old_login = {"email": user.email, "password": PASSWORD}
    assert_error(client.post("/auth/login", json=old_login), 401)


def test_change_password_with_wrong_current_is_400(client: httpx2.Client, user: Account) -> None:
    assert_error(change_password(client, user, "wrong-password", "another good password"), 400)
    login = {"email": user.email, "password": PASSWORD}
    assert client.post("/auth/login", json=login).status_code == 200


@pytest.mark.parametrize("new", ["short", "x" * 129], ids=["too-short", "too-long"])
def test_change_password_validates_the_new_one(
    client: httpx2.Client, user: Account, new: str
) -> None:
    assert_validation_error(change_password(client, user, PASSWORD, new), ["body", "new_password"])


def test_change_password_needs_a_token(client: httpx2.Client) -> None:
    response = client.put(
        "/users/me/password", json={"current_password": PASSWORD, "new_password": "x" * 12}
    )
    assert_unauthorized(response)


def test_delete_me(client: httpx2.Client, user: Account) -> None:
    response = client.delete("/users/me", headers=user.headers)
    assert response.status_code == 204
    assert_unauthorized(client.get("/users/me", headers=user.headers))
    login = {"email": user.email, "password": PASSWORD}
    assert_error(client.post("/auth/login", json=login), 401)
    # The address is free again.
    again = client.post("/auth/signup", json={"email": user.email, "password": PASSWORD})
    assert again.status_code == 201


def test_a_deleted_users_token_never_names_the_next_account(
    client: httpx2.Client, user: Account
) -> None:
    assert client.delete("/users/me", headers=user.headers).status_code == 204
    newcomer = sign_up(client)
    assert newcomer.id != user.id  # ids are never reused
    assert_unauthorized(client.get("/users/me", headers=user.headers))


def test_the_last_superuser_cannot_delete_themself(client: httpx2.Client, admin: Account) -> None:
    response = client.delete("/users/me", headers=admin.headers)
    assert_error(response, 403, "The last active superuser cannot be removed or demoted")
    assert client.get("/users/me", headers=admin.headers).status_code == 200


def test_a_superuser_who_is_not_the_last_can_delete_themself(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    promote = client.patch(f"/users/{user.id}", json={"is_superuser": True}, headers=admin.headers)
    assert promote.json()["is_superuser"] is True
    assert client.delete("/users/me", headers=user.headers).status_code == 204
