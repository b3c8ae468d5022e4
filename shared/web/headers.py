"""The headers every response carries, so both twins answer alike (OWASP REST Security), and
the one request header the apps decode: its size, and how its token is read."""

from shared.web.account_pages import PAGES as ACCOUNT_PAGES

# The longest Authorization header read: one over it is an invalid token before any of it is
# decoded (uvicorn's own servers passed a 4 MB bearer token on to be base64-decoded). The
# tokens issued here are under 1 KiB (HS256; RS256 with a 4096-bit key adds 700 bytes), so
# 4 KiB leaves room for claims to grow; the production servers' line limit (8190 bytes,
# deploy/servers.py) would refuse twice as much with 431, but an app must not rely on the
# server in front of it. Counted in characters, which are bytes here: both servers decode
# header values as latin-1.
MAX_AUTHORIZATION_BYTES = 4096

# The whitespace HTTP allows around a token (RFC 9110 §5.6.3: SP and HTAB). Not str.strip(),
# which also removes NBSP (0xA0) and NEL (0x85), ordinary field content to HTTP: trimming
# those would give one token several spellings (RFC 7515 §2 allows it one).
HTTP_WHITESPACE = " \t"


def bearer_token_in(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (RFC 6750 §2.1), else None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip(HTTP_WHITESPACE) if scheme.lower() == "bearer" else None


# OWASP REST Security Cheat Sheet, "Security headers". An auth API's responses are personal
# or secret (tokens, profiles): never cache them (also RFC 6749 §5.1 for tokens). JSON is
# never a page: it loads nothing (default-src 'none'), is framed by no one, and a browser
# following a link out of it sends no Referer.
RESPONSE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",  # RFC 6749 §5.1 still asks for it, for HTTP/1.0 caches
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
}

# The interactive docs are pages: they run Swagger UI / ReDoc from this server's own assets
# (shared/web/docs.py), which set inline styles and start ReDoc's search worker from a blob.
DOCS_PATHS = frozenset({"/docs", "/redoc"})
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# The pages the mailed links open (shared/web/account_pages.py) handle a password and a
# one-time token, so they get the tightest policy a working page can: their own script and
# stylesheet, requests to this server alone, nothing inline: markup injected into them, a
# <script> or an on…= handler, would not run.
ACCOUNT_PAGES_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_POLICIES = {
    **dict.fromkeys(DOCS_PATHS, DOCS_CONTENT_SECURITY_POLICY),
    **dict.fromkeys(ACCOUNT_PAGES, ACCOUNT_PAGES_CONTENT_SECURITY_POLICY),
}
# Built once: each page's headers are the API's, with its own policy in place of the API's.
PAGE_HEADERS = {
    path: {**RESPONSE_HEADERS, "Content-Security-Policy": policy}
    for path, policy in PAGE_POLICIES.items()
}


def response_headers(path: str) -> dict[str, str]:
    """The headers every response to ``path`` carries (unless the route set its own)."""
    return PAGE_HEADERS.get(path, RESPONSE_HEADERS)
