"""/health: readiness (database, and Redis when configured); /health/live: liveness."""

from fastapi import APIRouter

from fastapi_app.deps import ReaderDep
from fastapi_app.openapi import error_responses
from shared.domain.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses=error_responses(503))
async def health(reader: ReaderDep) -> object:
    """Readiness: 503 while the database, or Redis when configured, does not answer."""
    # async, through the reader: a probe must not queue behind password hashing in the
    # threadpool, or a busy login burst would read as an unhealthy process.
    return await reader.health()


@router.get("/health/live", response_model=Health)
async def live() -> object:
    """Liveness: 200 whenever the process answers at all; it checks nothing else."""
    # Depends on nothing: a process that answers is alive, whatever its database does.
    return Health()
