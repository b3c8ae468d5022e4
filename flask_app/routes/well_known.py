"""/.well-known/jwks.json: the public signing key, so other services verify tokens alone."""

from flask import Blueprint
from flask.typing import ResponseReturnValue

from flask_app.deps import get_runtime
from flask_app.validation import serialize
from shared.domain.schemas import JsonWebKeySet

bp = Blueprint("well_known", __name__, url_prefix="/.well-known")


@bp.get("/jwks.json")
def jwks() -> ResponseReturnValue:
    """RFC 7517 key set; empty under HS256, whose shared secret is never published."""
    return serialize(JsonWebKeySet, get_runtime().tokens.key.jwks())
