"""What FastAPI does for its routes from their type hints, done here by hand and alike.

In: the JSON body parsed before anything else runs, then the body, query and path validated
against the same pydantic models, errors in FastAPI's 422 shape. Out: the result validated
against the response model and serialised byte for byte as FastAPI's ``JSONResponse`` does.
The FastAPI twin has no such module: this is the part of the comparison Flask leaves to you.
"""

import json
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ValidationError

from flask_app.deps import require_json_content_type
from shared.domain import errors
from shared.domain.schemas import UserId, check_body_members
from shared.web.bodies import BODY_METHODS

Model = TypeVar("Model", bound=BaseModel)
FORM_ENDPOINTS = frozenset({"api.auth.issue_token"})  # OAuth2 form, not JSON
# POSTs with nothing to send (an action on the caller's account): FastAPI never reads a body
# for a route that declares none, whatever its Content-Type, so neither do we.
BODYLESS_ENDPOINTS = frozenset({"api.recovery.request_verification"})
_NO_BODY = object()


def parse_json_body() -> None:
    """FastAPI reads and parses a JSON body before resolving any dependency; so do we."""
    if request.url_rule is None or request.method not in BODY_METHODS:
        return
    if request.endpoint in FORM_ENDPOINTS or request.endpoint in BODYLESS_ENDPOINTS:
        return
    # Before parsing: FastAPI parses only a body declared JSON, and its JSONContentType route
    # dependency refuses the rest with 415, so checking first gives the same answers.
    require_json_content_type()
    raw = request.get_data(cache=True)  # size already checked by reject_oversized_body
    if not raw:
        return
    try:
        g.json_payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise errors.RequestValidationFailed(
            [{"type": "json_invalid", "loc": ["body", exc.pos], "msg": "JSON decode error"}]
        ) from None
    except (ValueError, RecursionError):  # not UTF-8, or nested past Python's limit
        raise errors.BodyParseError from None
    check_body_members(g.json_payload)


def json_body(model: type[Model]) -> Model:
    """The request's JSON body validated as ``model``; errors located at ``["body", ...]``."""
    payload = g.get("json_payload", _NO_BODY)
    if payload is _NO_BODY:
        raise errors.RequestValidationFailed(
            [{"type": "missing", "loc": ["body"], "msg": "Field required"}]
        )
    return _validated(model, payload, "body")


def query_params(model: type[Model]) -> Model:
    # A repeated parameter counts by its last value, as in FastAPI (Werkzeug's to_dict keeps
    # the first).
    last_values = {name: values[-1] for name, values in request.args.lists()}
    return _validated(model, last_values, "query")


def path_user_id(raw: str) -> int:
    """Flask's ``<int:...>`` converter would 404 on ``abc``; FastAPI answers 422, so do we."""
    return _validated(_UserIdParam, {"user_id": raw}, "path").user_id


def path_user_id_and_body(raw: str, model: type[Model]) -> tuple[int, Model]:
    """Both, reporting the errors of both at once, as FastAPI does for path and body."""
    failures: list[dict[str, Any]] = []
    user_id: int | None = None
    body: Model | None = None
    try:
        user_id = path_user_id(raw)
    except errors.RequestValidationFailed as exc:
        failures += exc.errors
    try:
        body = json_body(model)
    except errors.RequestValidationFailed as exc:
        failures += exc.errors
    if failures or user_id is None or body is None:
        raise errors.RequestValidationFailed(failures)
    return user_id, body


class _UserIdParam(BaseModel):
    user_id: UserId


def _validated(model: type[Model], data: Any, location: str) -> Model:
    try:
        # from_attributes=True is how FastAPI validates, so error types match its own.
        return model.model_validate(data, from_attributes=True)
    except ValidationError as exc:
        raise errors.RequestValidationFailed(errors.located(exc.errors(), location)) from None


def serialize(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """Validate ``value`` as ``model`` (ORM objects included) and dump it as JSON-ready data:
    FastAPI's ``response_model=``."""
    return model.model_validate(value, from_attributes=True).model_dump(mode="json")


def no_content() -> Response:
    response: Response = current_app.response_class(status=204)
    del response.headers["Content-Type"]  # 204 has no body, so no media type either
    return response


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


def install_validation(app: Flask) -> None:
    """After ``install_middleware``: its hooks (preflight, size limit) run before the parse."""
    app.json = ContractJSONProvider(app)
    app.before_request(parse_json_body)
