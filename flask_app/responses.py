"""Turning service results into responses: what FastAPI's ``response_model`` does for us there."""

from typing import Any, cast

from flask import Response, current_app
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel


class ContractJSONProvider(DefaultJSONProvider):
    """Serialise like FastAPI's JSONResponse, byte for byte: keys in model order, UTF-8 as is,
    compact, and no trailing newline (Flask's default adds one)."""

    sort_keys = False
    ensure_ascii = False
    compact = True

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        body = self.dumps(obj, separators=(",", ":"))
        return cast(Response, self._app.response_class(body, mimetype=self.mimetype))


def serialize(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """Validate ``value`` as ``model`` (ORM objects included) and dump it as JSON-ready data."""
    return model.model_validate(value, from_attributes=True).model_dump(mode="json")


def no_content() -> Response:
    response: Response = current_app.response_class(status=204)
    del response.headers["Content-Type"]  # 204 has no body, so no media type either
    return response
