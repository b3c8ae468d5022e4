"""HTTP conventions both twins share: JSON errors everywhere, content types, sizes, health."""

import json
import logging
import sqlite3
from pathlib import Path

import httpx2
import pytest
from sqlalchemy.orm import Session, sessionmaker

import shared.runtime as runtime_module
from shared.domain.schemas import UserCreate
from tests.clients import APPS, runtime_of
from tests.conftest import in_process_settings, migrated_sqlite
from tests.support import (
    BODY_LIMIT,
    PASSWORD,
    Account,
    assert_error,
    assert_unauthorized,
    assert_validation_error,
    forge,
    session_of,
    sign_up,
    unique_email,
)

JSON = {"Content-Type": "application/json"}


def test_unknown_route_is_a_json_404(client: httpx2.Client) -> None:
    assert_error(client.get("/no-such-route"), 404, "Not Found")
    assert_error(client.get("/nö-such-route/✓"), 404, "Not Found")


def test_trailing_slash_is_a_404_not_a_redirect(client: httpx2.Client, user: Account) -> None:
    assert_error(client.get("/users/me/", headers=user.headers), 404, "Not Found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/auth/login", {"POST"}), ("PUT", "/users/me", {"DELETE", "GET", "HEAD", "PATCH"}),
     ("POST", "/health", {"GET", "HEAD"})],
)  # fmt: skip
def test_wrong_method_is_a_json_405_with_allow(
    client: httpx2.Client, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, path)
    assert_error(response, 405, "Method Not Allowed")
    assert {part.strip() for part in response.headers["allow"].split(",")} == allowed


def test_head_answers_like_get_without_a_body(client: httpx2.Client, user: Account) -> None:
    get = client.get("/users/me", headers=user.headers)
    head = client.head("/users/me", headers=user.headers)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
    assert client.head("/users/me").status_code == 401


def test_options_is_not_answered_implicitly(client: httpx2.Client) -> None:
    assert_error(client.options("/users/me"), 405, "Method Not Allowed")


def test_every_response_carries_the_security_headers(client: httpx2.Client, user: Account) -> None:
    """OWASP REST Security Cheat Sheet headers on successes, errors and token responses."""
    responses = [
        client.get("/health"),
        client.get("/no-such-route"),
        client.get("/users/me", headers=user.headers),
        client.get("/users/me"),
        client.delete("/health"),
        client.post("/auth/login", json={"email": user.email, "password": user.password}),
        client.post("/auth/signup", json={}),
    ]
    for response in responses:
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        # No banner naming a server and its version for an attacker to look up.
        assert not any(char.isdigit() for char in headers.get("server", ""))
        assert "x-powered-by" not in headers


