"""/auth: a forgotten password, and proving an address, each finished by a mailed link.

Every route that writes mail ends the same way: the service committed the messages with
its changes, and ``send_mail_after_response`` hands them to the runtime's mail pool
(fastapi_app/routes/recovery.py has ``BackgroundTasks`` do it after the response).
"""

from flask import Blueprint
from flask.typing import ResponseReturnValue

from flask_app.background import send_mail_after_response
from flask_app.deps import (
    get_client_ip,
    get_current_user,
    get_recovery_service,
    get_session,
    rate_limited,
)
from flask_app.validation import json_body, no_content, serialize
from shared.domain.schemas import (
    Accepted,
    EmailVerification,
    PasswordResetConfirm,
    PasswordResetRequest,
    UserPublic,
)

bp = Blueprint("recovery", __name__, url_prefix="/auth")


@bp.post("/password-reset")
@rate_limited("password_reset")
def request_password_reset() -> ResponseReturnValue:
    body = json_body(PasswordResetRequest)
    accepted = get_recovery_service().request_password_reset(
        session=get_session(), email=body.email, client_ip=get_client_ip()
    )
    send_mail_after_response()
    return serialize(Accepted, accepted), 202


@bp.post("/password-reset/confirm")
@rate_limited("reset_confirm")
def reset_password() -> ResponseReturnValue:
    body = json_body(PasswordResetConfirm)
    get_recovery_service().reset_password(
        session=get_session(),
        token=body.token,
        new_password=body.new_password,
        client_ip=get_client_ip(),
    )
    send_mail_after_response()
    return no_content()


@bp.post("/verify")
@rate_limited("verify")
def verify_email() -> ResponseReturnValue:
    body = json_body(EmailVerification)
    user = get_recovery_service().verify_email(
        session=get_session(), token=body.token, password=body.password, client_ip=get_client_ip()
    )
    # A change of address it completes writes the notice to the old address.
    send_mail_after_response()
    return serialize(UserPublic, user)


@bp.post("/verify/request")
def request_verification() -> ResponseReturnValue:
    user = get_current_user()
    accepted = get_recovery_service().request_verification(
        session=get_session(), user_id=user.id, client_ip=get_client_ip()
    )
    send_mail_after_response()
    return serialize(Accepted, accepted), 202
