"""Malformed requests to the reset and verification routes (issue 13): refused in the
contract's shapes, alike on both twins, never a 500.

Wrong JSON types for every field are tested with every other body (test_strict_inputs.py);
here are the fields missing, unknown, out of range, and the body not JSON at all.
"""

import json
from typing import Any

import httpx2
import pytest

from tests.support import Account, assert_error, assert_validation_error

RESET = "/auth/password-reset"
CONFIRM = "/auth/password-reset/confirm"
VERIFY = "/auth/verify"
JSON_ROUTES = [RESET, CONFIRM, VERIFY]
VALID: dict[str, dict[str, Any]] = {
    RESET: {"email": "someone@example.com"},
    CONFIRM: {"token": "x" * 43, "new_password": "a brand new passphrase"},
    VERIFY: {"token": "x" * 43},
}

REFUSED: list[tuple[str, dict[str, Any], list[Any]]] = [
    (RESET, {}, ["body", "email"]),
    (RESET, {"email": "not an address"}, ["body", "email"]),
    (RESET, {"email": "someone@example.com", "admin": True}, ["body", "admin"]),
    (CONFIRM, {"new_password": "a brand new passphrase"}, ["body", "token"]),
    (CONFIRM, {"token": "x" * 43}, ["body", "new_password"]),
    (CONFIRM, {"token": "", "new_password": "a brand new passphrase"}, ["body", "token"]),
    (CONFIRM, {"token": "x" * 257, "new_password": "a brand new passphrase"}, ["body", "token"]),
    (CONFIRM, {"token": "x" * 43, "new_password": "x" * 129}, ["body", "new_password"]),
    (CONFIRM, {**VALID[CONFIRM], "email": "a@example.com"}, ["body", "email"]),
    (VERIFY, {}, ["body", "token"]),
    (VERIFY, {"token": "\ud800"}, ["body", "token"]),  # a lone surrogate: JSON allows it
    (VERIFY, {"token": ["x" * 43]}, ["body", "token"]),
    (VERIFY, {"token": "x" * 43, "user_id": 1}, ["body", "user_id"]),
]


@pytest.mark.parametrize(
    ("path", "body", "location"),
    REFUSED,
    ids=[f"{path} {location[-1]} #{n}" for n, (path, _, location) in enumerate(REFUSED)],
)
def test_a_body_the_contract_does_not_describe_is_422(
    client: httpx2.Client, path: str, body: dict[str, Any], location: list[Any]
) -> None:
    # Encoded here: an HTTP client refuses to encode a lone surrogate, which JSON can escape.
    raw = json.dumps(body).encode()
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_validation_error(response, location)


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_is_415(
    client: httpx2.Client, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, content=b'{"token": "x"}', headers=headers)
    assert_error(response, 415, "Content-Type must be application/json")


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize(
    "raw", [b"", b"null", b"[]", b'"text"', b"{", b'{"email": 1e999}'], ids=repr
)
def test_a_body_that_is_no_object_is_422(client: httpx2.Client, path: str, raw: bytes) -> None:
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_validation_error(response)


def test_asking_for_a_link_reads_no_body(client: httpx2.Client, user: Account) -> None:
    """The route takes none: whatever is sent is ignored, as by any route declaring no body."""
    for content, content_type in [(b"", None), (b"<xml/>", "application/xml"), (b"{", None)]:
        headers = {**user.headers, **({"Content-Type": content_type} if content_type else {})}
        response = client.post("/auth/verify/request", content=content, headers=headers)
        assert response.status_code == 202, response.text
