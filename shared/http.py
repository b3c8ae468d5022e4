"""HTTP-level conventions both twins apply identically (framework-free helpers)."""

from email.message import Message

# An auth API's responses are personal or secret (tokens, profiles): never cache them
# (RFC 6749 §5.1 for tokens; OWASP REST Security Cheat Sheet for the rest).
RESPONSE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",  # RFC 6749 §5.1 still asks for it, for HTTP/1.0 caches
    "X-Content-Type-Options": "nosniff",
}


# Methods whose requests carry a body this API reads.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# RFC 9110's name for 413 (Python 3.11's http.HTTPStatus still says "Request Entity Too Large").
CONTENT_TOO_LARGE = "Content Too Large"


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, with any parameters (RFC 6839)."""
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
