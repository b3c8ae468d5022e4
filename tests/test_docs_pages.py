"""/docs (Swagger UI) and /redoc on both twins, from local assets only (issue 4, item 2).

The pages name no other host, their assets come from this server, and their policy lets
them run scripts from 'self' alone. tests/test_docs_browser.py drives /docs in a browser.
"""

import re

import httpx2
import pytest

from shared.web.docs import ASSET_TYPES


def root(client: httpx2.Client, path: str) -> httpx2.Response:
    return client.get(client.base_url.copy_with(path=path))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_this_server(client: httpx2.Client, page: str) -> None:
    response = root(client, page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources
    for source in sources:
        assert source.startswith("/docs/assets/"), source  # no CDN, no other host
        asset = root(client, source)
        assert asset.status_code == 200, source
        assert asset.headers["content-type"] == ASSET_TYPES[source.rsplit("/", 1)[1]]
        assert len(asset.content) > 100


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_may_run_only_their_own_scripts(client: httpx2.Client, page: str) -> None:
    policy = root(client, page).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"  # no inline script, no CDN, no eval
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'"


def test_an_unknown_docs_asset_is_a_json_404(client: httpx2.Client) -> None:
    for name in ("nope.js", "..%2Fdata%2Fopenapi.json", "LICENSE.redoc", "README.md"):
        response = root(client, f"/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.json() == {"detail": "Not Found"}
