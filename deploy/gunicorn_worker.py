"""gunicorn's ``gthread`` worker, refusing new connections from the moment it stops, and
ending the application's event streams then.

On SIGTERM gunicorn's arbiter closes its copy of the listening socket, but each worker
keeps its own until it has drained the connections it holds (up to ``--graceful-timeout``):
the kernel goes on completing connections nobody will accept, clients send their requests
on them, and at the worker's exit they are reset, so a client cannot know whether its POST
ran. Closing the worker's copy as soon as it stops accepting closes the socket itself once
every worker has: a new client is refused at once, before it sent anything, and can retry
elsewhere.

An event stream never ends by itself: the worker would wait its whole grace period for it,
then cut it. Each request's environ carries the worker's ``ServerStop``
(shared/web/server_stop.py), set as the worker stops: the streams end at once, each with its
last word, and the worker exits as soon as its other requests are answered, and its idle
kept-alive connections (a stream's among them, once it ended) have lingered
``STOP_KEEPALIVE_LINGER`` for a request already on its way.

(deploy/servers.py passes it as ``--worker-class``, a documented extension point;
tests/test_server_hardening.py and tests/test_stream_shutdown.py pin the behaviour.)
"""

from typing import Any

from gunicorn.workers import gthread
from gunicorn.workers.gthread import ThreadWorker

from shared.web.server_stop import SERVER_STOP_KEY, ServerStop

WsgiApp = Any  # a WSGI callable: gunicorn has no types

# How long a stopping worker keeps an idle kept-alive connection open, for a request a client
# may already have sent on it: half a second, gthread's is 2 s. A request on its way arrives
# within a round trip; a client waiting to reuse its connection (an event stream's, which
# reconnects after its ``retry``) would hold the worker's exit for the whole 2 s. gthread
# reads this module constant, which has no setting, when a worker stops: set here, in the
# arbiter, before any worker forks; a gunicorn without it would ignore the assignment.
if not hasattr(gthread, "STOP_KEEPALIVE_LINGER"):
    raise RuntimeError("this gunicorn's gthread has no STOP_KEEPALIVE_LINGER to shorten")
STOP_KEEPALIVE_LINGER = 0.5
gthread.STOP_KEEPALIVE_LINGER = STOP_KEEPALIVE_LINGER


class DrainingThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no types
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_stop = ServerStop()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # gunicorn has no types: its worker's wsgi attribute has none mypy can see.
        self.wsgi = with_server_stop(self.wsgi, self.server_stop)  # type: ignore[has-type]

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        # gthread disables accepting when it stops, and also while it holds as many
        # connections as --worker-connections allows: only the first closes the socket.
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()  # gthread's run() closes them again at its end: a no-op
            self.server_stop.stop()


def with_server_stop(app: WsgiApp, server_stop: ServerStop) -> WsgiApp:
    """``app``, its environ carrying ``server_stop`` under ``SERVER_STOP_KEY``."""

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        environ[SERVER_STOP_KEY] = server_stop
        return app(environ, start_response)

    return application
