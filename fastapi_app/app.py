"""Application factory: settings in, a configured FastAPI app out; no import-time state."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from fastapi_app.errors import install_error_handlers
from fastapi_app.middleware import install_middleware
from fastapi_app.readers import make_reader
from fastapi_app.routes import api_router, docs, pages, well_known
from shared.infrastructure.config import Settings
from shared.runtime import Runtime

# Sync routes (password hashing, writes) run in anyio's threadpool, 40 threads by default.
# The Flask twin runs 8 threads per gunicorn worker; FastAPI gets the same. More threads
# only contend — for SQLite's one write lock and for the GIL with the event loop — and
# served fewer logins, refreshes and signups, more slowly (bench/README.md).
SYNC_ROUTE_THREADS = 8


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime.build(settings)
    reader = make_reader(runtime)  # the bearer-token lookup and /health: see readers.py

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Start-up work (tables, hashing the first superuser's password) blocks: keep it off
        # the event loop even here. The Flask twin, which has no lifespan, runs it in the factory.
        # The limiter belongs to the running event loop, so it is sized here, not at import.
        to_thread.current_default_thread_limiter().total_tokens = SYNC_ROUTE_THREADS
        await run_in_threadpool(runtime.prepare)
        yield
        # Claims no more mail and lets go of what it has not sent (services/mail_pool.py);
        # the Flask twin does it at its process's exit (background.py).
        await run_in_threadpool(runtime.mail_pool.shutdown)
        await reader.aclose()
        await run_in_threadpool(runtime.dispose)

    app = FastAPI(
        title="authtwin",
        version="0.1.0",
        summary="JWT auth API: one contract, served by a FastAPI and a Flask twin",
        lifespan=lifespan,
        # A trailing slash is a 404 on both twins, not a redirect. (Repeated slashes need no
        # setting: Starlette never merges them, so /users//me is a 404.)
        redirect_slashes=False,
        docs_url=None,  # FastAPI's own pages load Swagger UI and ReDoc from a CDN;
        redoc_url=None,  # routes/docs.py serves them from this package instead
    )
    app.state.runtime = runtime
    app.state.reader = reader

    install_middleware(app)
    install_error_handlers(app)
    app.include_router(api_router, prefix="/api/v1")
    app.include_router(well_known.router)  # at the root, where RFC 8615 puts it
    app.include_router(docs.router)
    app.include_router(pages.router)  # at the root, where the mailed links point
    return app
