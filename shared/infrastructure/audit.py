"""Security events as structured log records (OWASP Logging Cheat Sheet, ASVS v5 ch. 16).

Each event says who (user id, or the email that was tried), what, from where (client IP) and
the outcome, as fields of the record (``record.auth``), which ``logs.JsonFormatter`` writes
as one JSON object per line. Passwords and tokens are never passed in, so they cannot leak out.

Two kinds: :func:`auth_event`, a user acting on their own account (login, logout, password
change), and :func:`admin_event`, one account acting on another (``actor_id`` on
``target_id``), including every refusal of an administrative request.
"""

import logging
from typing import Literal

logger = logging.getLogger("authtwin.audit")

Outcome = Literal["success", "failure"]


def auth_event(
    event: str,
    outcome: Outcome,
    *,
    client_ip: str,
    user_id: int | None = None,
    email: str | None = None,
    reason: str | None = None,
) -> None:
    _log(
        event=event,
        outcome=outcome,
        client_ip=client_ip,
        user_id=user_id,
        email=email,
        reason=reason,
    )


def admin_event(
    event: str,
    outcome: Outcome,
    *,
    actor_id: int,
    client_ip: str,
    target_id: int | None = None,
    resource: str | None = None,
    reason: str | None = None,
) -> None:
    """An account's act on another one, or its refused attempt (``reason`` says why).

    ``resource`` (``"PATCH /api/v1/users/7"``) names a refused request whose target was never
    looked at: the privilege check comes before the path or body is read.
    """
    _log(
        event=event,
        outcome=outcome,
        actor_id=actor_id,
        target_id=target_id,
        resource=resource,
        client_ip=client_ip,
        reason=reason,
    )


def _log(*, event: str, outcome: Outcome, **fields: object) -> None:
    auth: dict[str, object] = {"event": event, "outcome": outcome}
    auth |= {name: value for name, value in fields.items() if value is not None}
    level = logging.INFO if outcome == "success" else logging.WARNING
    logger.log(level, "%s %s", event, outcome, extra={"auth": auth})
