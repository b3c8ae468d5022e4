"""POST /auth/login (JSON) and POST /auth/token (OAuth2 password form, RFC 6749 §4.3)."""

import asyncio

import httpx2
import pytest

import shared.services.auth as auth_service
from tests.conftest import ConfiguredApi
from tests.support import (
    BODY_LIMIT,
    PASSWORD,
    Account,
    assert_error,
    assert_validation_error,
    bearer,
    unique_email,
)

TOKEN_FIELDS = {"access_token", "refresh_token", "token_type", "expires_in"}


def assert_token_pair(response: httpx2.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, object] = response.json()
    assert set(body) == TOKEN_FIELDS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    return body


def test_login_returns_a_token_pair_that_authenticates(
    client: httpx2.Client, user: Account
) -> None:
    response = client.post("/auth/login", json={"email": user.email, "password": user.password})
    tokens = assert_token_pair(response)
    me = client.get("/users/me", headers=bearer(str(tokens["access_token"])))
    assert me.status_code == 200
    assert me.json()["email"] == user.email


def test_login_email_is_case_insensitive(client: httpx2.Client, user: Account) -> None:
    response = client.post("/auth/login", json={"email": user.email.upper(), "password": PASSWORD})
    assert_token_pair(response)


def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx2.Client, user: Account
) -> None:
    wrong = client.post("/auth/login", json={"email": user.email, "password": "wrong-password"})
    unknown = client.post("/auth/login", json={"email": unique_email(), "password": PASSWORD})
    for response in (wrong, unknown):
        assert_error(response, 401, "Incorrect email or password")
        assert response.headers["www-authenticate"] == "Bearer"
    assert wrong.content == unknown.content


def test_inactive_user_cannot_log_in(client: httpx2.Client, admin: Account, user: Account) -> None:
    deactivate = client.patch(f"/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    assert deactivate.status_code == 200
    response = client.post("/auth/login", json={"email": user.email, "password": user.password})
    assert_error(response, 403, "Inactive user")
    # ...but only once the password is right: a wrong one is still just wrong.
    wrong = client.post("/auth/login", json={"email": user.email, "password": "wrong-password"})
    assert_error(wrong, 401)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"password": PASSWORD}, ["body", "email"]),
        ({"email": "someone@example.com"}, ["body", "password"]),
        ({"email": "someone@example.com", "password": ""}, ["body", "password"]),
        ({"email": "someone@example.com", "password": "x" * 129}, ["body", "password"]),
        ({"email": "not-an-email", "password": PASSWORD}, ["body", "email"]),
        (
            {"email": "someone@example.com", "password": PASSWORD, "remember": 1},
            ["body", "remember"],
        ),
    ],
    ids=["no-email", "no-password", "empty-password", "long-password", "bad-email", "extra-field"],
)
def test_invalid_login_bodies_are_422(
    client: httpx2.Client, body: dict[str, object], location: list[str]
) -> None:
    assert_validation_error(client.post("/auth/login", json=body), location)


def token_form(client: httpx2.Client, **fields: str) -> httpx2.Response:
    return client.post("/auth/token", data=fields)


def test_password_grant_returns_a_token_pair(client: httpx2.Client, user: Account) -> None:
    response = token_form(client, grant_type="password", username=user.email, password=PASSWORD)
    tokens = assert_token_pair(response)
    assert client.get("/users/me", headers=bearer(str(tokens["access_token"]))).status_code == 200


