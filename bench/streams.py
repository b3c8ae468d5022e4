"""The ``streams`` scenario: idle account-event streams (SSE) held by one worker, N at a time.

Each twin runs under its production server with ONE worker, so every figure is per worker:
streams opened, the worker's resident memory and threads, and ``GET /users/me`` latency
(wrk, as the ``me`` scenario) while they stay open. The ladder climbs until the twin
degrades: a stream refused or late, a stream closed under the client, a /users/me error, or
the paced probe's p99 over ``DEGRADED_P99_FACTOR`` times its value with one stream open.
wrk's p99 at full load is mostly its own queue (on one worker it swung from 180 to 500 ms between
two runs at N=1), so the probe's, not wrk's, judges a rung; wrk gives the throughput.

The clients are raw asyncio sockets on a loop thread of their own: a stream counts as open
once its ``200`` status line and headers are read (the server has subscribed it by then),
and is then only drained, so that thousands cost the bench little next to the servers.
"""

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.loadgen import Sample, paced_probe, wrk

EVENTS_PATH = "/api/v1/users/me/events"
ME_PATH = "/api/v1/users/me"
STREAMS_PER_USER = 100  # AUTHTWIN_EVENTS_MAX_STREAMS_PER_USER's maximum
OPEN_CONCURRENCY = 50  # streams being opened at once: a crowd reconnecting, not a flood
OPEN_TIMEOUT_SECONDS = 10  # an open slower than this is counted as a timeout
SETTLE_SECONDS = 1.0  # after the last open, before memory and threads are read
DEGRADED_P99_FACTOR = 10
HEARTBEAT_SECONDS = 15  # the default, stated: each heartbeat also re-checks the credential


@dataclass(frozen=True)
class StreamStep:
    """One rung of the ladder: ``streams`` requested and held on one twin's one worker."""

    database: str
    twin: str
    streams: int
    opened: int  # streams open at the end of the rung (every rung's opens are cumulative)
    errors: dict[str, int]  # why an open failed: "429", "503", "timeout", "connect", ...
    closed_early: int  # streams the server ended while the client held them
    baseline_rss_mib: float  # the worker with no stream open (after a warm-up /users/me run)
    rss_mib: float  # VmRSS of the worker with the streams open
    threads: int  # the worker's threads with the streams open
    me: Sample  # GET /users/me under wrk while the streams stay open: what the worker serves
    probe: Sample  # then one client 20 times a second: what any one caller waits
    degraded: str = ""  # why this rung counts as degraded; empty if it does not

    @property
    def kib_per_stream(self) -> float:
        return (self.rss_mib - self.baseline_rss_mib) * 1024 / self.streams if self.streams else 0


