"""The FastAPI twin: a bug in its own middleware is still the contract's 500.

Its ``UnexpectedErrorMiddleware`` sits outside the other middleware, so it answers a bug in
them too (tests/test_http.py has a bug in a route, for both twins), in JSON, with the security
headers, logged once. Flask answers an error in its own hooks itself: no layer of ours to test.
"""

import logging
from pathlib import Path

import pytest

import fastapi_app.middleware
from tests.clients import fastapi_client
from tests.conftest import in_process_settings, migrated_sqlite
from tests.support import assert_error

pytestmark = pytest.mark.in_process


def test_a_bug_in_the_middleware_is_a_json_500_with_the_security_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(path: str) -> dict[str, str]:
        raise RuntimeError(f"no headers for {path}")

    # The response-headers middleware's own lookup, not the last resort's.
    monkeypatch.setattr(fastapi_app.middleware, "response_headers", broken)
    settings = in_process_settings(migrated_sqlite(tmp_path / "broken.db"))
    with fastapi_client(settings) as client, caplog.at_level(logging.ERROR, logger="authtwin"):
        response = client.get("/health")
    assert_error(response, 500, "Internal Server Error")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    crashes = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(record.name, record.getMessage()) for record in crashes] == [
        ("authtwin", "unhandled error")
    ]
