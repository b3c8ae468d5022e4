"""Turning service results into responses: what FastAPI's ``response_model`` does for us there."""

from typing import Any

from flask import Response, current_app
from pydantic import BaseModel


def serialize(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """Validate ``value`` as ``model`` (ORM objects included) and dump it as JSON-ready data."""
    return model.model_validate(value, from_attributes=True).model_dump(mode="json")


def no_content() -> Response:
    response: Response = current_app.response_class(status=204)
    del response.headers["Content-Type"]  # 204 has no body, so no media type either
    return response