def stream_environment(ladder: tuple[int, ...]) -> dict[str, str]:
    """The settings a worker needs to hold the ladder's largest rung: the process cap above
    it (the Flask twin's gunicorn gets that many threads more, deploy/servers.py), and each
    user at the cap's maximum, so that few users carry many streams."""
    return {
        "AUTHTWIN_EVENTS_MAX_STREAMS": str(max(ladder) + 50),
        "AUTHTWIN_EVENTS_MAX_STREAMS_PER_USER": str(STREAMS_PER_USER),
        "AUTHTWIN_EVENTS_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    }


def users_needed(ladder: tuple[int, ...]) -> int:
    return -(-max(ladder) // STREAMS_PER_USER)


def worker_status(pid: int) -> tuple[float, int]:
    """The worker's resident memory in MiB and its thread count, from /proc."""
    rss_kib, threads = 0, 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kib / 1024, threads


@dataclass
class _Stream:
    writer: asyncio.StreamWriter
    drain: "asyncio.Task[None]"


@dataclass
class StreamHolder:
    """Idle SSE streams to one server, opened and held on an event loop in its own thread
    (the bench's main thread meanwhile runs wrk and reads /proc)."""

    url: str
    tokens: list[str]  # stream i uses tokens[i // STREAMS_PER_USER]
    errors: Counter[str] = field(default_factory=Counter)
    closed_early: int = 0
    _streams: list[_Stream] = field(default_factory=list)
    _closing: bool = False
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None

    @property
    def opened(self) -> int:
        return len(self._streams) - self.closed_early

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def open_up_to(self, count: int) -> None:
        """Open streams until ``count`` were attempted (the ones open so far stay)."""
        attempted = len(self._streams) + sum(self.errors.values())
        self._call(self._open_many(range(attempted, count))).result()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(self._close_all()).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: Any) -> "Future[Any]":
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _open_many(self, indexes: range) -> None:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one(index: int) -> None:
            async with gate:
                await self._open_one(self.tokens[index // STREAMS_PER_USER])

        await asyncio.gather(*(one(index) for index in indexes))

    async def _open_one(self, token: str) -> None:
        parts = urlsplit(self.url)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.write(
                    f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                    f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            self.errors["timeout"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.errors[type(exc).__name__] += 1
        else:
            status = head.split(b" ", 2)[1].decode()
            if status == "200":
                drain = asyncio.create_task(self._drain(reader))
                self._streams.append(_Stream(writer, drain))
                return
            self.errors[status] += 1
        if writer is not None:
            writer.close()

    async def _drain(self, reader: asyncio.StreamReader) -> None:
        """Read the heartbeats as a client would; an end before the bench closes the stream
        is a stream the server dropped."""
        with contextlib.suppress(OSError):
            while await reader.read(4096):
                pass
        if not self._closing:
            self.closed_early += 1

    async def _close_all(self) -> None:
        self._closing = True
        for stream in self._streams:
            stream.writer.close()
            stream.drain.cancel()
        await asyncio.gather(*(s.drain for s in self._streams), return_exceptions=True)


@contextlib.contextmanager
def holding(url: str, tokens: list[str]) -> Iterator[StreamHolder]:
    holder = StreamHolder(url, tokens)
    holder.start()
    try:
        yield holder
    finally:
        holder.close()


def ladder(
    database: str,
    twin: str,
    url: str,
    worker: int,
    *,
    rungs: tuple[int, ...],
    stream_tokens: list[str],
    me_token: str,
    seconds: float,
    connections: int,
) -> list[StreamStep]:
    """Climb ``rungs`` on one twin's one worker (pid ``worker``) and stop at the first rung
    that degrades; every rung's streams stay open for the rungs above it."""

    def me() -> Sample:
        return wrk(url + ME_PATH, "get.lua", seconds=seconds, connections=connections,
                   env={"BENCH_TOKEN": me_token})  # fmt: skip

    def probe() -> Sample:
        bearer = {"Authorization": f"Bearer {me_token}"}
        return paced_probe(url + ME_PATH, seconds=seconds, headers=bearer)

    me()  # warm-up: the baseline counts what serving requests costs, not the streams
    baseline_mib, _ = worker_status(worker)
    steps: list[StreamStep] = []
    with holding(url, stream_tokens) as holder:
        for count in rungs:
            holder.open_up_to(count)
            time.sleep(SETTLE_SECONDS)
            rss_mib, threads = worker_status(worker)
            sample, probed = me(), probe()
            step = StreamStep(
                database, twin, count, holder.opened, dict(holder.errors), holder.closed_early,
                baseline_mib, rss_mib, threads, sample, probed,
            )  # fmt: skip
            step = _judged(step, steps[0] if steps else None)
            steps.append(step)
            print(_line(step), flush=True)
            if step.degraded:
                break
    return steps


def _judged(step: StreamStep, first: StreamStep | None) -> StreamStep:
    reasons = []
    if step.opened < step.streams:
        errors = ", ".join(f"{why}: {n}" for why, n in sorted(step.errors.items()))
        reasons.append(f"{step.streams - step.opened} not open ({errors or 'closed'})")
    if not step.me.requests:
        reasons.append("wrk got no /users/me answer")  # its connections queued, never served
    if failures := step.me.failures + step.probe.failures:
        reasons.append(f"/users/me {failures} errors")
    if first and step.probe.p99_ms > DEGRADED_P99_FACTOR * first.probe.p99_ms:
        factor = step.probe.p99_ms / first.probe.p99_ms
        reasons.append(f"/users/me p99 {factor:.0f} times its value at N=1")
    return dataclasses.replace(step, degraded="; ".join(reasons))


def _line(step: StreamStep) -> str:
    return (
        f"{step.database:10} streams {step.twin:8} N={step.streams:<5} opened {step.opened:<5} "
        f"RSS {step.rss_mib:6.1f} MiB ({step.kib_per_stream:6.1f} KiB/stream) "
        f"threads {step.threads:<5} me {step.me.rps:5.0f} req/s, probe p99 "
        f"{step.probe.p99_ms:6.1f} ms, errors {step.me.failures + step.probe.failures} "
        f"{step.degraded}"
    )
