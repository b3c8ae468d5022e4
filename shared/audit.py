"""Authentication events as structured log records (OWASP Logging Cheat Sheet, ASVS v5 ch. 16).

Each event says who (user id, or the email that was tried), what, from where (client IP) and
the outcome, as fields of the record (``record.auth``), which ``JsonFormatter`` writes as one
JSON object per line. Passwords and tokens are never passed in, so they cannot leak out.
"""

import json
import logging
from datetime import UTC, datetime
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the time, level, logger, message and any ``auth`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "auth", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging() -> None:
    """Send ``authtwin`` records to stderr as JSON, once per process, unless already set up.

    Records still propagate, so a host application's (or pytest's) handlers see them too.
    """
    app_logger = logging.getLogger("authtwin")
    if app_logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
