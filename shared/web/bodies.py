"""Request bodies: which methods carry one, which media type it must declare, and the words
for one that is too large."""

from email.message import Message

# Methods whose requests carry a body this API reads.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# RFC 9110's name for 413 (Python 3.11's http.HTTPStatus still says "Request Entity Too Large").
CONTENT_TOO_LARGE = "Content Too Large"


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, with any parameters (RFC 6839)."""
    if not content_type:
        return False
    maintype, subtype = _media_type(content_type)
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def is_form_media_type(content_type: str | None) -> bool:
    """``application/x-www-form-urlencoded``, with any parameters: the one body the OAuth2
    token endpoint reads (RFC 6749 §4.3.2). Multipart is not one: its parser is not run."""
    if not content_type:
        return False
    return _media_type(content_type) == ("application", "x-www-form-urlencoded")


def _media_type(content_type: str) -> tuple[str, str]:
    message = Message()
    message["content-type"] = content_type
    return message.get_content_maintype(), message.get_content_subtype()
