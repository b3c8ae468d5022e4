"""/auth: sign up, obtain tokens (JSON or OAuth2 form), refresh, log out."""

from fastapi import APIRouter, BackgroundTasks, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fastapi_app.background import send_mail_after_response
from fastapi_app.deps import (
    AccessClaims,
    AuthServiceDep,
    ClientIP,
    CurrentUser,
    JSONContentType,
    MailPoolDep,
    SessionDep,
    rate_limited,
)
from fastapi_app.openapi import JSON_BODY_ERRORS, OAUTH_ERROR, error_responses
from shared.domain.schemas import (
    Accepted,
    LoginRequest,
    OAuth2PasswordForm,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
)
from shared.web.bodies import is_form_media_type

router = APIRouter(prefix="/auth", tags=["auth"])

# The form issue_token reads by hand, described for OpenAPI (and Swagger UI) all the same.
TOKEN_FORM_DOCS = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": OAuth2PasswordForm.model_json_schema()}
        },
    }
}


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    dependencies=[JSONContentType, rate_limited("signup")],
    responses={
        202: {"model": Accepted, "description": "With AUTHTWIN_REQUIRE_VERIFIED_LOGIN: mailed"},
        **error_responses(409, *JSON_BODY_ERRORS, 429, 503),
    },
)
def signup(
    body: UserCreate,
    session: SessionDep,
    ip: ClientIP,
    auth: AuthServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> object:
    result = auth.signup(session=session, data=body, client_ip=ip)
    send_mail_after_response(background, session, mail)
    if isinstance(result, Accepted):
        # A response returned as is still carries the request's background tasks.
        return JSONResponse(result.model_dump(), status_code=status.HTTP_202_ACCEPTED)
    return result


@router.post(
    "/token",
    response_model=TokenPair,
    openapi_extra=TOKEN_FORM_DOCS,
    dependencies=[rate_limited("token")],
    responses={**OAUTH_ERROR, **error_responses(413, 429, 503)},
)
async def issue_token(
    request: Request, session: SessionDep, ip: ClientIP, auth: AuthServiceDep
) -> object:
    # The body is read here, not declared as Form() parameters: those would keep one of two
    # repeated fields (RFC 6749 forbids repeats) and answer a missing one with 422, where the
    # grant must answer 400 invalid_request. Nor through request.form(), which parses on the
    # event loop, where every request of the process waits. Reading is I/O, bounded by
    # max_body_bytes; parsing the form and hashing the password run in the threadpool.
    declared = request.headers.getlist("content-type")
    form = await request.body() if len(declared) == 1 and is_form_media_type(declared[0]) else None
    return await run_in_threadpool(auth.token_from_form, session=session, form=form, client_ip=ip)


@router.post(
    "/login",
    response_model=TokenPair,
    dependencies=[JSONContentType, rate_limited("login")],
    responses=error_responses(401, 403, *JSON_BODY_ERRORS, 429, 503),
)
def login(body: LoginRequest, session: SessionDep, ip: ClientIP, auth: AuthServiceDep) -> object:
    return auth.login(session=session, email=body.email, password=body.password, client_ip=ip)


@router.post(
    "/refresh",
    response_model=TokenPair,
    dependencies=[JSONContentType, rate_limited("refresh")],
    responses=error_responses(401, *JSON_BODY_ERRORS, 429, 503),
)
def refresh(
    body: RefreshRequest, session: SessionDep, ip: ClientIP, auth: AuthServiceDep
) -> object:
    return auth.refresh(session=session, refresh_token=body.refresh_token, client_ip=ip)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no Content-Type for an empty 204 (see routes/users.py)
    dependencies=[JSONContentType],
    responses=error_responses(401, *JSON_BODY_ERRORS),
)
def logout(
    user: CurrentUser,
    access: AccessClaims,
    body: RefreshRequest,
    session: SessionDep,
    ip: ClientIP,
    auth: AuthServiceDep,
) -> None:
    auth.logout(
        session=session,
        actor=user,
        access=access,
        refresh_token=body.refresh_token,
        client_ip=ip,
    )
