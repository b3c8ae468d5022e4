"""/reset-password and /verify-email: the pages the mailed links open, at the root where
the links point (shared/web/account_pages.py; flask_app/routes/pages.py).

Pages, not API operations: ``include_in_schema=False`` keeps them out of the OpenAPI
document. Their Content-Security-Policy comes with the other headers (shared/web/headers.py).
"""

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from shared.web.account_pages import (
    ASSETS_PATH,
    RESET_PASSWORD_PATH,
    VERIFY_EMAIL_PATH,
    asset,
    page,
)

router = APIRouter(include_in_schema=False)


@router.get(RESET_PASSWORD_PATH)
async def reset_password_page() -> HTMLResponse:
    return HTMLResponse(page(RESET_PASSWORD_PATH))


@router.get(VERIFY_EMAIL_PATH)
async def verify_email_page() -> HTMLResponse:
    return HTMLResponse(page(VERIFY_EMAIL_PATH))


@router.get(ASSETS_PATH + "/{name}")
async def account_asset(name: str) -> Response:
    found = asset(name)
    if found is None:
        raise HTTPException(status_code=404)
    content, media_type = found
    return Response(content, media_type=media_type)
