"""/health: readiness (database, and Redis when configured); /health/live: liveness."""

from flask import Blueprint
from flask.typing import ResponseReturnValue

from flask_app.deps import get_runtime
from flask_app.validation import serialize
from shared.domain.schemas import Health
from shared.services import health as health_service

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    runtime = get_runtime()
    return serialize(
        Health, health_service.check(engine=runtime.probe_engine, throttle=runtime.throttle)
    )


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    # Depends on nothing: a process that answers is alive, whatever its database does.
    return serialize(Health, Health())
