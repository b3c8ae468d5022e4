"""/auth: sign up, obtain tokens (JSON or OAuth2 form), refresh, log out."""

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from flask_app.deps import (
    access_claims,
    current_user,
    get_client_ip,
    get_runtime,
    get_session,
    json_body,
    rate_limited,
)
from flask_app.responses import no_content, serialize
from shared.schemas import LoginRequest, RefreshRequest, TokenPair, UserCreate, UserPublic
from shared.services import auth

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.post("/signup")
@rate_limited("signup")
def signup() -> ResponseReturnValue:
    body = json_body(UserCreate)
    runtime = get_runtime()
    user = auth.signup(
        session=get_session(),
        passwords=runtime.passwords,
        policy=runtime.policy,
        data=body,
        client_ip=get_client_ip(),
    )
    return serialize(UserPublic, user), 201


@bp.post("/token")
@rate_limited("token")
def issue_token() -> ResponseReturnValue:
    runtime = get_runtime()
    pair = auth.token_from_form(
        session=get_session(),
        passwords=runtime.passwords,
        tokens=runtime.tokens,
        throttle=runtime.throttle,
        fields=list(request.form.items(multi=True)),
        client_ip=get_client_ip(),
    )
    return serialize(TokenPair, pair)


@bp.post("/login")
@rate_limited("login")
def login() -> ResponseReturnValue:
    body = json_body(LoginRequest)
    runtime = get_runtime()
    pair = auth.login(
        session=get_session(),
        passwords=runtime.passwords,
        tokens=runtime.tokens,
        throttle=runtime.throttle,
        email=body.email,
        password=body.password,
        client_ip=get_client_ip(),
    )
    return serialize(TokenPair, pair)


@bp.post("/refresh")
@rate_limited("refresh")
def refresh() -> ResponseReturnValue:
    body = json_body(RefreshRequest)
    pair = auth.refresh(
        session=get_session(),
        tokens=get_runtime().tokens,
        refresh_token=body.refresh_token,
        client_ip=get_client_ip(),
    )
    return serialize(TokenPair, pair)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    user = current_user()
    body = json_body(RefreshRequest)
    auth.logout(
        session=get_session(),
        tokens=get_runtime().tokens,
        actor=user,
        access=access_claims(),
        refresh_token=body.refresh_token,
        client_ip=get_client_ip(),
    )
    return no_content()
