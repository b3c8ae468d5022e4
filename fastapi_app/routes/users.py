"""/users: the caller's own account, and administration by superusers."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from fastapi_app.deps import ClientIP, CurrentUser, JSONBody, RuntimeDep, SessionDep, Superuser
from fastapi_app.openapi import JSON_BODY_ERRORS, errors
from shared.schemas import (
    MAX_DB_INT,
    PageParams,
    PasswordChange,
    UserPage,
    UserPublic,
    UserUpdate,
    UserUpdateMe,
)
from shared.services import users

router = APIRouter(prefix="/users", tags=["users"])
# 204 routes answer with a bare Response: FastAPI's default JSONResponse would send a
# Content-Type with the empty body; the Flask twin sends none.
UserIdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT)]


@router.get("/me", response_model=UserPublic, responses=errors(401))
async def read_me(user: CurrentUser) -> object:
    return user


@router.patch(
    "/me",
    response_model=UserPublic,
    dependencies=[JSONBody],
    responses=errors(401, 409, *JSON_BODY_ERRORS, 429),
)
def update_me(
    body: UserUpdateMe, user: CurrentUser, session: SessionDep, runtime: RuntimeDep, ip: ClientIP
) -> object:
    return users.update_me(
        session=session,
        passwords=runtime.passwords,
        throttle=runtime.throttle,
        user_id=user.id,
        data=body,
        client_ip=ip,
    )


@router.put(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[JSONBody],
    responses=errors(401, *JSON_BODY_ERRORS, 429),
)
def change_password(
    body: PasswordChange, user: CurrentUser, session: SessionDep, runtime: RuntimeDep, ip: ClientIP
) -> None:
    users.change_password(
        session=session,
        passwords=runtime.passwords,
        policy=runtime.policy,
        throttle=runtime.throttle,
        user_id=user.id,
        current=body.current_password,
        new=body.new_password,
        client_ip=ip,
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403),
)
def delete_me(user: CurrentUser, session: SessionDep) -> None:
    users.delete_me(session=session, user_id=user.id)


@router.get("", response_model=UserPage, responses=errors(401, 403))
def list_users(page: Annotated[PageParams, Query()], _: Superuser, session: SessionDep) -> object:
    return users.list_users(session=session, page=page)


@router.get("/{user_id}", response_model=UserPublic, responses=errors(401, 403, 404))
def read_user(user_id: UserIdPath, user: CurrentUser, session: SessionDep) -> object:
    return users.get_user(session=session, actor=user, user_id=user_id)


@router.patch(
    "/{user_id}",
    response_model=UserPublic,
    dependencies=[JSONBody],
    responses=errors(401, 403, 404, 409, *JSON_BODY_ERRORS),
)
def update_user(
    user_id: UserIdPath, body: UserUpdate, _: Superuser, session: SessionDep, runtime: RuntimeDep
) -> object:
    return users.update_user(
        session=session,
        passwords=runtime.passwords,
        policy=runtime.policy,
        user_id=user_id,
        data=body,
    )


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403, 404),
)
def delete_user(user_id: UserIdPath, user: Superuser, session: SessionDep) -> None:
    users.delete_user(session=session, actor=user, user_id=user_id)
