"""An in-process app behind a real socket, for what an in-process client cannot carry: a
stream that never ends (Starlette's TestClient reads a response whole) and a WebSocket
(Flask's test client has none).

The app is built in this process from the test's settings, as ``tests/clients.py`` builds
it, and served from a thread: the FastAPI twin by uvicorn (what serves it in production),
the Flask twin by Werkzeug's threaded server (flask-sock supports it as it does gunicorn's
threaded worker, which serves it in production and in ``python -m tests.live``).
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import uvicorn
from werkzeug.serving import ThreadedWSGIServer, make_server

import fastapi_app
import flask_app
from shared.infrastructure.config import Settings
from shared.web.event_frames import MAX_SOCKET_MESSAGE_BYTES
from tests.clients import stop_flask_app

STARTUP_SECONDS = 30

ServerFactory = Callable[[Settings], AbstractContextManager[str]]


@contextmanager
def fastapi_server(settings: Settings) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of the FastAPI twin under uvicorn, in a thread."""
    config = uvicorn.Config(
        fastapi_app.create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=MAX_SOCKET_MESSAGE_BYTES,
        # Streams still open at the end of a test are cut, not waited for.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        for _ in range(STARTUP_SECONDS * 20):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)


@contextmanager
def flask_server(settings: Settings) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of the Flask twin under Werkzeug's threaded server."""
    app = flask_app.create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    assert isinstance(server, ThreadedWSGIServer)
    # Joined at server_close, as gunicorn waits for its threads: a stream whose client left
    # ends at its next write, before the app's connections are closed under it.
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, name="werkzeug", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STARTUP_SECONDS)
        stop_flask_app(app)


SERVERS: dict[str, ServerFactory] = {"fastapi": fastapi_server, "flask": flask_server}
