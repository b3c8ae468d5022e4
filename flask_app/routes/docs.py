"""/openapi.json: the contract document, served as committed (FastAPI generates its own).

Served, not generated: a Flask OpenAPI extension would describe the same routes in its own
words (schema names, operation ids), and then the twins would need a test that the two
documents mean the same. Serving the one contract is that test made unnecessary; what
keeps it honest is tests/test_openapi_contract.py, which checks this app's routes against
the document's operations, and the FastAPI twin's generated document against the file.
"""

from flask import Blueprint
from flask.typing import ResponseReturnValue

from shared.contract import openapi_document

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return openapi_document()
