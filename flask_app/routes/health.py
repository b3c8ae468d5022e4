"""/health: can this process reach its database?"""

from flask import Blueprint
from flask.typing import ResponseReturnValue

from flask_app.deps import get_runtime
from flask_app.validation import serialize
from shared.domain.schemas import Health
from shared.services import health as health_service

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    return serialize(Health, health_service.check(engine=get_runtime().read_engine))
