"""/users: the caller's own account, and administration by superusers."""

from flask import Blueprint
from flask.typing import ResponseReturnValue

from flask_app.deps import (
    current_superuser,
    current_user,
    get_client_ip,
    get_runtime,
    get_session,
    json_body,
    path_user_id,
    path_user_id_and_body,
    query_params,
)
from flask_app.responses import no_content, serialize
from shared.schemas import (
    PageParams,
    PasswordChange,
    UserPage,
    UserPublic,
    UserUpdate,
    UserUpdateMe,
)
from shared.services import users

bp = Blueprint("users", __name__, url_prefix="/users")


@bp.get("/me")
def read_me() -> ResponseReturnValue:
    user = current_user()
    return serialize(UserPublic, user)


@bp.patch("/me")
def update_me() -> ResponseReturnValue:
    user = current_user()
    body = json_body(UserUpdateMe)
    runtime = get_runtime()
    updated = users.update_me(
        session=get_session(),
        passwords=runtime.passwords,
        throttle=runtime.throttle,
        user_id=user.id,
        data=body,
        client_ip=get_client_ip(),
    )
    return serialize(UserPublic, updated)


@bp.put("/me/password")
def change_password() -> ResponseReturnValue:
    user = current_user()
    body = json_body(PasswordChange)
    runtime = get_runtime()
    users.change_password(
        session=get_session(),
        passwords=runtime.passwords,
        policy=runtime.policy,
        throttle=runtime.throttle,
        user_id=user.id,
        current=body.current_password,
        new=body.new_password,
        client_ip=get_client_ip(),
    )
    return no_content()


@bp.delete("/me")
def delete_me() -> ResponseReturnValue:
    user = current_user()
    users.delete_me(session=get_session(), user_id=user.id)
    return no_content()


@bp.get("")
def list_users() -> ResponseReturnValue:
    current_superuser()
    page = query_params(PageParams)
    return serialize(UserPage, users.list_users(session=get_session(), page=page))


@bp.get("/<user_id>")
def read_user(user_id: str) -> ResponseReturnValue:
    user = current_user()
    found = users.get_user(session=get_session(), actor=user, user_id=path_user_id(user_id))
    return serialize(UserPublic, found)


@bp.patch("/<user_id>")
def update_user(user_id: str) -> ResponseReturnValue:
    current_superuser()
    target, body = path_user_id_and_body(user_id, UserUpdate)
    runtime = get_runtime()
    updated = users.update_user(
        session=get_session(),
        passwords=runtime.passwords,
        policy=runtime.policy,
        user_id=target,
        data=body,
    )
    return serialize(UserPublic, updated)


@bp.delete("/<user_id>")
def delete_user(user_id: str) -> ResponseReturnValue:
    user = current_superuser()
    users.delete_user(session=get_session(), actor=user, user_id=path_user_id(user_id))
    return no_content()
