"""/reset-password and /verify-email: the pages the mailed links open, at the root where
the links point (shared/web/account_pages.py; fastapi_app/routes/pages.py).

Pages, not API operations: tests/test_openapi_contract.py leaves this blueprint out of the
routes it matches against the contract. Their Content-Security-Policy comes with the other
headers (shared/web/headers.py).
"""

from flask import Blueprint, Response, abort
from flask.typing import ResponseReturnValue

from shared.web.account_pages import (
    ASSETS_PATH,
    RESET_PASSWORD_PATH,
    VERIFY_EMAIL_PATH,
    asset,
    page,
)

bp = Blueprint("pages", __name__)


@bp.get(RESET_PASSWORD_PATH)
def reset_password_page() -> ResponseReturnValue:
    return Response(page(RESET_PASSWORD_PATH), mimetype="text/html")


@bp.get(VERIFY_EMAIL_PATH)
def verify_email_page() -> ResponseReturnValue:
    return Response(page(VERIFY_EMAIL_PATH), mimetype="text/html")


@bp.get(ASSETS_PATH + "/<name>")
def account_asset(name: str) -> ResponseReturnValue:
    found = asset(name)
    if found is None:
        abort(404)
    content, media_type = found
    return Response(content, content_type=media_type)
