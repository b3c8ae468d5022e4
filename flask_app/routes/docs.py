"""/openapi.json, /docs and /redoc: the contract document and the pages that show it.

/openapi.json is the committed contract, served as is (FastAPI generates its own). Served,
not generated: a Flask OpenAPI extension would describe the same routes in its own words
(schema names, operation ids), and the twins would then need a test that the two documents
mean the same. What keeps the served file honest is tests/test_openapi_contract.py, which
checks this app's routes against its operations and the FastAPI twin's document against it.
"""

from flask import Blueprint, Response, abort
from flask.typing import ResponseReturnValue

from shared.web.contract import openapi_document
from shared.web.docs import REDOC_PAGE, SWAGGER_UI_PAGE, asset

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return openapi_document()


@bp.get("/docs")
def swagger_ui() -> ResponseReturnValue:
    return Response(SWAGGER_UI_PAGE, mimetype="text/html")


@bp.get("/redoc")
def redoc() -> ResponseReturnValue:
    return Response(REDOC_PAGE, mimetype="text/html")


@bp.get("/docs/assets/<name>")
def docs_asset(name: str) -> ResponseReturnValue:
    found = asset(name)
    if found is None:
        abort(404)
    content, media_type = found
    return Response(content, content_type=media_type)
