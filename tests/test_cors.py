"""CORS: off by default; when origins are configured, exactly those, never ``*`` nor ``null``.

OWASP REST Security Cheat Sheet. A refused preflight is not a CORS error of its own: the
OPTIONS is routed like any other (a JSON 405), and the browser, finding no
Access-Control-Allow-Origin, refuses the actual request itself.
"""

import httpx2
import pytest
from pydantic import ValidationError

from shared.infrastructure.config import Settings
from shared.web.cors import CorsPolicy
from tests.conftest import ConfiguredApi
from tests.support import assert_error, assert_unauthorized, sign_up

ALLOWED = "https://app.example"
REFUSED = [
    "https://evil.example",
    "null",  # sandboxed frames and file: pages, which anyone can make
    "https://app.example.evil.com",  # a prefix match would take it
    "http://app.example",  # same host, other scheme: another origin
    "https://app.example:8443",  # same host, other port: another origin
    "https://APP.example",  # no browser sends this; the match is exact as sent
    "https://app.example/",  # an origin has no path
]


def cors_client(configured: ConfiguredApi) -> httpx2.Client:
    return configured(cors_origins=(ALLOWED,)).client


def preflight(
    client: httpx2.Client,
    origin: str,
    method: str = "POST",
    request_headers: str = "authorization,content-type",  # how browsers send them
) -> httpx2.Response:
    return client.options(
        "/auth/logout",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": request_headers,
        },
    )


def cors_headers(response: httpx2.Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-")
    }


def varies_by_origin(response: httpx2.Response) -> bool:
    listed = response.headers.get("vary", "").split(",")
    return "origin" in {name.strip().lower() for name in listed}


def test_cors_is_off_by_default(client: httpx2.Client) -> None:
    response = client.get("/health", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert cors_headers(response) == {}
    refused = preflight(client, ALLOWED)
    assert_error(refused, 405, "Method Not Allowed")
    assert cors_headers(refused) == {}


def test_an_allowed_origin_gets_its_own_origin_back(configured: ConfiguredApi) -> None:
    client = cors_client(configured)
    user = sign_up(client)
    origin = {"Origin": ALLOWED}
    for response in (
        client.get("/health", headers=origin),
        client.get("/users/me", headers={**origin, **user.headers}),
    ):
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert varies_by_origin(response)
        # Bearer tokens, not cookies: there are no credentials for a browser to attach.
        assert "access-control-allow-credentials" not in response.headers


def test_errors_to_an_allowed_origin_are_readable(configured: ConfiguredApi) -> None:
    """Without CORS headers on errors, a browser client sees a network failure, not a 401."""
    client = cors_client(configured)
    unauthorized = client.get("/users/me", headers={"Origin": ALLOWED})
    assert_unauthorized(unauthorized)
    too_large = client.post(
        "/auth/signup",
        content=b"a" * (1024 * 1024 + 1),
        headers={"Origin": ALLOWED, "Content-Type": "application/json"},
    )
    assert_error(too_large, 413, "Content Too Large")
    for response in (unauthorized, too_large):
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert varies_by_origin(response)
    exposed = unauthorized.headers["access-control-expose-headers"]
    assert {name.strip().lower() for name in exposed.split(",")} == {
        "retry-after",
        "www-authenticate",
    }


# HEAD is not listed, yet a browser preflights it when it carries Authorization (Fetch:
# safelisted methods pass without being listed), and the API answers HEAD like GET.
@pytest.mark.parametrize("method", ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"])
def test_a_preflight_from_an_allowed_origin_is_a_bodiless_204(
    configured: ConfiguredApi, method: str
) -> None:
    response = preflight(cors_client(configured), ALLOWED, method=method)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "content-type" not in response.headers
    assert cors_headers(response) == {
        "access-control-allow-origin": ALLOWED,
        "access-control-allow-methods": "DELETE, GET, PATCH, POST, PUT",
        "access-control-allow-headers": "Authorization, Content-Type",
        "access-control-max-age": "600",
    }
    assert varies_by_origin(response)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("origin", REFUSED)
def test_other_origins_get_no_cors_headers(configured: ConfiguredApi, origin: str) -> None:
    client = cors_client(configured)
    response = client.get("/health", headers={"Origin": origin})
    assert response.status_code == 200
    assert cors_headers(response) == {}
    # The answer depends on Origin, so caches must not hand it to the allowed origin.
    assert varies_by_origin(response)
    refused = preflight(client, origin)
    assert_error(refused, 405, "Method Not Allowed")
    assert cors_headers(refused) == {}


def test_a_request_without_origin_gets_no_cors_headers(configured: ConfiguredApi) -> None:
    response = cors_client(configured).get("/health")
    assert cors_headers(response) == {}
    assert varies_by_origin(response)


@pytest.mark.parametrize(
    ("method", "request_headers"),
    [("TRACE", "content-type"), ("OPTIONS", ""), ("patch", "content-type"),
     ("POST", "x-requested-with"), ("POST", "authorization,cookie"), ("POST", "content-type,x-a")],
    ids=["trace", "options", "lowercase-patch", "custom-header", "cookie", "one-extra-header"],
)  # fmt: skip
def test_a_preflight_outside_the_allowed_methods_or_headers_is_refused(
    configured: ConfiguredApi, method: str, request_headers: str
) -> None:
    response = preflight(cors_client(configured), ALLOWED, method, request_headers)
    assert_error(response, 405, "Method Not Allowed")
    assert cors_headers(response) == {}


def test_options_without_a_preflight_method_is_still_a_405(configured: ConfiguredApi) -> None:
    response = cors_client(configured).options("/auth/logout", headers={"Origin": ALLOWED})
    assert_error(response, 405, "Method Not Allowed")
    assert "access-control-allow-methods" not in response.headers


@pytest.mark.parametrize("origin", ["null", "*", "https://*.example", "app.example"])
def test_settings_refuse_anything_but_exact_origins(origin: str) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"env": "development", "cors_origins": (origin,)})


def test_configured_origins_match_as_browsers_send_them() -> None:
    """Browsers send scheme and host in lowercase, so a capitalised setting still works."""
    policy = CorsPolicy(
        Settings.model_validate(
            {"env": "development", "cors_origins": "https://App.Example"}
        ).cors_origins
    )
    assert policy.response_headers("https://app.example")["Access-Control-Allow-Origin"]
    assert "Access-Control-Allow-Origin" not in policy.response_headers("https://App.Example")
