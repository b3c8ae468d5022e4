"""What the Flask twin's gunicorn needs beyond its command-line settings (deploy/servers.py
passes ``--config python:deploy.gunicorn_conf``): one server hook and two overrides, each for
a behaviour gunicorn 27 has no setting for. tests/test_server_hardening.py pins all three.

The overrides replace gunicorn functions when gunicorn loads this module, in the arbiter,
before any worker forks: the last resort, each a few lines, each named where it is made.
"""

import json
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi

# gunicorn drains at most this much of a body the application left unread before reusing the
# connection (gunicorn.http.parser._DRAIN_MAX_BYTES, a private constant, so repeated here).
GUNICORN_DRAIN_BYTES = 64 * 1024


def pre_request(worker: Any, req: Any) -> None:
    """A request whose body gunicorn might not drain is the last on its connection, and its
    answer says ``Connection: close``.

    gunicorn announces keep-alive in the response head, and only afterwards learns whether
    the application read the body; an unread body over 64 KiB then makes it close the
    connection it had just offered to keep: 19 of 20 next requests on it failed. The
    application cannot say ``Connection: close`` (gunicorn drops hop-by-hop headers from
    it), so the decision is made here, on what the head declares: a length over what gunicorn
    drains, or a chunked body, whose length is unknown. The API's bodies are small JSON and
    forms: a client sending such a body pays one reconnection at most.
    """
    worker.log.debug("%s %s", req.method, req.path)  # what gunicorn's default hook does
    for name, value in req.headers:
        declared_large = name == "CONTENT-LENGTH" and int(value) > GUNICORN_DRAIN_BYTES
        if declared_large or name == "TRANSFER-ENCODING":
            req.force_close()
            return


_default_headers = wsgi.Response.default_headers


def _default_headers_without_server(self: Any) -> list[str]:
    return [line for line in _default_headers(self) if not line.startswith("Server:")]


# No banner (uvicorn: --no-server-header). gunicorn writes "Server: gunicorn" into every
# response head and has no setting to leave it out (benoitc/gunicorn#825): its maintainers'
# advice, an application Server header, would be sent as a second one. This wraps the one
# method that writes the head's server lines; it runs in the arbiter, before workers fork.
wsgi.Response.default_headers = _default_headers_without_server


def _write_json_error(sock: Any, status_int: int, reason: str, _mesg: str) -> None:
    """The contract's ``{"detail": <reason phrase>}`` where gunicorn writes an HTML page, for a
    request it refuses itself (431, 414, 400...), as deploy/uvicorn_protocol.py does for
    uvicorn. ``_mesg``, gunicorn's explanation, is in its log already."""
    body = json.dumps({"detail": HTTPStatus(status_int).phrase}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


# gunicorn.workers.base.Worker.handle_error, its one caller, looks it up on the module.
util.write_error = _write_json_error
