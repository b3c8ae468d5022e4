"""The FastAPI twin: ``uvicorn --factory fastapi_app:create_app``."""

from fastapi_app.app import create_app

__all__ = ["create_app"]
