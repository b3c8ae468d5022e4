"""What routes need, the Flask way: per-request state on ``g``, explicit helper calls.

FastAPI injects these as parameters (see fastapi_app/deps.py); here a route calls them, in
the order FastAPI would resolve them: the JSON body is parsed before anything else (a
``before_request`` hook), then the caller is authenticated, then the body is validated.
"""

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from shared import errors
from shared.client_ip import client_ip
from shared.http import BODY_METHODS, is_json_media_type
from shared.identity import bearer_token, find_principal
from shared.runtime import Runtime
from shared.schemas import UserId, UserPublic
from shared.throttle import Operation
from shared.tokens import TokenClaims

Model = TypeVar("Model", bound=BaseModel)
P = ParamSpec("P")
R = TypeVar("R")
FORM_ENDPOINTS = frozenset({"api.auth.issue_token"})  # OAuth2 form, not JSON
_NO_BODY = object()


def get_runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["authtwin"]
    return runtime


def get_session() -> Session:
    """One session per request, closed at teardown."""
    if "session" not in g:
        g.session = get_runtime().sessions()
    session: Session = g.session
    return session


def get_client_ip() -> str:
    forwarded = request.headers.getlist("X-Forwarded-For")
    return client_ip(request.remote_addr, forwarded, get_runtime().settings.trusted_proxies)


def access_claims() -> TokenClaims:
    """The verified claims of the request's access token, decoded once per request."""
    if "access_claims" not in g:
        token = bearer_token(request.headers.get("Authorization"))
        if not token:
            raise errors.NotAuthenticated
        g.access_claims = get_runtime().tokens.decode(token, expected_type="access")
    claims: TokenClaims = g.access_claims
    return claims


def current_user() -> UserPublic:
    if "current_user" not in g:
        claims = access_claims()
        g.current_user = find_principal(get_runtime().read_engine, claims)
    user: UserPublic = g.current_user
    return user


def current_superuser() -> UserPublic:
    user = current_user()
    if not user.is_superuser:
        raise errors.PermissionDenied
    return user


def rate_limited(operation: Operation) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count ``operation`` per client address before the view runs (429 over the limit).

    FastAPI's twin is a route dependency; both run after the body is parsed and before the
    caller is authenticated or the body validated.
    """

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            get_runtime().throttle.limit_client(operation, get_client_ip())
            return view(*args, **kwargs)

        return limited

    return decorate


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


def parse_json_body() -> None:
    """FastAPI reads and parses a JSON body before resolving any dependency; so do we."""
    if request.url_rule is None or request.method not in BODY_METHODS:
        return
    if request.endpoint in FORM_ENDPOINTS:
        return
    if not is_json_media_type(request.content_type):
        raise errors.UnsupportedMediaType
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


def close_session(_exc: BaseException | None) -> None:
    session = g.pop("session", None)
    if session is not None:
        session.close()


def install_request_hooks(app: Flask) -> None:
    app.before_request(parse_json_body)
    app.teardown_appcontext(close_session)
