"""/auth: sign up, obtain tokens (JSON or OAuth2 form), refresh, log out."""

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from flask_app.background import send_mail_after_response
from flask_app.deps import (
    get_access_claims,
    get_auth_service,
    get_client_ip,
    get_current_user,
    get_session,
    rate_limited,
)
from flask_app.validation import json_body, no_content, serialize
from shared.domain.schemas import (
    Accepted,
    LoginRequest,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
)
from shared.web.bodies import is_form_media_type

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.post("/signup")
@rate_limited("signup")
def signup() -> ResponseReturnValue:
    body = json_body(UserCreate)
    result = get_auth_service().signup(session=get_session(), data=body, client_ip=get_client_ip())
    send_mail_after_response()
    if isinstance(result, Accepted):
        return serialize(Accepted, result), 202
    return serialize(UserPublic, result), 201


@bp.post("/token")
@rate_limited("token")
def issue_token() -> ResponseReturnValue:
    # The body, not request.form: the service parses it, so both twins stop at one field cap
    # with one answer, and Werkzeug's multipart parser never runs (see the FastAPI twin).
    is_form = is_form_media_type(request.content_type)
    form = request.get_data() if is_form else None  # within MAX_CONTENT_LENGTH
    pair = get_auth_service().token_from_form(
        session=get_session(), form=form, client_ip=get_client_ip()
    )
    return serialize(TokenPair, pair)


@bp.post("/login")
@rate_limited("login")
def login() -> ResponseReturnValue:
    body = json_body(LoginRequest)
    pair = get_auth_service().login(
        session=get_session(), email=body.email, password=body.password, client_ip=get_client_ip()
    )
    return serialize(TokenPair, pair)


@bp.post("/refresh")
@rate_limited("refresh")
def refresh() -> ResponseReturnValue:
    body = json_body(RefreshRequest)
    pair = get_auth_service().refresh(
        session=get_session(), refresh_token=body.refresh_token, client_ip=get_client_ip()
    )
    return serialize(TokenPair, pair)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    user = get_current_user()
    access = get_access_claims()
    body = json_body(RefreshRequest)
    get_auth_service().logout(
        session=get_session(),
        actor=user,
        access=access,
        refresh_token=body.refresh_token,
        client_ip=get_client_ip(),
    )
    return no_content()