def test_health(client: httpx2.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.in_process
@pytest.mark.parametrize(
    "unreachable",
    ["postgresql+psycopg://postgres@127.0.0.1:9/nowhere", "sqlite:////nonexistent-dir/x.db"],
    ids=["postgresql-refused", "sqlite-unopenable"],
)
def test_health_is_503_when_the_database_is_unreachable(app_name: str, unreachable: str) -> None:
    settings = in_process_settings(unreachable, first_superuser_email=None)
    with APPS[app_name](settings) as client:
        assert_error(client.get("/health"), 503, "Database unavailable")


ENDPOINTS = [
    ("POST", "/auth/signup"), ("POST", "/auth/login"), ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"), ("PATCH", "/users/me"), ("PUT", "/users/me/password"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    ("raw", "location"),
    [(b'{"email": ', ["body", 10]), (b"{'single': 'quotes'}", ["body", 1]), (b"[]", ["body"]),
     (b'"a string"', ["body"]), (b"null", ["body"]), (b"12", ["body"])],
    ids=["truncated", "single-quotes", "array", "string", "null", "number"],
)  # fmt: skip
def test_bodies_that_are_not_objects_are_422(
    client: httpx2.Client, user: Account, method: str, path: str, raw: bytes, location: list[object]
) -> None:
    response = client.request(method, path, content=raw, headers={**JSON, **user.headers})
    assert_validation_error(response, location)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_empty_json_body_is_422_missing(
    client: httpx2.Client, user: Account, method: str, path: str
) -> None:
    response = client.request(method, path, content=b"", headers={**JSON, **user.headers})
    assert_validation_error(response, ["body"])
    assert response.json()["detail"][0]["type"] == "missing"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/xml"],
)  # fmt: skip
def test_json_endpoints_require_a_json_content_type(
    client: httpx2.Client, user: Account, method: str, path: str, content_type: str | None
) -> None:
    headers = dict(user.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.request(method, path, content=b'{"a": 1}', headers=headers)
    assert_error(response, 415, "Content-Type must be application/json")


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [(None, None), ("text/plain", b"hello"), ("application/json", b'{"email": ')],
    ids=["no body", "text", "malformed JSON"],
)
def test_a_post_that_takes_no_body_reads_none(
    client: httpx2.Client, user: Account, content_type: str | None, raw: bytes | None
) -> None:
    """POST /auth/verify/request acts on the caller's account and has nothing to send: a body
    that comes with it is never read, so its media type cannot be wrong (the contract
    documents no request body, and no 415)."""
    headers = {**user.headers, **({"Content-Type": content_type} if content_type else {})}
    response = client.post("/auth/verify/request", content=raw, headers=headers)
    assert response.status_code == 202, response.text


def test_structured_json_media_types_are_accepted(client: httpx2.Client, user: Account) -> None:
    response = client.patch(
        "/users/me",
        content=b'{"full_name": "Merge"}',
        headers={"Content-Type": "application/merge-patch+json; charset=utf-8", **user.headers},
    )
    assert response.status_code == 200
    assert response.json()["full_name"] == "Merge"


def test_a_body_that_is_not_utf8_is_400(client: httpx2.Client) -> None:
    response = client.post("/auth/signup", content=b'{"email": "\xff\xfe"}', headers=JSON)
    assert_error(response, 400, "There was an error parsing the body")


def test_a_body_nested_past_any_parser_is_400(client: httpx2.Client) -> None:
    response = client.post("/auth/signup", content=b"[" * 60_000, headers=JSON)
    assert_error(response, 400, "There was an error parsing the body")


def test_streamed_token_forms_over_the_size_limit_are_413(client: httpx2.Client) -> None:
    form = b"grant_type=password&username=a%40example.com&password=whatever&junk="
    chunks = iter([form, b"a" * (1024 * 1024)])
    response = client.post(
        "/auth/token",
        content=chunks,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, 413, "Content Too Large")


def test_bodies_over_the_size_limit_are_413(client: httpx2.Client) -> None:
    raw = b'{"email": "a@example.com", "password": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/auth/signup", content=raw, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"detail": "Content Too Large"}


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [("GET", "/health", "application/json"), ("POST", "/no-such-route", "application/json"),
     ("GET", "/auth/login", "application/json"), ("POST", "/auth/login", "text/plain")],
    ids=["no-body-route", "unknown-route", "wrong-method", "wrong-content-type"],
)  # fmt: skip
def test_the_size_limit_comes_before_everything_else(
    client: httpx2.Client, method: str, path: str, content_type: str
) -> None:
    raw = b"a" * (1024 * 1024 + 1)
    response = client.request(method, path, content=raw, headers={"Content-Type": content_type})
    assert_error(response, 413, "Content Too Large")


def test_streamed_bodies_over_the_size_limit_are_413(client: httpx2.Client) -> None:
    """No Content-Length to check up front: the limit must hold while reading."""
    chunks = iter([b'{"email": "a@example.com", "password": "', b"x" * (1024 * 1024), b'"}'])
    response = client.post("/auth/signup", content=chunks, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"detail": "Content Too Large"}


