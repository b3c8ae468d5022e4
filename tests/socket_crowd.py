"""A crowd of WebSocket handshakes to ``/api/v1/ws`` that never authenticate, reconnecting
when closed, and ``/health/live`` timed beside them: what a server must survive.

    python -m tests.socket_crowd http://127.0.0.1:8000 --sockets 300 --seconds 8

Each socket is a raw TCP connection sending the handshake and then nothing. When the server
closes it (the authentication deadline) it reconnects at once; when the server refuses the
handshake it reconnects after ``REFUSED_PAUSE`` (a refused client retrying in a tight loop is
a request flood, which is a rate limiter's business, not the stream caps'). Loopback only.
"""

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx2

REFUSED_PAUSE = 0.5  # seconds; ``--refused-pause``
HANDSHAKE_SECONDS = 10


@dataclass
class CrowdReport:
    latencies: list[float] = field(default_factory=list)  # seconds, one per health probe
    answers: Counter[int] = field(default_factory=Counter)  # handshake status -> count

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)


def handshake(host: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /api/v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def silent_socket(
    host: str,
    port: int,
    until: float,
    report: CrowdReport,
    refused_pause: float = REFUSED_PAUSE,
    source: str | None = None,
) -> None:
    """One socket of the crowd, opened again each time it closes, until ``until``."""
    while time.monotonic() < until:
        pause = 0.0
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(source, 0) if source else None),
                HANDSHAKE_SECONDS,
            )
        except (OSError, TimeoutError):
            await asyncio.sleep(REFUSED_PAUSE)
            continue
        try:
            writer.write(handshake(host, port))
            head = await asyncio.wait_for(reader.readline(), HANDSHAKE_SECONDS)
            status = int(head.split()[1]) if len(head.split()) > 1 else 0
            report.answers[status] += 1
            if status != 101:
                pause = refused_pause
            else:
                # Silent until the server closes it or the crowd disperses.
                left = until - time.monotonic()
                if left > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.read(), left)
        except (OSError, TimeoutError, ValueError, IndexError):
            pause = REFUSED_PAUSE
        finally:
            writer.close()
        if pause:
            await asyncio.sleep(pause)


async def probe_health(base_url: str, until: float, report: CrowdReport) -> None:
    """``/health/live`` ten times a second, each on a new connection, as a balancer would."""
    async with httpx2.AsyncClient(base_url=base_url, timeout=30) as client:
        while time.monotonic() < until:
            started = time.monotonic()
            answer = await client.get("/api/v1/health/live", headers={"Connection": "close"})
            report.latencies.append(time.monotonic() - started)
            assert answer.status_code == 200, answer.text
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))


async def crowd(
    base_url: str,
    sockets: int,
    seconds: float,
    ramp: float = 2.0,
    refused_pause: float = REFUSED_PAUSE,
    source: str | None = None,
) -> CrowdReport:
    """``sockets`` silent sockets from ``source`` (an address of this machine) for
    ``seconds`` (after ``ramp`` seconds of opening them), with ``/health/live`` timed only
    once they are all there."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    report = CrowdReport()
    until = time.monotonic() + ramp + seconds
    crowd_tasks = [
        asyncio.create_task(silent_socket(host, port, until, report, refused_pause, source))
        for _ in range(sockets)
    ]
    await asyncio.sleep(ramp)
    await probe_health(base_url, until, report)
    await asyncio.gather(*crowd_tasks)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--sockets", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--refused-pause", type=float, default=REFUSED_PAUSE)
    parser.add_argument("--source", help="the address the sockets come from (127.0.1.2, say)")
    args = parser.parse_args()
    report = asyncio.run(
        crowd(
            args.base_url,
            args.sockets,
            args.seconds,
            refused_pause=args.refused_pause,
            source=args.source,
        )
    )
    print(
        f"health/live over {len(report.latencies)} probes: median {report.median * 1000:.1f} ms, "
        f"p99 {report.p99 * 1000:.1f} ms; handshakes answered {dict(report.answers)}"
    )


if __name__ == "__main__":
    main()
