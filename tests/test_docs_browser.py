"""Swagger UI, in a real browser, with no internet: authorize, call /users/me, see 200.
The pages the mailed links open: verify an address, reset a password, as a person would.
And the side-by-side page (``make compare``): every concern shows both twins' code.

Debian's chromium, driven by Playwright (``executable_path``: no browser download). Every
request the page makes to a host other than the server under test is refused, so the test
also proves the page needs nothing from a CDN. A screenshot of each twin's page is kept in
``test-artifacts/`` (AUTHTWIN_ARTIFACTS to change it). Without chromium this skips with the
reason, except under CI=true, where .ci/run installs chromium and its absence is a failure.
"""

import os
import re
import shutil
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

from docs.concerns import CONCERNS
from shared.services.account_mail import RESET_PAGE, VERIFY_PAGE
from tests.clients import API_PREFIX
from tests.live import free_port, production_env, serve
from tests.mailbox import Mailbox, link_token
from tests.support import PASSWORD, unique_email

pytestmark = pytest.mark.in_process
CHROMIUM = "/usr/bin/chromium"
ME_OPERATION = "#operations-users-read_me_api_v1_users_me_get"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
ARTIFACTS = Path(os.environ.get("AUTHTWIN_ARTIFACTS", "test-artifacts"))
DOCS = Path(__file__).resolve().parent.parent / "docs"
SIDE_BY_SIDE = DOCS / "side-by-side.html"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        reason = f"{CHROMIUM} is not installed (Debian package chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI requires chromium: {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        # --no-sandbox: the sandbox refuses to run as root, which CI containers often are;
        # --disable-dev-shm-usage: containers' small /dev/shm crashes renderers of big pages.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


def offline(page: Page, base_url: str) -> list[str]:
    """Refuse every request that leaves the server under test; returns what was refused."""
    refused: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    return refused


def policy_violations(page: Page) -> list[str]:
    """What the browser reports the pages' Content-Security-Policy blocked, as it happens."""
    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", watch)
    return violations


def authorize_and_call_me(page: Page, email: str) -> str:
    """Swagger UI's OAuth2 password flow, then "Try it out" on GET /users/me; its status."""
    page.get_by_role("button", name="Authorize").first.click()
    page.locator("#oauth_username").fill(email)
    page.locator("#oauth_password").fill(PASSWORD)
    buttons = page.locator(".auth-btn-wrapper")
    buttons.locator("button.authorize").click()
    page.get_by_text("Authorized", exact=True).wait_for()  # the token was granted
    buttons.locator("button.btn-done").click()
    operation = page.locator(ME_OPERATION)
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    return status.inner_text().strip()


@pytest.mark.parametrize("app", ["fastapi", "flask"])
def test_swagger_ui_authorizes_and_calls_users_me_offline(
    app: str, browser: Browser, tmp_path: Path
) -> None:
    with serve(app, production_env(tmp_path / "docs.db"), tmp_path) as base_url:
        email = unique_email()
        signup = requests.post(
            f"{base_url}{API_PREFIX}/auth/signup",
            json={"email": email, "password": PASSWORD},
            timeout=30,
        )
        assert signup.status_code == 201
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        refused, violations = offline(page, base_url), policy_violations(page)
        page.goto(f"{base_url}/docs")
        status = authorize_and_call_me(page, email)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"docs-{app}-page.png", full_page=True)
        page.locator(ME_OPERATION).screenshot(path=ARTIFACTS / f"docs-{app}.png")
        page.close()
    assert status == "200"
    assert refused == []
    assert violations == []


@pytest.mark.parametrize("app", ["fastapi", "flask"])
def test_redoc_renders_the_contract_offline(app: str, browser: Browser, tmp_path: Path) -> None:
    with serve(app, production_env(tmp_path / "docs.db"), tmp_path) as base_url:
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        refused, violations = offline(page, base_url), policy_violations(page)
        page.goto(f"{base_url}/redoc")
        page.get_by_role("heading", name="Read Me").first.wait_for()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"redoc-{app}.png")
        page.close()
    assert refused == []
    # ReDoc's sidebar shows its maker's logo from their CDN; the policy blocks that image,
    # and nothing else, and the page works without it.
    assert [v for v in violations if REDOC_LOGO not in v] == []