@pytest.mark.parametrize("path", ["/auth/token", "/no-such-route", "/health"])
def test_streamed_bodies_over_the_limit_are_413_even_where_nothing_reads_them(
    client: httpx2.Client, path: str
) -> None:
    """The limit comes first, as for a declared length: not a 404, 405 or form error."""
    response = client.post(path, content=iter([b"x" * (1024 * 1024 + 1)]), headers=JSON)
    assert_error(response, 413, "Content Too Large")


@pytest.mark.parametrize("streamed", [True, False], ids=["chunked", "content-length"])
def test_a_body_of_exactly_the_limit_is_not_too_large(
    client: httpx2.Client, streamed: bool
) -> None:
    """The limit is inclusive: 64 KiB passes the size check (and is then a 422, not JSON)."""
    body = b"x" * BODY_LIMIT
    response = client.post("/auth/login", content=iter([body]) if streamed else body, headers=JSON)
    assert response.status_code == 422, response.text


def test_repeated_slashes_are_not_merged(client: httpx2.Client, user: Account) -> None:
    assert_error(client.get("/users//me", headers=user.headers), 404, "Not Found")


@pytest.mark.parametrize(
    "value",
    ["' OR '1'='1", "admin@example.com' --", "😀" * 50, "\u202e\u0000", "a" * 30_000],
    ids=["sql-or", "sql-comment", "emoji", "bidi-nul", "30k"],
)
def test_hostile_strings_never_cause_a_server_error(client: httpx2.Client, value: str) -> None:
    for body in (
        {"email": value, "password": PASSWORD},
        {"email": unique_email(), "password": PASSWORD, "full_name": value},
    ):
        response = client.post("/auth/signup", json=body)
        assert response.status_code in {201, 422}, response.text
    login = client.post("/auth/login", json={"email": unique_email(), "password": value})
    assert login.status_code in {401, 422}
    token = client.post(
        "/auth/token", data={"grant_type": "password", "username": value, "password": value}
    )
    assert token.status_code == 400


def test_json_bodies_are_compact_utf8_with_no_trailing_newline(
    client: httpx2.Client, user: Account
) -> None:
    """One serialisation on both twins, so bodies (and Content-Length) match byte for byte."""
    responses = [
        client.get("/users/me", headers=user.headers),
        client.get("/no-such-route"),
        client.post("/auth/signup", json={"full_name": "Zoë"}),
    ]
    for response in responses:
        expected = json.dumps(response.json(), separators=(",", ":"), ensure_ascii=False)
        assert response.content == expected.encode()


@pytest.mark.in_process
def test_a_server_error_is_json_with_every_header_and_no_details(
    app_name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (here: a table gone from under the app) is a bare JSON 500 that still carries
    the security and CORS headers, and says nothing of the SQL or the error. The app logs it
    once, with its traceback, through the service's own logger (JSON on stderr), and keeps
    it from the server: FastAPI's test client would raise an error that reached it."""
    database = tmp_path / "broken.db"
    settings = in_process_settings(migrated_sqlite(database), cors_origins=("https://app.example",))
    with APPS[app_name](settings) as client:
        user = sign_up(client)
        with sqlite3.connect(database) as connection:
            connection.execute("DROP TABLE revoked_access_tokens")
        with caplog.at_level(logging.ERROR, logger="authtwin"):
            response = client.get(
                "/users/me", headers={**user.headers, "Origin": "https://app.example"}
            )
    crashes = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(record.name, record.getMessage()) for record in crashes] == [
        ("authtwin", "unhandled error")
    ]
    exc_info = crashes[0].exc_info
    assert exc_info is not None
    assert "revoked_access_tokens" in str(exc_info[1])
    assert_error(response, 500, "Internal Server Error")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "revoked_access_tokens" not in response.text


