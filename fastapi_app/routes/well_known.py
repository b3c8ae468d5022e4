"""/.well-known/jwks.json: the public signing key, so other services verify tokens alone."""

from typing import Any

from fastapi import APIRouter

from fastapi_app.deps import RuntimeDep

router = APIRouter(prefix="/.well-known", tags=["keys"])


@router.get("/jwks.json")
async def jwks(runtime: RuntimeDep) -> dict[str, Any]:
    """RFC 7517 key set; empty under HS256, whose shared secret is never published."""
    return runtime.tokens.key.jwks()