def console_errors(page: Page) -> list[str]:
    """Every error the page's console shows, and every exception its scripts leave uncaught."""
    errors: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", watch)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return errors


def mailed_link(mailbox: Mailbox, email: str, count: int, path: str, base_url: str) -> str:
    """The ``path`` link in the ``count``-th message to ``email``, as the person would click
    it: the server's own URL (AUTHTWIN_PUBLIC_URL), the page, the token in the fragment."""
    message = mailbox.wait_for(to=email, count=count)[count - 1]
    link = f"{base_url}{path}#token={link_token(message, path)}"
    text = message.get_body(preferencelist=("plain",))
    assert isinstance(text, EmailMessage)
    assert link in text.get_content(), link  # AUTHTWIN_PUBLIC_URL: this very server
    return link


def access_token(api: str, email: str, password: str) -> str | None:
    """A login's access token; None if the password is refused."""
    login = {"email": email, "password": password}
    response = requests.post(f"{api}/auth/login", json=login, timeout=30)
    return response.json()["access_token"] if response.status_code == 200 else None


def verify_in_browser(page: Page, link: str, email: str) -> None:
    page.goto(link)
    assert page.url == link.partition("#")[0]  # the token left the address bar
    page.get_by_role("button", name="Verify my address").click()
    page.get_by_text(f"Your address {email} is verified.").wait_for()


def reset_in_browser(page: Page, link: str, new_password: str) -> None:
    """A typo, a password the API refuses (its message is shown), then the right one."""
    page.goto(link)
    assert page.url == link.partition("#")[0]
    password, again = page.get_by_label("New password"), page.get_by_label("The same password")
    change = page.get_by_role("button", name="Change my password")
    for first, second, answer in [
        (new_password, "not the same", "The two passwords are not the same."),
        ("short", "short", "String should have at least 8 characters"),
        (new_password, new_password, "Your password was changed. Every session was signed out"),
    ]:
        password.fill(first)
        again.fill(second)
        change.click()
        page.get_by_text(answer).wait_for()


def used_link_is_refused(page: Page, link: str) -> bool:
    page.goto("about:blank")  # a new load of the page, as from the mail, not a jump within it
    page.goto(link)
    for field in page.locator("input[type=password]").all():  # the reset page's
        field.fill("yet another passphrase")
    page.get_by_role("button").click()
    page.get_by_text("Invalid, expired or already used token").wait_for()
    return page.get_by_role("button").is_disabled()  # the token will never work again


