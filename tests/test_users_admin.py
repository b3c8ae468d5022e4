"""/users and /users/{id}: administration by superusers, and what ordinary users may not do."""

from typing import Any

import httpx2
import pytest

from tests.conftest import ConfiguredApi
from tests.support import (
    Account,
    all_at_once,
    assert_error,
    assert_unauthorized,
    assert_validation_error,
    bearer,
    log_in,
    sign_up,
    unique_email,
)


def list_users(client: httpx2.Client, admin: Account, **params: int) -> dict[str, Any]:
    response = client.get("/users", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def test_list_users_pages_in_id_order(client: httpx2.Client, admin: Account) -> None:
    created = [sign_up(client).id for _ in range(3)]
    total = list_users(client, admin, limit=1)["total"]
    assert total >= 4  # the three above and the superuser
    newest = list_users(client, admin, offset=total - 3, limit=3)
    assert set(newest) == {"items", "total", "offset", "limit"}
    assert (newest["total"], newest["offset"], newest["limit"]) == (total, total - 3, 3)
    assert [item["id"] for item in newest["items"]] == created
    first_two = [item["id"] for item in list_users(client, admin, limit=2)["items"]]
    next_two = [item["id"] for item in list_users(client, admin, offset=2, limit=2)["items"]]
    ids = first_two + next_two
    assert len(ids) == 4
    assert ids == sorted(set(ids))
    assert list_users(client, admin, offset=total, limit=5)["items"] == []


def test_list_users_defaults(client: httpx2.Client, admin: Account) -> None:
    page = client.get("/users", headers=admin.headers).json()
    assert (page["offset"], page["limit"]) == (0, 50)


@pytest.mark.parametrize(
    ("params", "location"),
    [({"limit": 101}, ["query", "limit"]), ({"limit": 0}, ["query", "limit"]),
     ({"limit": "ten"}, ["query", "limit"]), ({"offset": -1}, ["query", "offset"]),
     ({"offset": "1e3"}, ["query", "offset"]), ({"offset": 2**31}, ["query", "offset"])],
    ids=["limit-over-100", "limit-zero", "limit-word", "offset-negative", "offset-float",
         "offset-huge"],
)  # fmt: skip
def test_list_users_rejects_bad_paging(
    client: httpx2.Client, admin: Account, params: dict[str, Any], location: list[str]
) -> None:
    response = client.get("/users", params=params, headers=admin.headers)
    assert_validation_error(response, location)


def test_a_repeated_query_parameter_counts_by_its_last_value(
    client: httpx2.Client, admin: Account
) -> None:
    ok = client.get("/users?limit=200&limit=1", headers=admin.headers)
    assert ok.status_code == 200
    assert ok.json()["limit"] == 1
    bad = client.get("/users?limit=1&limit=200", headers=admin.headers)
    assert_validation_error(bad, ["query", "limit"])


def test_bad_path_and_bad_body_are_reported_together(client: httpx2.Client, admin: Account) -> None:
    response = client.patch("/users/abc", json={"bogus": 1}, headers=admin.headers)
    assert_validation_error(response, ["path", "user_id"], ["body", "bogus"])


def test_list_users_is_for_superusers(client: httpx2.Client, user: Account) -> None:
    assert_error(client.get("/users", headers=user.headers), 403, "Not enough privileges")
    assert_unauthorized(client.get("/users"))


def test_users_read_themselves_by_id(client: httpx2.Client, user: Account) -> None:
    response = client.get(f"/users/{user.id}", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["email"] == user.email


def test_users_cannot_read_others(client: httpx2.Client, user: Account, admin: Account) -> None:
    assert_error(client.get(f"/users/{admin.id}", headers=user.headers), 403)
    # Unknown ids answer the same, so ids do not reveal which accounts exist.
    assert_error(client.get("/users/2147483647", headers=user.headers), 403)


def test_superusers_read_anyone(client: httpx2.Client, user: Account, admin: Account) -> None:
    response = client.get(f"/users/{user.id}", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["id"] == user.id


def test_unknown_user_is_404_for_superusers(client: httpx2.Client, admin: Account) -> None:
    assert_error(client.get("/users/2147483647", headers=admin.headers), 404, "User not found")


@pytest.mark.parametrize("raw_id", ["abc", "0", "-5", "1.5", "99999999999"])
def test_malformed_user_ids_are_422(client: httpx2.Client, admin: Account, raw_id: str) -> None:
    response = client.get(f"/users/{raw_id}", headers=admin.headers)
    assert_validation_error(response, ["path", "user_id"])


def test_read_user_needs_a_token(client: httpx2.Client, user: Account) -> None:
    assert_unauthorized(client.get(f"/users/{user.id}"))


def test_superuser_updates_a_user(client: httpx2.Client, admin: Account, user: Account) -> None:
    new_email = unique_email("renamed")
    response = client.patch(
        f"/users/{user.id}",
        json={"full_name": "Renamed", "email": new_email, "is_superuser": True},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["full_name"], body["email"], body["is_superuser"]) == ("Renamed", new_email, True)
    client.patch(f"/users/{user.id}", json={"is_superuser": False}, headers=admin.headers)


def test_deactivation_ends_every_token_for_good(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    """ASVS v5 7.4.2: disabling an account terminates its sessions; reactivating does not
    bring them back, the user logs in again."""
    assert client.get("/users/me", headers=user.headers).status_code == 200
    client.patch(f"/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    assert_unauthorized(client.get("/users/me", headers=user.headers))
    client.patch(f"/users/{user.id}", json={"is_active": True}, headers=admin.headers)
    assert_unauthorized(client.get("/users/me", headers=user.headers))
    refreshed = client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_unauthorized(refreshed)
    fresh = log_in(client, user.email, user.password)
    assert client.get("/users/me", headers=bearer(fresh["access_token"])).status_code == 200


def test_update_user_to_a_taken_email_is_409(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    response = client.patch(f"/users/{user.id}", json={"email": admin.email}, headers=admin.headers)
    assert_error(response, 409)


@pytest.mark.parametrize(
    "body",
    [{"is_active": "maybe"}, {"email": "not-an-email"}, {"password": "short"},
     {"id": 7}, {"full_name": "x" * 256}],
    ids=["bool-word", "bad-email", "short-password", "id", "name-too-long"],
)  # fmt: skip
def test_update_user_validates_the_body(
    client: httpx2.Client, admin: Account, user: Account, body: dict[str, object]
) -> None:
    response = client.patch(f"/users/{user.id}", json=body, headers=admin.headers)
    assert response.status_code == 422


def test_update_unknown_user_is_404(client: httpx2.Client, admin: Account) -> None:
    response = client.patch("/users/2147483647", json={"full_name": "x"}, headers=admin.headers)
    assert_error(response, 404)


def test_update_user_is_for_superusers(client: httpx2.Client, user: Account) -> None:
    response = client.patch(f"/users/{user.id}", json={"is_superuser": True}, headers=user.headers)
    assert_error(response, 403)
    assert client.get("/users/me", headers=user.headers).json()["is_superuser"] is False


@pytest.mark.parametrize("change", [{"is_superuser": False}, {"is_active": False}])
def test_the_last_superuser_cannot_be_demoted(
    client: httpx2.Client, admin: Account, change: dict[str, bool]
) -> None:
    response = client.patch(f"/users/{admin.id}", json=change, headers=admin.headers)
    assert_error(response, 403)
    me = client.get("/users/me", headers=admin.headers).json()
    assert (me["is_superuser"], me["is_active"]) == (True, True)


def test_superuser_deletes_a_user(client: httpx2.Client, admin: Account, user: Account) -> None:
    response = client.delete(f"/users/{user.id}", headers=admin.headers)
    assert response.status_code == 204
    assert_error(client.get(f"/users/{user.id}", headers=admin.headers), 404)
    assert_unauthorized(client.get("/users/me", headers=user.headers))


def test_superuser_cannot_delete_themself_by_id(client: httpx2.Client, admin: Account) -> None:
    assert_error(client.delete(f"/users/{admin.id}", headers=admin.headers), 403)


def test_delete_unknown_user_is_404(client: httpx2.Client, admin: Account) -> None:
    assert_error(client.delete("/users/2147483647", headers=admin.headers), 404)


def test_delete_user_is_for_superusers(
    client: httpx2.Client, user: Account, admin: Account
) -> None:
    assert_error(client.delete(f"/users/{admin.id}", headers=user.headers), 403)
    assert_unauthorized(client.delete(f"/users/{admin.id}"))


def two_superusers(configured: ConfiguredApi) -> tuple[httpx2.Client, Account, Account]:
    """An app of its own whose only superusers are the first one and a promoted user.

    In-process only: one of the two is demoted or deleted, which a live server's later
    tests (which log in as its configured superuser) could not survive.
    """
    api = configured()
    assert api.admin_email
    assert api.admin_password
    tokens = log_in(api.client, api.admin_email, api.admin_password)
    me = api.client.get("/users/me", headers=bearer(tokens["access_token"])).json()
    admin = Account.of(me, api.admin_password, tokens)
    user = sign_up(api.client)
    promote = api.client.patch(
        f"/users/{user.id}", json={"is_superuser": True}, headers=admin.headers
    )
    assert promote.status_code == 200
    return api.client, admin, user


def test_two_superusers_demoting_each_other_at_once_leave_one(configured: ConfiguredApi) -> None:
    """The last-superuser rule holds under a race: the checks take turns."""
    client, admin, user = two_superusers(configured)
    pairs = iter([(admin, user), (user, admin)])

    def demote() -> httpx2.Response:
        actor, other = next(pairs)
        return client.patch(f"/users/{other.id}", json={"is_superuser": False},
                            headers=actor.headers)  # fmt: skip

    assert all_at_once(2, demote) == [200, 403]
    remaining = list_users(client, admin if is_superuser(client, admin) else user)
    assert sum(item["is_superuser"] for item in remaining["items"]) == 1


def is_superuser(client: httpx2.Client, account: Account) -> bool:
    me: dict[str, Any] = client.get("/users/me", headers=account.headers).json()
    return bool(me["is_superuser"])


def test_two_superusers_deleting_each_other_at_once_leave_one(configured: ConfiguredApi) -> None:
    client, admin, user = two_superusers(configured)
    pairs = iter([(admin, user), (user, admin)])

    def delete() -> httpx2.Response:
        actor, other = next(pairs)
        return client.delete(f"/users/{other.id}", headers=actor.headers)

    statuses = all_at_once(2, delete)
    # The loser is refused as the last superuser, or finds itself deleted already.
    assert statuses in ([204, 401], [204, 403])
    survivors = [a for a in (admin, user) if client.get("/users/me", headers=a.headers).is_success]
    assert len(survivors) == 1
    assert is_superuser(client, survivors[0])


# The schema says boolean: 0, 1, "true", "yes", "off" and 1.0 are not booleans, whatever a
# lax parser would make of them. On a privilege flag, accepting them is accepting a request
# that no conforming client sends (issue 12, item 12).
NOT_BOOLEANS = [0, 1, "true", "false", "yes", "off", "1", 1.0]


@pytest.mark.parametrize("value", NOT_BOOLEANS, ids=repr)
@pytest.mark.parametrize("field", ["is_superuser", "is_active"])
def test_privilege_flags_accept_only_json_booleans(
    client: httpx2.Client, admin: Account, user: Account, field: str, value: object
) -> None:
    response = client.patch(f"/users/{user.id}", json={field: value}, headers=admin.headers)
    assert_validation_error(response, ["body", field])
    me = client.get("/users/me", headers=user.headers).json()
    assert (me["is_superuser"], me["is_active"]) == (False, True)


OWN_CREDENTIALS = [
    {"email": "new"},
    {"password": "a new password nobody asked for"},
    {"is_verified": False},
    {"email": "new", "password": "a new password nobody asked for", "is_verified": True},
]


@pytest.mark.parametrize("change", OWN_CREDENTIALS, ids=["email", "password", "verified", "all"])
def test_a_superuser_changes_their_own_credentials_only_through_users_me(
    configured: ConfiguredApi, change: dict[str, object]
) -> None:
    """ASVS v5 7.5.1: the routes that change one's own email or password ask for the current
    one; a superuser's stolen access token must not skip that through /users/{own id}."""
    client, _, superuser = two_superusers(configured)
    if change.get("email") == "new":
        change = {**change, "email": unique_email("taken-over")}
    response = client.patch(f"/users/{superuser.id}", json=change, headers=superuser.headers)
    assert_error(
        response,
        403,
        "Superusers cannot change their own email, password or verification here; use /users/me",
    )
    me = client.get("/users/me", headers=superuser.headers).json()
    assert me["email"] == superuser.email
    log_in(client, superuser.email, superuser.password)


def test_a_superuser_still_renames_themself_by_id(configured: ConfiguredApi) -> None:
    client, _, superuser = two_superusers(configured)
    change = {"full_name": "Renamed", "is_superuser": True, "is_verified": None}
    response = client.patch(f"/users/{superuser.id}", json=change, headers=superuser.headers)
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Renamed"
