"""The reads every authenticated request makes, without blocking the event loop.

The Flask twin simply runs ``shared.services.identity.find_principal`` in its worker. Here the loop
serves every request of the process, so a read must never hold it while it waits; how to
avoid that depends on the database, and this is the one place where that choice is made:

- PostgreSQL is across a network: the lookup is awaited on the loop through SQLAlchemy's
  asyncio extension (asyncpg), and the loop serves other requests during the round trip.
- SQLite is a library in this process: there is nothing to await, only CPU work and the odd
  disk read. The lookup runs on the sync read engine in ONE thread of its own per process.
  Not aiosqlite (a thread hop for each cursor call, several per lookup) and not the shared
  threadpool (threads contending for the GIL with the loop, and queued behind password
  hashing): on ``GET /users/me`` those served 1.6k to 1.7k and 1.7k to 2.1k requests/s, the one
  reader thread 2.9k to 3.0k, and four reader threads 2.2k to 2.6k (bench/README.md).
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from shared.domain.schemas import Health, UserPublic
from shared.infrastructure.db import make_async_read_engine
from shared.infrastructure.timeouts import DatabaseTimeouts
from shared.runtime import Runtime
from shared.security.tokens import TokenClaims
from shared.services import health as health_service
from shared.services.identity import find_principal, find_principal_async

R = TypeVar("R")


class Reader(Protocol):
    async def principal(self, claims: TokenClaims) -> UserPublic:
        """The token's user (``InvalidToken`` when it names no active user)."""
        ...

    async def health(self) -> Health:
        """Readiness (services/health.py), never queued behind user requests: the probe has
        a connection of its own, and the sync parts run in asyncio's default executor,
        not in the threadpool where password hashing queues."""
        ...

    async def aclose(self) -> None: ...


class AsyncEngineReader:
    """Reads awaited on the loop: for a database across a network."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        timeouts = DatabaseTimeouts.from_settings(settings)
        url = settings.database_url
        self._engine = make_async_read_engine(
            url, pool_size=settings.db_read_pool_size, timeouts=timeouts
        )
        self._probe = make_async_read_engine(url, pool_size=None, timeouts=timeouts)
        self._throttle = runtime.throttle

    async def principal(self, claims: TokenClaims) -> UserPublic:
        return await find_principal_async(self._engine, claims)

    async def health(self) -> Health:
        await health_service.check_database_async(engine=self._probe)
        await asyncio.to_thread(self._throttle.check)  # Redis, when configured
        return Health()

    async def aclose(self) -> None:
        await self._engine.dispose()
        await self._probe.dispose()


class ThreadReader:
    """Reads on one dedicated thread: for an embedded database."""

    def __init__(self, runtime: Runtime) -> None:
        self._engine = runtime.read_engine
        self._thread: ThreadPoolExecutor | None = None  # started by the first read
        self._check = functools.partial(
            health_service.check, engine=runtime.probe_engine, throttle=runtime.throttle
        )

    async def principal(self, claims: TokenClaims) -> UserPublic:
        return await self._run(functools.partial(find_principal, self._engine, claims))

    async def health(self) -> Health:
        return await asyncio.to_thread(self._check)

    async def _run(self, read: Callable[[], R]) -> R:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authtwin-reader")
        return await asyncio.get_running_loop().run_in_executor(self._thread, read)

    async def aclose(self) -> None:
        # The next read (a lifespan that starts again, as in tests) starts a new thread.
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.shutdown)  # a read in flight finishes first


def make_reader(runtime: Runtime) -> Reader:
    if runtime.read_engine.dialect.name == "sqlite":
        return ThreadReader(runtime)
    return AsyncEngineReader(runtime)
