"""The API's OpenAPI document: one committed file, the contract both twins answer to.

The FastAPI twin generates its document from its routes, and a test fails when that drifts
from this file (``make openapi`` rewrites it on purpose). The Flask twin serves this file.
"""

import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

CONTRACT_PATH = Path(str(files("shared") / "data" / "openapi.json"))


@cache
def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
    return document


def render(document: dict[str, Any]) -> str:
    """The committed form: indented, so a change reads as a small diff in review."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
