"""/auth: a forgotten password, and proving an address, each finished by a mailed link.

Every route that writes mail ends the same way: the service committed the messages with
its changes, and ``send_mail_after_response`` has ``BackgroundTasks`` hand them to the
runtime's mail pool after the response (flask_app/routes/recovery.py hands them over itself).
"""

from fastapi import APIRouter, BackgroundTasks, Response, status

from fastapi_app.background import send_mail_after_response
from fastapi_app.deps import (
    ClientIP,
    CurrentUser,
    JSONContentType,
    MailPoolDep,
    RecoveryServiceDep,
    SessionDep,
    rate_limited,
)
from fastapi_app.openapi import JSON_BODY_ERRORS, error_responses
from shared.domain.schemas import (
    Accepted,
    EmailVerification,
    PasswordResetConfirm,
    PasswordResetRequest,
    UserPublic,
)

router = APIRouter(prefix="/auth", tags=["recovery"])


@router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[JSONContentType, rate_limited("password_reset")],
    responses=error_responses(*JSON_BODY_ERRORS, 429, 503),
)
def request_password_reset(
    body: PasswordResetRequest,
    session: SessionDep,
    ip: ClientIP,
    recovery: RecoveryServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> object:
    accepted = recovery.request_password_reset(session=session, email=body.email, client_ip=ip)
    send_mail_after_response(background, session, mail)
    return accepted


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no Content-Type for an empty 204 (see routes/users.py)
    dependencies=[JSONContentType, rate_limited("reset_confirm")],
    responses=error_responses(400, *JSON_BODY_ERRORS, 429, 503),
)
def reset_password(
    body: PasswordResetConfirm,
    session: SessionDep,
    ip: ClientIP,
    recovery: RecoveryServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> None:
    recovery.reset_password(
        session=session, token=body.token, new_password=body.new_password, client_ip=ip
    )
    send_mail_after_response(background, session, mail)


@router.post(
    "/verify",
    response_model=UserPublic,
    dependencies=[JSONContentType, rate_limited("verify")],
    responses=error_responses(400, *JSON_BODY_ERRORS, 429, 503),
)
def verify_email(
    body: EmailVerification,
    session: SessionDep,
    ip: ClientIP,
    recovery: RecoveryServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> object:
    # A change of address it completes writes the notice to the old address.
    verified = recovery.verify_email(
        session=session, token=body.token, password=body.password, client_ip=ip
    )
    send_mail_after_response(background, session, mail)
    return verified


@router.post(
    "/verify/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(401, 409, 429, 503),
)
def request_verification(
    user: CurrentUser,
    session: SessionDep,
    ip: ClientIP,
    recovery: RecoveryServiceDep,
    background: BackgroundTasks,
    mail: MailPoolDep,
) -> object:
    accepted = recovery.request_verification(session=session, user_id=user.id, client_ip=ip)
    send_mail_after_response(background, session, mail)
    return accepted
