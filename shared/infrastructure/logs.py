"""The service's log records, one JSON object per line, the same from both twins.

Records still propagate, so a host application's (or pytest's) handlers see them too.
"""

import json
import logging
from datetime import UTC, datetime

logger = logging.getLogger("authtwin")


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
    """Send ``authtwin`` records to stderr as JSON, once per process, unless already set up."""
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def log_unexpected_error(exc: BaseException) -> None:
    """A bug, with its traceback, as one record: what each twin's 500 handler logs."""
    logger.error("unhandled error", exc_info=exc)