def assert_oauth_error(response: httpx2.Response, error: str) -> None:
    """RFC 6749 §5.2: 400, ``error`` from its vocabulary, never cached."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("username", ["wrong-password", "unknown-email"])
def test_password_grant_with_bad_credentials_is_invalid_grant(
    client: httpx2.Client, user: Account, username: str
) -> None:
    if username == "unknown-email":
        response = token_form(
            client, grant_type="password", username=unique_email(), password=PASSWORD
        )
    else:
        response = token_form(
            client, grant_type="password", username=user.email, password="wrong-password"
        )
    assert_oauth_error(response, "invalid_grant")


def test_password_grant_answers_unknown_and_wrong_alike(
    client: httpx2.Client, user: Account
) -> None:
    wrong = token_form(client, grant_type="password", username=user.email, password="nope-nope")
    unknown = token_form(client, grant_type="password", username=unique_email(), password="nope")
    assert_oauth_error(wrong, "invalid_grant")
    assert wrong.content == unknown.content


@pytest.mark.parametrize(
    "fields",
    [
        {"grant_type": "password", "password": PASSWORD},
        {"grant_type": "password", "username": "someone@example.com"},
        {"username": "someone@example.com", "password": PASSWORD},
        {},
    ],
    ids=["no-username", "no-password", "no-grant-type", "empty"],
)
def test_malformed_token_form_is_invalid_request(
    client: httpx2.Client, fields: dict[str, str]
) -> None:
    assert_oauth_error(token_form(client, **fields), "invalid_request")


@pytest.mark.parametrize(
    "raw",
    [
        "grant_type=client_credentials&grant_type=password&username={email}&password={password}",
        "grant_type=password&username=nobody@example.com&username={email}&password={password}",
        "grant_type=&username={email}&password={password}",
        "grant_type&username={email}&password={password}",
        "grant_type=password&username={email}&password={password}"
        + "".join(f"&extra{n}=1" for n in range(30)),
    ],
    ids=["repeated-grant-type", "repeated-username", "empty-grant-type", "bare-grant-type",
         "too-many-fields"],
)  # fmt: skip
def test_ambiguous_token_forms_are_invalid_request(
    client: httpx2.Client, user: Account, raw: str
) -> None:
    """RFC 6749 §3.2: no repeated parameters; an empty one is a missing one."""
    body = raw.format(email=user.email, password=PASSWORD.replace(" ", "+"))
    response = client.post(
        "/auth/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_oauth_error(response, "invalid_request")


def test_a_password_sent_as_a_file_is_invalid_request(client: httpx2.Client, user: Account) -> None:
    response = client.post(
        "/auth/token",
        data={"grant_type": "password", "username": user.email},
        files={"password": ("password.txt", PASSWORD.encode())},
    )
    assert_oauth_error(response, "invalid_request")


def test_token_endpoint_given_json_is_invalid_request(client: httpx2.Client, user: Account) -> None:
    response = client.post(
        "/auth/token",
        json={"grant_type": "password", "username": user.email, "password": PASSWORD},
    )
    assert_oauth_error(response, "invalid_request")


def test_password_grant_for_an_inactive_user_is_invalid_grant(
    client: httpx2.Client, admin: Account, user: Account
) -> None:
    client.patch(f"/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    response = token_form(client, grant_type="password", username=user.email, password=PASSWORD)
    assert_oauth_error(response, "invalid_grant")
    assert response.json()["error_description"] == "Inactive user"


def test_other_grant_types_are_unsupported(client: httpx2.Client, user: Account) -> None:
    response = token_form(
        client, grant_type="client_credentials", username=user.email, password="x"
    )
    assert_oauth_error(response, "unsupported_grant_type")


# --- Hostile token forms: stopped at the field cap, never parsed on an event loop ---------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MAX_FORM_FIELDS = 20  # the contract's cap (shared/services/auth.py)
TOO_MANY_PARAMETERS = {"error": "invalid_request", "error_description": "Too many parameters"}


def grant_with_extra_fields(user: Account, extra: int) -> bytes:
    grant = f"grant_type=password&username={user.email}&password={PASSWORD.replace(' ', '+')}"
    return (grant + "".join(f"&extra{n}=1" for n in range(extra))).encode()


def test_a_token_form_one_field_over_the_cap_is_invalid_request(
    client: httpx2.Client, user: Account
) -> None:
    at_cap = client.post("/auth/token", content=grant_with_extra_fields(user, 17), headers=FORM)
    assert_token_pair(at_cap)
    over = client.post("/auth/token", content=grant_with_extra_fields(user, 18), headers=FORM)
    assert_oauth_error(over, "invalid_request")
    assert over.json() == TOO_MANY_PARAMETERS


def test_a_form_as_large_as_the_body_limit_gets_the_same_400_as_one_field_too_many(
    client: httpx2.Client,
) -> None:
    """64 KiB of ``a=1&`` (16,384 fields), within the body limit: refused as too many
    parameters, as a form of 21 fields is, on both twins (the parser stops at the cap
    instead of building them all; 1 MiB of them took 0.5 s on FastAPI's event loop)."""
    body = b"a=1&" * (BODY_LIMIT // 4)
    response = client.post("/auth/token", content=body, headers=FORM)
    assert_oauth_error(response, "invalid_request")
    assert response.json() == TOO_MANY_PARAMETERS


@pytest.mark.parametrize("parts", [3, 600])  # 600: some 50 KB, within the body limit
def test_a_multipart_token_request_is_invalid_request_whatever_its_size(
    client: httpx2.Client, user: Account, parts: int
) -> None:
    """RFC 6749 §4.3.2: the grant is application/x-www-form-urlencoded. Multipart is not
    parsed at all (its parser is where the parts would pile up), small or large alike."""
    grant = {"grant_type": "password", "username": user.email, "password": PASSWORD}
    fields = {**grant, **{f"extra{n}": "1" for n in range(parts - 3)}}
    response = client.post("/auth/token", files={k: (None, v) for k, v in fields.items()})
    assert_oauth_error(response, "invalid_request")
    assert response.json()["error_description"] == (
        "The request must be application/x-www-form-urlencoded"
    )


def test_a_token_form_that_is_not_utf8_is_invalid_request(client: httpx2.Client) -> None:
    body = b"grant_type=password&username=a%40example.com&password=%FF%FE"
    response = client.post("/auth/token", content=body, headers=FORM)
    assert_oauth_error(response, "invalid_request")


def on_an_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_the_token_form_is_parsed_off_any_event_loop(
    configured: ConfiguredApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An async server runs every request of its process on one event loop: a form parsed
    there holds them all (a 1 MiB form took 0.5 s, and /health waited behind it). The parse
    runs in a worker thread, on both twins."""
    parsed_on_a_loop: list[bool] = []
    parse_form = auth_service.parse_form

    def recording(form: bytes) -> list[tuple[str, str]]:
        parsed_on_a_loop.append(on_an_event_loop())
        return parse_form(form)

    monkeypatch.setattr(auth_service, "parse_form", recording)
    api = configured()
    response = api.client.post("/auth/token", content=b"a=1&" * (BODY_LIMIT // 4), headers=FORM)
    assert_oauth_error(response, "invalid_request")
    assert parsed_on_a_loop == [False]
