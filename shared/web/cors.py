"""CORS: one policy, framework-free, that both twins' thin adapters apply alike.

Off unless ``AUTHTWIN_CORS_ORIGINS`` names origins; then exactly those origins, never ``*``
and never ``null`` (OWASP REST Security Cheat Sheet). Not Starlette's CORSMiddleware nor
flask-cors: Starlette answers a refused preflight with a plain-text 400 and flask-cors
answers differently again, so neither twin could match the other, nor the JSON contract.
"""

from collections.abc import Iterable

# What a browser may ask for in a preflight; the API's routes use no other method or header.
ALLOWED_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
# Headers a script may read off a response: without these, a browser client could not see
# how long a 429 asks it to wait, nor why a 401 refused its token.
EXPOSED_HEADERS = ("Retry-After", "WWW-Authenticate")
# Long enough to spare most preflights, short enough that a removed origin stops working soon.
MAX_AGE_SECONDS = 600
# Fetch's CORS-safelisted methods need not be listed in Access-Control-Allow-Methods, but a
# browser still preflights them when a header (Authorization) is not safelisted; HEAD is
# the one of them that ALLOWED_METHODS leaves out.
_SAFELISTED_UNLISTED_METHODS = frozenset({"HEAD"})


class CorsPolicy:
    """Which origins get CORS headers, and which headers; the adapters only copy them.

    No ``Access-Control-Allow-Credentials``, ever: the API authenticates with bearer tokens
    sent in the Authorization header, not cookies, so a browser has no ambient credential
    to attach and a cross-origin page can act only with a token it was given.
    """

    def __init__(self, origins: Iterable[str]) -> None:
        # Browsers serialise an origin's scheme and host in lowercase; lowering the configured
        # ones keeps "https://App.example" in the environment from silently matching nothing.
        # What a request sends is compared as sent, so the match stays exact.
        self._origins = frozenset(origin.lower() for origin in origins) - {"null"}

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def allows(self, origin: str | None) -> bool:
        """An exact, case-sensitive match; ``null`` is never configured, so never matches."""
        return origin is not None and origin in self._origins

    def preflight_headers(
        self, origin: str | None, method: str | None, request_headers: str | None
    ) -> dict[str, str] | None:
        """The headers of a 204 answering an OPTIONS preflight; None if it is not one we allow.

        ``method`` and ``request_headers`` are the Access-Control-Request-Method and
        -Headers values. On None the OPTIONS goes on to routing like any other, and is
        answered as any OPTIONS is (a JSON 405), without CORS headers: the browser then
        refuses the actual request itself.
        """
        if origin is None or not self.allows(origin):
            return None
        # Fetch compares methods case-sensitively (it upper-cases only the standard ones).
        if method not in ALLOWED_METHODS and method not in _SAFELISTED_UNLISTED_METHODS:
            return None
        if not _only_allowed_headers(request_headers):
            return None
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            "Vary": "Origin",
        }

    def response_headers(self, origin: str | None, *, preflight: bool = False) -> dict[str, str]:
        """CORS headers for every response but an answered preflight: ``{}`` while CORS is off.

        When on, every response says ``Vary: Origin`` — allowed origin or not — so a cache
        never serves one origin's answer (with or without Access-Control-Allow-Origin) to
        another. The allowed origin is echoed, never ``*``; but not on a refused
        ``preflight``, whose 405 must not look like consent.
        """
        if not self.enabled:
            return {}
        if preflight or origin is None or not self.allows(origin):
            return {"Vary": "Origin"}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": ", ".join(EXPOSED_HEADERS),
            "Vary": "Origin",
        }


def is_preflight(method: str, request_method: str | None) -> bool:
    """An OPTIONS with Access-Control-Request-Method: what a browser asks before the real
    request (Fetch, "CORS-preflight request"); any other OPTIONS is just an OPTIONS."""
    return method == "OPTIONS" and request_method is not None


def merged_vary(current: str | None, name: str) -> str:
    """``current`` with ``name`` added once: another layer may have said Vary already."""
    if not current:
        return name
    listed = {item.strip().lower() for item in current.split(",")}
    if name.lower() in listed or "*" in listed:
        return current
    return f"{current}, {name}"


def _only_allowed_headers(request_headers: str | None) -> bool:
    """Access-Control-Request-Headers (names, comma separated, any case) within ours."""
    allowed = {name.lower() for name in ALLOWED_HEADERS}
    requested = {name.strip().lower() for name in (request_headers or "").split(",")}
    return requested - {""} <= allowed
