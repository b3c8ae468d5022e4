"""/users: the caller's own account, and administration by superusers."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Response, status

from fastapi_app.background import send_mail_after_response
from fastapi_app.deps import (
    AdminServiceDep,
    ClientIP,
    CurrentSuperuser,
    CurrentUser,
    JSONContentType,
    MailPoolDep,
    SessionDep,
    UserServiceDep,
)
from fastapi_app.openapi import JSON_BODY_ERRORS, error_responses
from shared.domain.schemas import (
    MAX_DB_INT,
    PageParams,
    PasswordChange,
    UserPage,
    UserPublic,
    UserUpdate,
    UserUpdateMe,
)

router = APIRouter(prefix="/users", tags=["users"])
# An id PostgreSQL's integer can hold, else 422 (Flask: validation.path_user_id).
UserIdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT)]


@router.get("/me", response_model=UserPublic, responses=error_responses(401))
async def read_me(user: CurrentUser) -> object:
    return user


@router.patch(
    "/me",
    response_model=UserPublic,
    dependencies=[JSONContentType],
    responses=error_responses(401, *JSON_BODY_ERRORS, 429, 503),
)
def update_me(
    user: CurrentUser,
    body: UserUpdateMe,
    session: SessionDep,
    ip: ClientIP,
    users: UserServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> object:
    updated = users.update_me(session=session, user_id=user.id, data=body, client_ip=ip)
    send_mail_after_response(background, session, mail)
    return updated


@router.put(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    # A bare Response: FastAPI's default JSONResponse would send a Content-Type with the
    # empty body; the Flask twin sends none.
    response_class=Response,
    dependencies=[JSONContentType],
    responses=error_responses(401, *JSON_BODY_ERRORS, 429, 503),
)
def change_password(
    user: CurrentUser,
    body: PasswordChange,
    session: SessionDep,
    ip: ClientIP,
    users: UserServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> None:
    users.change_password(
        session=session,
        user_id=user.id,
        current=body.current_password,
        new=body.new_password,
        client_ip=ip,
    )
    send_mail_after_response(background, session, mail)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403),
)
def delete_me(user: CurrentUser, session: SessionDep, ip: ClientIP, users: UserServiceDep) -> None:
    users.delete_me(session=session, user_id=user.id, client_ip=ip)


@router.get("", response_model=UserPage, responses=error_responses(401, 403))
def list_users(
    _: CurrentSuperuser,
    page: Annotated[PageParams, Query()],
    session: SessionDep,
    admins: AdminServiceDep,
) -> object:
    return admins.list_users(session=session, page=page)


@router.get("/{user_id}", response_model=UserPublic, responses=error_responses(401, 403, 404))
def read_user(
    user: CurrentUser,
    user_id: UserIdPath,
    session: SessionDep,
    ip: ClientIP,
    admins: AdminServiceDep,
) -> object:
    return admins.get_user(session=session, actor=user, user_id=user_id, client_ip=ip)


@router.patch(
    "/{user_id}",
    response_model=UserPublic,
    dependencies=[JSONContentType],
    responses=error_responses(401, 403, 404, 409, *JSON_BODY_ERRORS, 503),
)
def update_user(
    admin: CurrentSuperuser,
    user_id: UserIdPath,
    body: UserUpdate,
    session: SessionDep,
    ip: ClientIP,
    admins: AdminServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> object:
    updated = admins.update_user(
        session=session, actor=admin, user_id=user_id, data=body, client_ip=ip
    )
    send_mail_after_response(background, session, mail)
    return updated


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404),
)
def delete_user(
    admin: CurrentSuperuser,
    user_id: UserIdPath,
    session: SessionDep,
    ip: ClientIP,
    admins: AdminServiceDep,
) -> None:
    admins.delete_user(session=session, actor=admin, user_id=user_id, client_ip=ip)
