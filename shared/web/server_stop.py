"""How a server tells the application it serves that it is stopping.

A server stopping (SIGTERM) waits for the responses it holds, for as long as its grace
period allows; an event stream has no end of its own, so it would be waited for and then
cut, the client told nothing. The server hands the application a ``ServerStop`` with each
request instead, and sets it when it stops: each open stream then ends at once, with its last
word (fastapi_app/streams.py, flask_app/streams.py), and the server exits as soon as its
ordinary requests are answered.

Where the application finds it, under ``SERVER_STOP_KEY``: the WSGI environ (gunicorn,
deploy/gunicorn_worker.py) or the ASGI scope's ``extensions`` (uvicorn,
deploy/uvicorn_protocol.py). A server that hands none (a test client, a development server)
ends streams the way it ends any response.
"""

import threading
from collections.abc import Callable, Mapping

SERVER_STOP_KEY = "authtwin.server_stop"


class ServerStop:
    """Set once, from any thread; what subscribed is called then (at once, if already set)."""

    def __init__(self) -> None:
        self._callbacks: set[Callable[[], None]] = set()
        self._lock = threading.Lock()
        self.stopping = False

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the server stops; returns what unsubscribes it."""
        with self._lock:
            stopping = self.stopping
            if not stopping:
                self._callbacks.add(callback)
        if stopping:
            callback()
        return lambda: self._unsubscribe(callback)

    def _unsubscribe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.discard(callback)

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            callbacks, self._callbacks = self._callbacks, set()
        for callback in callbacks:
            callback()


def server_stop_in(mapping: Mapping[str, object] | None) -> ServerStop | None:
    """The server's ``ServerStop`` in a WSGI environ or ASGI ``extensions``, if it gave one."""
    found = (mapping or {}).get(SERVER_STOP_KEY)
    return found if isinstance(found, ServerStop) else None