@pytest.mark.parametrize("app", ["fastapi", "flask"])
def test_the_mailed_links_verify_the_address_and_reset_the_password(
    app: str, browser: Browser, tmp_path: Path
) -> None:
    """The links as mailed, in the pages as served, each page's button pressed as a person
    would; what the API then says of the account is the proof."""
    port = free_port()
    base_url, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}{API_PREFIX}"
    email, new_password = unique_email(), "a brand new passphrase"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Mailbox() as mailbox:
        env = production_env(
            tmp_path / "pages.db",
            public_url=base_url,
            mail_backend="smtp",
            smtp_host=mailbox.host,
            smtp_port=str(mailbox.port),
            smtp_security="none",
        )
        with serve(app, env, tmp_path, port=port):
            signup = requests.post(
                f"{api}/auth/signup", json={"email": email, "password": PASSWORD}, timeout=30
            )
            assert signup.status_code == 201, signup.text
            page = browser.new_page(viewport={"width": 800, "height": 600})
            refused, violations = offline(page, base_url), policy_violations(page)
            errors = console_errors(page)

            verify_link = mailed_link(mailbox, email, 1, VERIFY_PAGE, base_url)
            verify_in_browser(page, verify_link, email)
            page.screenshot(path=ARTIFACTS / f"verify-email-{app}.png")
            bearer = {"Authorization": f"Bearer {access_token(api, email, PASSWORD)}"}
            me = requests.get(f"{api}/users/me", headers=bearer, timeout=30)
            assert me.json()["is_verified"] is True
            assert used_link_is_refused(page, verify_link)

            asked = requests.post(f"{api}/auth/password-reset", json={"email": email}, timeout=30)
            assert asked.status_code == 202, asked.text
            reset_link = mailed_link(mailbox, email, 2, RESET_PAGE, base_url)
            reset_in_browser(page, reset_link, new_password)
            page.screenshot(path=ARTIFACTS / f"reset-password-{app}.png")
            assert access_token(api, email, new_password) is not None
            assert access_token(api, email, PASSWORD) is None
            assert used_link_is_refused(page, reset_link)

            # A move to another address: its link, with the account's password, applies it.
            moved_to = unique_email("moved")
            bearer = {"Authorization": f"Bearer {access_token(api, email, new_password)}"}
            move = {"email": moved_to, "current_password": new_password}
            asked = requests.patch(f"{api}/users/me", json=move, headers=bearer, timeout=30)
            assert asked.json()["email"] == email, asked.text  # not until the link is followed
            move_link = mailed_link(mailbox, moved_to, 1, VERIFY_PAGE, base_url)
            page.goto("about:blank")
            page.goto(move_link)
            page.get_by_label("Password, if this link asks for one").fill(new_password)
            page.get_by_role("button", name="Verify my address").click()
            page.get_by_text(f"Your address {moved_to} is verified.").wait_for()
            assert access_token(api, moved_to, new_password) is not None

            page.goto(f"{base_url}{RESET_PAGE}")  # no token: the link was cut short
            page.get_by_text("This page needs the link from your email").wait_for()
            assert page.get_by_role("button").is_disabled()
            page.close()
    assert refused == []
    assert violations == []
    # The browser's own line for each answer the steps above expect to fail (422, 400).
    assert [e for e in errors if not re.search(r"status of (400|422)\b", e)] == []


# What is wrong with each concern's columns, measured in the page in one pass: each side
# must show highlighted code, and the two stand next to each other (Flask's column starts
# where FastAPI's ends, at the same height).
SIDE_BY_SIDE_FAILURES = """() => {
  const failures = [];
  for (const section of document.querySelectorAll("section.concern")) {
    const boxes = {};
    for (const side of ["fastapi", "flask"]) {
      const column = section.querySelector(`.side.${side}`);
      if (!column) { failures.push(`${section.id}: no ${side} column`); continue; }
      boxes[side] = column.getBoundingClientRect();
      const blocks = [...column.querySelectorAll("pre")];
      if (!blocks.length) failures.push(`${section.id}: no ${side} code`);
      blocks.forEach((block, index) => {
        const box = block.getBoundingClientRect();
        if (!(box.width > 0 && box.height > 0 && block.innerText.trim()))
          failures.push(`${section.id}: ${side} code block ${index + 1} is empty or not shown`);
      });
      // Highlighted: Pygments' stylesheet gives keywords (def, return) a colour of their own.
      const keyword = column.querySelector("pre .k");
      const plain = blocks.length ? getComputedStyle(blocks[0]).color : null;
      if (!keyword || getComputedStyle(keyword).color === plain)
        failures.push(`${section.id}: ${side} code is not highlighted`);
    }
    const {fastapi, flask} = boxes;
    if (!(fastapi && flask && flask.x >= fastapi.x + fastapi.width))
      failures.push(`${section.id}: the Flask column is not to the right of the FastAPI one`);
    else if (Math.abs(flask.y - fastapi.y) > 1)
      failures.push(`${section.id}: the columns do not start at the same height`);
  }
  return failures;
}"""


def test_the_side_by_side_page_shows_both_twins_for_every_concern(browser: Browser) -> None:
    url = SIDE_BY_SIDE.as_uri()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    refused = offline(page, url)  # the page itself is all it may load
    page.goto(url)
    slugs = page.locator("section.concern").evaluate_all("sections => sections.map(s => s.id)")
    failures = page.evaluate(SIDE_BY_SIDE_FAILURES)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The top at a desktop size, as README shows it (docs/screenshots/ keeps a copy).
    page.screenshot(path=ARTIFACTS / "side-by-side.png")
    page.close()
    assert slugs == [concern.slug for concern in CONCERNS]
    assert failures == []
    assert refused == []
