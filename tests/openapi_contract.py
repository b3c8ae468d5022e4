"""``python -m tests.openapi_contract`` (``make openapi``): accept the FastAPI twin's generated
OpenAPI document as the new contract, ``shared/data/openapi.json``. Do it on purpose, and
review the diff: the Flask twin serves that file, and both twins are tested against it.
"""

import secrets
import tempfile
from typing import Any

from fastapi_app import create_app
from shared.infrastructure.config import Settings
from shared.web.contract import CONTRACT_PATH, render


def generated_document() -> dict[str, Any]:
    """The document the FastAPI twin generates from its routes (no database is touched)."""
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            database_url=f"sqlite:///{directory}/unused.db", secret_key=secrets.token_urlsafe(32)
        )
        return create_app(settings).openapi()


if __name__ == "__main__":
    CONTRACT_PATH.write_text(render(generated_document()), encoding="utf-8")
    print(f"wrote {CONTRACT_PATH}")
