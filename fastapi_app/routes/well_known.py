"""/.well-known/jwks.json: the public signing key, so other services verify tokens alone."""

from fastapi import APIRouter

from fastapi_app.deps import RuntimeDep
from shared.domain.schemas import JsonWebKeySet

router = APIRouter(prefix="/.well-known", tags=["keys"])


@router.get("/jwks.json", response_model=JsonWebKeySet)
async def jwks(runtime: RuntimeDep) -> object:
    """RFC 7517 key set; empty under HS256, whose shared secret is never published."""
    return runtime.tokens.key.jwks()
