"""/auth: sign up, obtain tokens (JSON or OAuth2 form), refresh, log out."""

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from flask_app.deps import current_user, get_runtime, get_session, json_body
from flask_app.responses import no_content, serialize
from shared.schemas import LoginRequest, RefreshRequest, TokenPair, UserCreate, UserPublic
from shared.services import auth

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.post("/signup")
def signup() -> ResponseReturnValue:
    body = json_body(UserCreate)
    user = auth.signup(session=get_session(), passwords=get_runtime().passwords, data=body)
    return serialize(UserPublic, user), 201


@bp.post("/token")
def issue_token() -> ResponseReturnValue:
    runtime = get_runtime()
    pair = auth.token_from_form(
        session=get_session(),
        passwords=runtime.passwords,
        tokens=runtime.tokens,
        fields=list(request.form.items(multi=True)),
    )
    return serialize(TokenPair, pair)


@bp.post("/login")
def login() -> ResponseReturnValue:
    body = json_body(LoginRequest)
    runtime = get_runtime()
    pair = auth.login(
        session=get_session(),
        passwords=runtime.passwords,
        tokens=runtime.tokens,
        email=body.email,
        password=body.password,
    )
    return serialize(TokenPair, pair)


@bp.post("/refresh")
def refresh() -> ResponseReturnValue:
    body = json_body(RefreshRequest)
    pair = auth.refresh(
        session=get_session(), tokens=get_runtime().tokens, refresh_token=body.refresh_token
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
        refresh_token=body.refresh_token,
    )
    return no_content()
