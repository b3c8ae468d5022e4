"""/health: can this process reach its database?"""

from fastapi import APIRouter

from fastapi_app.deps import RuntimeDep
from fastapi_app.openapi import errors
from shared.schemas import Health
from shared.services import health as health_service

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses=errors(503))
def health(runtime: RuntimeDep) -> object:
    return health_service.check(engine=runtime.read_engine)
