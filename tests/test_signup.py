"""POST /auth/signup."""

import json
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from tests.support import (
    PASSWORD,
    all_at_once,
    assert_error,
    assert_validation_error,
    unique_email,
)

USER_FIELDS = {"id", "email", "full_name", "is_active", "is_superuser", "is_verified", "created_at"}


def test_signup_returns_the_public_user(client: httpx2.Client) -> None:
    email = unique_email()
    response = client.post(
        "/auth/signup", json={"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == USER_FIELDS  # no password, no hash
    assert body["email"] == email
    assert body["full_name"] == "Ada Lovelace"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert body["is_verified"] is False  # until the link mailed to the address is followed
    assert isinstance(body["id"], int)
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


def test_signup_without_full_name_stores_null(client: httpx2.Client) -> None:
    response = client.post("/auth/signup", json={"email": unique_email(), "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["full_name"] is None


def test_email_is_stored_normalised(client: httpx2.Client) -> None:
    local = unique_email().split("@")[0]
    response = client.post(
        "/auth/signup", json={"email": f"  {local.upper()}@Example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"{local}@example.com"


def test_duplicate_email_is_409_whatever_its_case(client: httpx2.Client) -> None:
    email = unique_email()
    assert (
        client.post("/auth/signup", json={"email": email, "password": PASSWORD}).status_code == 201
    )
    again = client.post("/auth/signup", json={"email": email.upper(), "password": "other-password"})
    assert_error(again, 409, "A user with this email already exists")


def test_concurrent_signups_with_one_email_create_exactly_one_user(client: httpx2.Client) -> None:
    email = unique_email()
    statuses = all_at_once(
        8, lambda: client.post("/auth/signup", json={"email": email, "password": PASSWORD})
    )
    assert statuses == [201] + [409] * 7


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"password": PASSWORD}, ["body", "email"]),
        ({"email": "not-an-email", "password": PASSWORD}, ["body", "email"]),
        ({"email": "a@b", "password": PASSWORD}, ["body", "email"]),
        ({"email": 42, "password": PASSWORD}, ["body", "email"]),
        ({"email": "x" * 300 + "@example.com", "password": PASSWORD}, ["body", "email"]),
        ({"email": "{email}"}, ["body", "password"]),
        ({"email": "{email}", "password": "short"}, ["body", "password"]),
        ({"email": "{email}", "password": "p" * 129}, ["body", "password"]),
        ({"email": "{email}", "password": 12345678}, ["body", "password"]),
        ({"email": "{email}", "password": None}, ["body", "password"]),
        ({"email": "{email}", "password": "\ud800 lone surrogate"}, ["body", "password"]),
        ({"email": "{email}", "password": PASSWORD, "full_name": "n" * 256}, ["body", "full_name"]),
        ({"email": "{email}", "password": PASSWORD, "full_name": "nul\x00"}, ["body", "full_name"]),
        ({"email": "{email}", "password": PASSWORD, "full_name": ["list"]}, ["body", "full_name"]),
        ({"email": "{email}", "password": PASSWORD, "is_superuser": 1}, ["body", "is_superuser"]),
        ({"email": "{email}", "password": PASSWORD, "id": 1}, ["body", "id"]),
    ],
    ids=[
        "missing-email", "not-an-email", "no-tld", "email-number", "email-too-long",
        "missing-password", "password-too-short", "password-too-long", "password-number",
        "password-null", "password-lone-surrogate", "name-too-long", "name-with-nul",
        "name-list", "mass-assign-superuser", "mass-assign-id",
    ],
)  # fmt: skip
def test_invalid_signup_bodies_are_422(
    client: httpx2.Client, body: dict[str, object], location: list[str]
) -> None:
    body = {key: unique_email() if value == "{email}" else value for key, value in body.items()}
    # json.dumps escapes a lone surrogate (valid JSON); httpx2 would refuse to encode one.
    raw = json.dumps(body)
    response = client.post(
        "/auth/signup", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_validation_error(response, location)


@pytest.mark.parametrize(
    "password",
    # Neither one character repeated ("p" * 128, "🔑" * 8): the policy refuses those.
    ["73910582", ("violet kettle under the pier " * 5)[:128], "pässwörd-ünïcode",
     "🔑🐍🌍🎉🚀🌈🍕🎸", "'; DROP TABLE users; --", "  spaces  "],
    ids=["digits-only", "max-length", "accents", "emoji", "sql-looking", "spaces"],
)  # fmt: skip
def test_any_password_of_8_to_128_characters_is_accepted(
    client: httpx2.Client, password: str
) -> None:
    email = unique_email()
    assert (
        client.post("/auth/signup", json={"email": email, "password": password}).status_code == 201
    )
    login = client.post("/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text


@pytest.mark.parametrize(
    "full_name",
    ["Zoë Ñúñez", "李小龍", "Robert'); DROP TABLE users;--", "<script>alert(1)</script>", ""],
    ids=["accents", "cjk", "sql-looking", "html", "empty"],
)
def test_names_are_stored_verbatim(client: httpx2.Client, full_name: str) -> None:
    response = client.post(
        "/auth/signup", json={"email": unique_email(), "password": PASSWORD, "full_name": full_name}
    )
    assert response.status_code == 201, response.text
    assert response.json()["full_name"] == full_name
