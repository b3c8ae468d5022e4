"""One adapter per target: each yields an ``httpx2.Client`` rooted at ``/api/v1``.

Tests only ever see that client, so they cannot branch on what serves it: the FastAPI app
in-process, the Flask app in-process, or any live server given with ``--base-url``. The
schema fuzzer gets the same treatment: one loader per app (``SCHEMAS``), the difference
between ASGI and WSGI kept here.
"""

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from weakref import WeakKeyDictionary

import httpx2
import schemathesis
from fastapi.testclient import TestClient
from flask import Flask

import fastapi_app
import flask_app
from shared.infrastructure.config import Settings
from shared.runtime import Runtime

API_PREFIX = "/api/v1"
IN_PROCESS_BASE = "http://testserver" + API_PREFIX
CLIENT_IP = "127.0.0.1"

ClientFactory = Callable[[Settings], AbstractContextManager[httpx2.Client]]

# Each in-process client's app runtime, for the few tests of what HTTP cannot show (how many
# counters a store holds); runtime_of reads it.
_RUNTIMES: "WeakKeyDictionary[httpx2.Client, Runtime]" = WeakKeyDictionary()


def runtime_of(client: httpx2.Client) -> Runtime:
    """The runtime behind an in-process ``client`` (a KeyError for a live server)."""
    return _RUNTIMES[client]


@contextmanager
def fastapi_client(settings: Settings) -> Iterator[httpx2.Client]:
    # `with` runs the lifespan (tables, first superuser) and keeps one event loop for the
    # whole test, which the async engine's pooled connections are bound to.
    app = fastapi_app.create_app(settings)
    # The peer address the Flask transport and a local live server report, so per-address
    # limits and X-Forwarded-For trust see the same client on every target.
    with TestClient(
        app,
        base_url=IN_PROCESS_BASE,
        client=(CLIENT_IP, 50000),
    ) as client:
        _RUNTIMES[client] = app.state.runtime
        yield client


@contextmanager
def flask_client(settings: Settings) -> Iterator[httpx2.Client]:
    app = flask_app.create_app(settings)

    def served(environ: dict[str, Any], start_response: Any) -> Any:
        # What gunicorn tells the app for a chunked body; httpx2's WSGITransport does not, and
        # without it Werkzeug reads a body of unknown length as empty.
        environ.setdefault("wsgi.input_terminated", True)
        # PEP 3333 wants PATH_INFO as latin-1-decoded bytes, as servers pass it; httpx2 gives
        # the UTF-8-decoded path, on which Werkzeug fails for any non-ASCII path.
        environ["PATH_INFO"] = environ["PATH_INFO"].encode("utf-8").decode("latin-1")
        return app(environ, start_response)

    transport = httpx2.WSGITransport(app=served, remote_addr=CLIENT_IP)
    try:
        with httpx2.Client(transport=transport, base_url=IN_PROCESS_BASE) as client:
            _RUNTIMES[client] = app.extensions["authtwin"]
            yield client
    finally:
        stop_flask_app(app)


def stop_flask_app(app: Flask) -> None:
    """What a worker process's exit does: the mail pool finishes, then connections close."""
    app.extensions["authtwin"].mail_pool.shutdown()
    app.extensions["authtwin"].dispose()


@contextmanager
def live_client(base_url: str) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=base_url.rstrip("/") + API_PREFIX, timeout=30) as client:
        yield client


APPS: dict[str, ClientFactory] = {"fastapi": fastapi_client, "flask": flask_client}


@contextmanager
def fastapi_schema(settings: Settings) -> Iterator[tuple[Any, Runtime]]:
    """The FastAPI twin as schemathesis calls it (ASGI), with its runtime."""
    app = fastapi_app.create_app(settings)
    runtime: Runtime = app.state.runtime
    runtime.prepare()  # schemathesis calls the app without running its lifespan
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app), runtime
    finally:
        asyncio.run(app.state.reader.aclose())  # what the lifespan would have done
        runtime.dispose()


@contextmanager
def flask_schema(settings: Settings) -> Iterator[tuple[Any, Runtime]]:
    """The Flask twin as schemathesis calls it (WSGI), with its runtime."""
    app = flask_app.create_app(settings)
    runtime: Runtime = app.extensions["authtwin"]
    try:
        yield schemathesis.openapi.from_wsgi("/openapi.json", app), runtime
    finally:
        stop_flask_app(app)


SchemaFactory = Callable[[Settings], AbstractContextManager[tuple[Any, Runtime]]]
SCHEMAS: dict[str, SchemaFactory] = {"fastapi": fastapi_schema, "flask": flask_schema}
