"""/users: the caller's own account, and administration by superusers."""

from flask import Blueprint
from flask.typing import ResponseReturnValue

from flask_app.background import send_mail_after_response
from flask_app.deps import (
    get_admin_service,
    get_client_ip,
    get_current_superuser,
    get_current_user,
    get_session,
    get_user_service,
)
from flask_app.validation import (
    json_body,
    no_content,
    path_user_id,
    path_user_id_and_body,
    query_params,
    serialize,
)
from shared.domain.schemas import (
    PageParams,
    PasswordChange,
    UserPage,
    UserPublic,
    UserUpdate,
    UserUpdateMe,
)

bp = Blueprint("users", __name__, url_prefix="/users")


@bp.get("/me")
def read_me() -> ResponseReturnValue:
    user = get_current_user()
    return serialize(UserPublic, user)


@bp.patch("/me")
def update_me() -> ResponseReturnValue:
    user = get_current_user()
    body = json_body(UserUpdateMe)
    updated = get_user_service().update_me(
        session=get_session(), user_id=user.id, data=body, client_ip=get_client_ip()
    )
    send_mail_after_response()
    return serialize(UserPublic, updated)


@bp.put("/me/password")
def change_password() -> ResponseReturnValue:
    user = get_current_user()
    body = json_body(PasswordChange)
    get_user_service().change_password(
        session=get_session(),
        user_id=user.id,
        current=body.current_password,
        new=body.new_password,
        client_ip=get_client_ip(),
    )
    send_mail_after_response()
    return no_content()


@bp.delete("/me")
def delete_me() -> ResponseReturnValue:
    user = get_current_user()
    get_user_service().delete_me(session=get_session(), user_id=user.id, client_ip=get_client_ip())
    return no_content()


@bp.get("")
def list_users() -> ResponseReturnValue:
    get_current_superuser()
    page = query_params(PageParams)
    return serialize(UserPage, get_admin_service().list_users(session=get_session(), page=page))


# No <int:user_id>: the converter would 404 on /users/abc, where FastAPI answers 422, so the
# id comes as text and is validated (validation.path_user_id).
@bp.get("/<user_id>")
def read_user(user_id: str) -> ResponseReturnValue:
    user = get_current_user()
    target = path_user_id(user_id)
    found = get_admin_service().get_user(
        session=get_session(), actor=user, user_id=target, client_ip=get_client_ip()
    )
    return serialize(UserPublic, found)


@bp.patch("/<user_id>")
def update_user(user_id: str) -> ResponseReturnValue:
    admin = get_current_superuser()
    target, body = path_user_id_and_body(user_id, UserUpdate)
    updated = get_admin_service().update_user(
        session=get_session(), actor=admin, user_id=target, data=body, client_ip=get_client_ip()
    )
    send_mail_after_response()
    return serialize(UserPublic, updated)


@bp.delete("/<user_id>")
def delete_user(user_id: str) -> ResponseReturnValue:
    admin = get_current_superuser()
    target = path_user_id(user_id)
    get_admin_service().delete_user(
        session=get_session(), actor=admin, user_id=target, client_ip=get_client_ip()
    )
    return no_content()
