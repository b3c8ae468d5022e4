"""The FastAPI twin's generated OpenAPI document and docs page (the Flask twin's come later).

Not a contract test: it checks one app's own feature, so it names that app.
"""

from pathlib import Path

import pytest

from tests.clients import fastapi_client
from tests.conftest import in_process_settings

pytestmark = pytest.mark.in_process

CONTRACT_PATHS = {
    "/api/v1/auth/signup", "/api/v1/auth/token", "/api/v1/auth/login", "/api/v1/auth/refresh",
    "/api/v1/auth/logout", "/api/v1/users/me", "/api/v1/users/me/password", "/api/v1/users",
    "/api/v1/users/{user_id}", "/api/v1/health", "/.well-known/jwks.json",
}  # fmt: skip


def test_openapi_documents_every_route_and_the_password_flow(tmp_path: Path) -> None:
    settings = in_process_settings(f"sqlite:///{tmp_path}/docs.db")
    with fastapi_client(settings) as client:
        schema = client.get("http://testserver/openapi.json").json()
        docs = client.get("http://testserver/docs")
    assert set(schema["paths"]) == CONTRACT_PATHS
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/token"
    me = schema["paths"]["/api/v1/users/me"]["get"]
    assert me["security"] == [{"OAuth2PasswordBearer": []}]
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_docs_pages_get_a_policy_that_lets_them_run(tmp_path: Path) -> None:
    """API responses allow nothing to load; the docs pages may run Swagger UI / ReDoc."""
    settings = in_process_settings(f"sqlite:///{tmp_path}/docs.db")
    with fastapi_client(settings) as client:
        pages = [client.get(f"http://testserver{path}") for path in ("/docs", "/redoc")]
        api = client.get("/health")
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    for page in pages:
        policy = page.headers["content-security-policy"]
        assert "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net" in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
