"""/reset-password and /verify-email on both twins: the pages the mailed links open (issue 13).

They are served where the links point, load nothing but their own script and stylesheet,
carry no inline script or style that their policy would have to allow, and the asset route
serves its fixed list and nothing else. tests/test_docs_browser.py walks both pages in a browser.
"""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx2
import pytest

from shared.services.account_mail import RESET_PAGE, VERIFY_PAGE
from shared.web.account_pages import ASSET_TYPES, ASSETS_PATH, PAGES
from shared.web.contract import openapi_document

PAGE_PATHS = sorted(PAGES)
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SCRIPT = Path(__file__).resolve().parent.parent / "shared" / "static" / "account" / "account.js"


class Markup(HTMLParser):
    """What a page's HTML asks the browser to run or load."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []  # every src and href, as written
        self.handlers: list[str] = []  # on…= attributes, style= attributes
        self.inline: list[str] = []  # text inside <script> or <style>
        self.scripts_without_src = 0
        self._inside: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.loads += [value for name, value in attrs if name in ("src", "href") and value]
        self.handlers += [f"{tag} {name}" for name, _ in attrs if re.match("on|style$", name)]
        if tag == "script" and not names.get("src"):
            self.scripts_without_src += 1
        if tag in ("script", "style"):
            self._inside = tag

    def handle_endtag(self, tag: str) -> None:
        self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside and data.strip():
            self.inline.append(f"<{self._inside}> {data.strip()[:60]}")


def root(client: httpx2.Client, path: str) -> httpx2.Response:
    return client.get(client.base_url.copy_with(path=path))


def test_the_pages_are_where_the_mailed_links_point() -> None:
    assert set(PAGES) == {RESET_PAGE, VERIFY_PAGE}


def test_the_script_posts_to_the_contracts_recovery_routes() -> None:
    """The script names the API relative to the page (``api/v1/…``), as the pages are at the
    root: each path it posts to is an operation of the contract."""
    posted = re.findall(r'_URL = "(api/v1/[^"]+)"', SCRIPT.read_text(encoding="utf-8"))
    assert len(posted) == 2
    contract = openapi_document()["paths"]
    for path in posted:
        assert "post" in contract.get(f"/{path}", {}), path


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_a_page_is_html_with_its_own_policy(client: httpx2.Client, path: str) -> None:
    response = root(client, path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == POLICY
    assert response.headers["referrer-policy"] == "no-referrer"  # nor a Referer with the token
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_a_page_runs_only_its_own_script(client: httpx2.Client, path: str) -> None:
    page = root(client, path)
    markup = Markup()
    markup.feed(page.text)
    assert markup.inline == []
    assert markup.handlers == []
    assert markup.scripts_without_src == 0
    assert markup.loads
    here = urlsplit(str(page.url))
    for source in markup.loads:
        url = urlsplit(urljoin(here.geturl(), source))
        # Same origin, from the asset route: no CDN, no other host.
        assert (url.scheme, url.netloc) == (here.scheme, here.netloc), source
        assert url.path.startswith(f"{ASSETS_PATH}/"), source
        asset = root(client, url.path)
        assert asset.status_code == 200, source
        assert asset.headers["content-type"] == ASSET_TYPES[url.path.rsplit("/", 1)[1]]


@pytest.mark.parametrize(
    "name",
    [
        "nope.js",
        "reset-password.html",  # a page, served at its own path, not as an asset
        "ACCOUNT.JS",
        "..%2F..%2Fdata%2Fopenapi.json",
        "%2E%2E%2Fdocs%2Fswagger-init.js",
        "..%5Caccount.js",
    ],
)
def test_an_unknown_account_asset_is_a_json_404(client: httpx2.Client, name: str) -> None:
    response = root(client, f"{ASSETS_PATH}/{name}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
