"""The FastAPI twin's worker: uvicorn's, under gunicorn's arbiter, with the settings the
``uvicorn`` command line would give it (deploy/servers.py passes it as ``--worker-class``).

gunicorn's arbiter, not uvicorn's ``--workers`` supervisor: on SIGTERM the supervisor keeps
the listening socket open until its workers have drained, so a connection made meanwhile is
accepted, never answered, and reset at their exit; gunicorn's arbiter closes its copy at
once, and each uvicorn worker its own as it stops, so a new client is refused at once and
can retry elsewhere. The arrangement is FastAPI's deployment guide's, with the worker of the
``uvicorn-worker`` package (``uvicorn.workers`` is deprecated in its favour).
"""

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from shared.services.mail_pool import STOP_GRACE_SECONDS
from shared.web.event_frames import MAX_SOCKET_MESSAGE_BYTES


class AuthtwinUvicornWorker(UvicornWorker):  # type: ignore[misc]  # gunicorn has no types
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",
        # gunicorn's limits on a request head, a deadline for it, and the application told
        # when the server stops (deploy/uvicorn_protocol.py).
        "http": "deploy.uvicorn_protocol:LimitedHttpToolsProtocol",
        # The WebSocket (/api/v1/ws) reads one message, an access token: 8 KiB, not the
        # 16 MiB uvicorn would otherwise read. sansio: the implementation uvicorn keeps.
        "ws": "websockets-sansio",
        "ws_max_size": MAX_SOCKET_MESSAGE_BYTES,
        "server_header": False,
        # The client address is the peer's: X-Forwarded-For is read by the application,
        # from the proxies it trusts (shared/web/client_ip.py), never by the server.
        "proxy_headers": False,
        "access_log": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn-worker leaves uvicorn's grace period unset (no limit). The arbiter kills a
        # worker --graceful-timeout after SIGTERM; within that, the connections drain first,
        # then the lifespan's shutdown gives mail under way its grace and lets go of the
        # rest: the drain gets what is left, a second to spare.
        drain = self.cfg.graceful_timeout - STOP_GRACE_SECONDS - 1
        self.config.timeout_graceful_shutdown = max(drain, 1)
