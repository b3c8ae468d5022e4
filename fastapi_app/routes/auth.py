"""/auth: sign up, obtain tokens (JSON or OAuth2 form), refresh, log out."""

from typing import Annotated

from fastapi import APIRouter, Form, status

from fastapi_app.deps import CurrentUser, JSONBody, RuntimeDep, SessionDep
from shared.schemas import LoginRequest, RefreshRequest, TokenPair, UserCreate, UserPublic
from shared.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    dependencies=[JSONBody],
)
def signup(body: UserCreate, session: SessionDep, runtime: RuntimeDep) -> object:
    return auth.signup(session=session, passwords=runtime.passwords, data=body)


@router.post("/token", response_model=TokenPair)
def issue_token(
    session: SessionDep,
    runtime: RuntimeDep,
    # Declared optional so a malformed form reaches the service, which answers in RFC 6749's
    # words (400 invalid_request) instead of FastAPI's 422.
    grant_type: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
    scope: Annotated[str, Form()] = "",
) -> object:
    form = {"grant_type": grant_type, "username": username, "password": password, "scope": scope}
    return auth.token_from_form(
        session=session,
        passwords=runtime.passwords,
        tokens=runtime.tokens,
        form={key: value for key, value in form.items() if value is not None},
    )


@router.post("/login", response_model=TokenPair, dependencies=[JSONBody])
def login(body: LoginRequest, session: SessionDep, runtime: RuntimeDep) -> object:
    return auth.login(
        session=session,
        passwords=runtime.passwords,
        tokens=runtime.tokens,
        email=body.email,
        password=body.password,
    )


@router.post("/refresh", response_model=TokenPair, dependencies=[JSONBody])
def refresh(body: RefreshRequest, session: SessionDep, runtime: RuntimeDep) -> object:
    return auth.refresh(session=session, tokens=runtime.tokens, refresh_token=body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, dependencies=[JSONBody])
def logout(
    body: RefreshRequest, user: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> None:
    auth.logout(
        session=session, tokens=runtime.tokens, actor=user, refresh_token=body.refresh_token
    )