@pytest.mark.in_process
def test_a_bug_after_the_answer_is_logged_once_and_kept_from_the_server(
    app_name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the request's clean-up (here: closing its database session, which both twins
    do once the route has answered) is still a bug: logged once, as the service's JSON record,
    and not handed to the server, which would log it again in plain text (uvicorn) or turn a
    committed login into an HTML 500 (gunicorn). (A login: it writes, and mails nothing, so
    no delivery after the answer opens a session of its own; the account is made without the
    API, whose signup would mail, for the same reason.)"""

    class FailingClose(Session):
        def close(self) -> None:
            super().close()
            if armed:
                raise RuntimeError("closing the session failed")

    armed = False
    monkeypatch.setattr(
        runtime_module,
        "make_session_factory",
        lambda engine: sessionmaker(engine, class_=FailingClose, expire_on_commit=False),
    )
    settings = in_process_settings(migrated_sqlite(tmp_path / "teardown.db"))
    with APPS[app_name](settings) as client:
        runtime, email = runtime_of(client), unique_email()
        with runtime.sessions() as session:
            runtime.users.create_user(
                session=session, data=UserCreate(email=email, password=PASSWORD)
            )
        armed = True
        with caplog.at_level(logging.ERROR, logger="authtwin"):
            try:
                response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
            except RuntimeError as exc:
                pytest.fail(f"the bug reached the server: {exc!r}")
        armed = False
    crashes = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(record.name, record.getMessage()) for record in crashes] == [
        ("authtwin", "unhandled error")
    ]
    assert response.status_code == 200, response.text


# --- The Authorization header's size -------------------------------------------------------

MAX_AUTHORIZATION_BYTES = 4096  # the contract's cap (shared/web/headers.py)


def bearer_between(secret: str, user: Account, shortest: int, longest: int) -> dict[str, str]:
    """An Authorization header of ``shortest`` to ``longest`` bytes carrying a valid access
    token for ``user``, padded in a claim (base64 reaches three lengths in every four)."""
    sub, session = str(user.id), session_of(user.access_token)
    unpadded = len(f"Bearer {forge(secret, sub=sub, session=session, pad='')}")
    estimate = (shortest - unpadded) * 3 // 4
    for pad in range(max(0, estimate - 4), estimate + 4):
        value = f"Bearer {forge(secret, sub=sub, session=session, pad='x' * pad)}"
        if shortest <= len(value) <= longest:
            return {"Authorization": value}
    raise AssertionError(f"no token makes a header of {shortest} to {longest} bytes")


def test_an_authorization_header_over_the_cap_is_refused_before_its_token_is_read(
    client: httpx2.Client, user: Account, secret_key: str
) -> None:
    """A server decodes a bearer token of any size it is sent (4 MB, before this cap): the
    header is measured first, and one over the cap is an invalid token, signature or not."""
    at_cap = client.get(
        "/users/me",
        headers=bearer_between(
            secret_key, user, MAX_AUTHORIZATION_BYTES - 1, MAX_AUTHORIZATION_BYTES
        ),
    )
    assert at_cap.status_code == 200, at_cap.text
    over = client.get(
        "/users/me",
        headers=bearer_between(
            secret_key, user, MAX_AUTHORIZATION_BYTES + 1, MAX_AUTHORIZATION_BYTES + 2
        ),
    )
    assert_unauthorized(over)
    assert over.json() == {"detail": "Invalid or expired token"}
    assert 'error="invalid_token"' in over.headers["www-authenticate"]


@pytest.mark.parametrize("path", ["/auth/login", "/auth/signup"])
def test_a_body_of_more_members_than_any_model_is_one_422(client: httpx2.Client, path: str) -> None:
    """Validated member by member, unknown keys were one error each: 87,000 of them (1 MiB)
    made an answer eight times the size of the request, built in seconds of CPU on FastAPI's
    event loop, before any rate limit counted. Past the cap the body is refused whole, with
    one error (3,000 keys here: within today's 64 KiB body limit)."""
    body = json.dumps({f"k{number}": 0 for number in range(3_000)}).encode()
    response = client.post(path, content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "too_many_members",
                "loc": ["body"],
                "msg": "Body must have at most 32 members",
            }
        ]
    }
    at_cap = {"email": "x@example.com", **{f"k{number}": 0 for number in range(31)}}
    errors = client.post(path, json=at_cap).json()["detail"]
    assert {error["type"] for error in errors} >= {"extra_forbidden"}
