"""/docs and /redoc from this package's own assets (FastAPI's built-in pages use a CDN).

FastAPI serves /openapi.json itself, generated from the routes; the Flask twin serves the
committed contract there instead (see flask_app/routes/docs.py).
"""

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from shared.web.docs import REDOC_PAGE, SWAGGER_UI_PAGE, asset

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(SWAGGER_UI_PAGE)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(REDOC_PAGE)


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> Response:
    found = asset(name)
    if found is None:
        raise HTTPException(status_code=404)
    content, media_type = found
    return Response(content, media_type=media_type)
