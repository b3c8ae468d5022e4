"""Authentication events as structured log records (OWASP Logging Cheat Sheet, ASVS v5 ch. 16).

Each event says who (user id, or the email that was tried), what, from where (client IP) and
the outcome, as fields of the record (``record.auth``), which ``logs.JsonFormatter`` writes
as one JSON object per line. Passwords and tokens are never passed in, so they cannot leak out.
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
    fields = {
        "event": event,
        "outcome": outcome,
        "client_ip": client_ip,
        "user_id": user_id,
        "email": email,
        "reason": reason,
    }
    auth = {name: value for name, value in fields.items() if value is not None}
    level = logging.INFO if outcome == "success" else logging.WARNING
    logger.log(level, "%s %s", event, outcome, extra={"auth": auth})
