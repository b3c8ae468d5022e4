"""The two pages the mailed links open (issue 13), served by both twins from
shared/static/account/: a person finishes a password reset or proves an address in a
browser, and the page's script posts the link's token to the API.

The paths are those of the links shared/services/account_mail.py writes (``RESET_PAGE``,
``VERIFY_PAGE``; tests/test_account_pages.py keeps the two equal: the web conventions and the
core's layers import nothing of each other). Their Content-Security-Policy is in headers.py,
with the others.
"""

from shared.web.packaged import packaged_asset, read_packaged

RESET_PASSWORD_PATH = "/reset-password"
VERIFY_EMAIL_PATH = "/verify-email"
PAGES = {
    RESET_PASSWORD_PATH: "reset-password.html",
    VERIFY_EMAIL_PATH: "verify-email.html",
}
ASSETS_PATH = "/account/assets"  # the pages name their assets relative to themselves
ASSET_TYPES = {
    "account.js": "text/javascript; charset=utf-8",
    "account.css": "text/css; charset=utf-8",
}


def page(path: str) -> bytes:
    """The HTML of the page at ``path``, one of ``PAGES``."""
    return read_packaged("account", PAGES[path])


def asset(name: str) -> tuple[bytes, str] | None:
    """An account page asset's bytes and media type; None for any name not in the fixed list."""
    return packaged_asset("account", ASSET_TYPES, name)
