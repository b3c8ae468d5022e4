"""The two load generators, each run as a process and read back as one ``Sample``.

wrk (C, event-driven) finds throughput ceilings: on this 2-core machine it draws 10k+
requests/s from a hello route, while Locust (Python, gevent) tops out near 1.4k. Locust
runs the seeds' user ramp, because that is the tool and the load shape they reported.
"""

import csv
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

LUA = Path(__file__).parent / "lua"
ROOT = Path(__file__).parent.parent  # wrk's scripts dofile() bench/lua/report.lua from here


@dataclass(frozen=True)
class Sample:
    requests: int
    seconds: float
    failures: int  # socket errors, timeouts and answers with status >= 400
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_pct(self) -> float:
        return 100 * self.failures / self.requests if self.requests else 100.0


def wrk_command(
    url: str, script: str, *, seconds: float, connections: int, threads: int
) -> list[str]:
    return [
        "wrk", f"--threads={threads}", f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s", "--timeout=10s",
        f"--script={LUA / script}", url,
    ]  # fmt: skip


def start_wrk(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 — wrk, with arguments built above
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish_wrk(process: subprocess.Popen[str]) -> Sample:
    output, _ = process.communicate(timeout=120)
    for line in output.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line.removeprefix("BENCH "))
            return Sample(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                failures=data["errors"] + data["status"],
                p50_ms=data["p50_us"] / 1000,
                p95_ms=data["p95_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result:\n{output}")


def wrk(
    url: str,
    script: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 2,
    env: dict[str, str] | None = None,
) -> Sample:
    command = wrk_command(url, script, seconds=seconds, connections=connections, threads=threads)
    return finish_wrk(start_wrk(command, env or {}))


def locust_ramp(
    host: str, *, users: int, spawn_rate: int, seconds: int, tokens: Path, workdir: Path
) -> Sample:
    prefix = workdir / "locust"
    command = [
        "locust", "-f", str(Path(__file__).parent / "locustfile.py"), "--headless",
        "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", f"{seconds}s",
        "--host", host, "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR",
        "--stop-timeout", "5", "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_TOKENS": str(tokens)}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=seconds + 120)  # noqa: S603
    with Path(f"{prefix}_stats.csv").open() as stats:
        total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    # Over the whole run, ramp included (Locust's own figure spans first to last request).
    return Sample(
        requests=int(total["Request Count"]),
        seconds=seconds,
        failures=int(total["Failure Count"]),
        p50_ms=_percentile(total["50%"]),
        p95_ms=_percentile(total["95%"]),
        p99_ms=_percentile(total["99%"]),
    )


def _percentile(value: str) -> float:
    """Locust writes ``N/A`` when no request finished; the request count then says so."""
    return 0.0 if value == "N/A" else float(value)


def paced_probe(
    url: str, *, seconds: float, interval: float = 0.05, headers: dict[str, str] | None = None
) -> Sample:
    """GET ``url`` every ``interval`` seconds for ``seconds``: a latency probe, not a load.

    wrk would hammer the route as fast as it answers and take the CPU the measured load
    needs; a client that asks 20 times a second sees what any one caller would.
    """
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    with httpx2.Client(timeout=10, headers=headers) as client:
        while (start := time.monotonic()) < deadline:
            try:
                failures += client.get(url).status_code != 200
            except httpx2.TransportError:
                failures += 1
            latencies.append(time.monotonic() - start)
            time.sleep(max(0.0, interval - (time.monotonic() - start)))
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else []
    return Sample(
        requests=len(latencies),
        seconds=seconds,
        failures=failures,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p95_ms=cuts[94] * 1000 if cuts else 0.0,
        p99_ms=cuts[98] * 1000 if cuts else 0.0,
    )
