"""Helpers the contract tests share: accounts, tokens, and what the suite knows of a target."""

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from jose import jwt

from shared.infrastructure.config import Settings

PASSWORD = "correct horse battery"


@dataclass
class Api:
    """The server under test, and the secrets the suite shares with it."""

    client: httpx2.Client
    admin_email: str | None
    admin_password: str | None
    secret_key: str | None
    issuer: str = "authtwin"
    audience: str = "authtwin-api"
    refresh_audience: str = "authtwin-refresh"
    client_id: str = "authtwin"
    # In-process only: for the few tests that must put in the database what no request can
    # (a password hash from an older system).
    database_url: str | None = None


@dataclass
class Account:
    id: int
    email: str
    password: str
    access_token: str
    refresh_token: str

    @classmethod
    def of(cls, user: dict[str, Any], password: str, tokens: dict[str, Any]) -> "Account":
        return cls(
            id=user["id"],
            email=user["email"],
            password=password,
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
        )

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def sign_up(
    client: httpx2.Client, *, email: str | None = None, password: str = PASSWORD, **extra: Any
) -> Account:
    email = email or unique_email()
    response = client.post("/auth/signup", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.text
    return Account.of(response.json(), password, log_in(client, email, password))


def log_in(client: httpx2.Client, email: str, password: str) -> dict[str, Any]:
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def session_of(token: str) -> str:
    """The session (refresh family) an issued token belongs to: its ``sid`` claim."""
    sid: str = jwt.get_unverified_claims(token)["sid"]
    return sid


def forge(
    secret: str,
    *,
    sub: str | None = "1",
    token_type: str = "access",  # noqa: S107 — a token kind, not a password
    typ: str = "at+jwt",
    lifetime: timedelta = timedelta(minutes=5),
    algorithm: str = "HS256",
    issuer: str = "authtwin",
    audience: str | None = None,
    session: str | None = None,
    drop: tuple[str, ...] = (),
    not_before: timedelta = timedelta(0),
    generation: object = 0,
    headers: dict[str, Any] | None = None,
    **claims_changed: Any,
) -> str:
    """A token signed with ``secret``: valid unless the caller changes something.

    Valid means of a live session too: pass ``session`` (:func:`session_of` an issued token),
    or the token names a session the server never started.
    """
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "type": token_type,
        "gen": generation,
        "jti": uuid.uuid4().hex,
        "sid": session or uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "nbf": int((now + not_before).timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "iss": issuer,
        # Each kind has its own audience; only access tokens name a client (RFC 9068 §2.2).
        "aud": audience or ("authtwin-refresh" if token_type == "refresh" else "authtwin-api"),
        **({"client_id": "authtwin"} if token_type == "access" else {}),
        **claims_changed,
    }
    for name in drop:
        claims.pop(name)
    return str(
        jwt.encode(claims, secret, algorithm=algorithm, headers={"typ": typ, **(headers or {})})
    )


def assert_error(response: httpx2.Response, status: int, detail: str | None = None) -> None:
    """A JSON error of the contract's shape, with its status (and message, when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}, body
    if detail is not None:
        assert body["detail"] == detail


def assert_unauthorized(response: httpx2.Response) -> None:
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def assert_validation_error(response: httpx2.Response, *locations: list[Any]) -> None:
    """422 in FastAPI's shape; each of ``locations`` is the ``loc`` of one reported error."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for error in detail:
        assert set(error) == {"type", "loc", "msg"}, error
    reported = [error["loc"] for error in detail]
    for location in locations:
        assert location in reported, (location, reported)


def all_at_once(workers: int, request: Callable[[], httpx2.Response]) -> list[int]:
    """Send ``request`` from ``workers`` threads released together; their status codes, sorted."""
    barrier = threading.Barrier(workers)
    statuses: list[int] = []

    def attempt() -> None:
        barrier.wait()
        statuses.append(request().status_code)

    threads = [threading.Thread(target=attempt) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


ROOT = Path(__file__).resolve().parent.parent
# The servers' default AUTHTWIN_MAX_BODY_BYTES: in-process apps and the live runs alike.
BODY_LIMIT: int = Settings.model_fields["max_body_bytes"].default


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in an interpreter of its own, with only ``env`` of the ``AUTHTWIN_*`` settings:
    how a server or the CLI starts, without this test process's configuration."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTHTWIN_")}
    return subprocess.run(  # noqa: S603 — our own interpreter, fixed code
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
