"""From the runs to the table, the targets and the chart: medians, min–max and ratios."""

import os
import platform
import statistics
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from bench.run import FLASK_TWINS, STREAM_TWINS, TWINS, Report, Result
from bench.streams import StreamStep

TWIN_NAMES = {"fastapi": "FastAPI", "flask": "Flask gthread", "flask-sync": "Flask sync"}
PACKAGES = ("fastapi", "starlette", "uvicorn", "flask", "werkzeug", "gunicorn", "sqlalchemy",
            "asyncpg", "psycopg", "pydantic", "python-jose", "argon2-cffi", "locust")  # fmt: skip


@dataclass(frozen=True)
class Row:
    database: str
    scenario: str
    twin: str
    rps: float  # median over rounds
    rps_min: float
    rps_max: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_pct: float  # over every request of every round
    peak_rss_mib: float
    rounds: int
    requests: int  # over every round


def rows(report: Report) -> list[Row]:
    groups: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
    for result in report.results:
        groups[(result.database, result.scenario, result.twin)].append(result)
    table = []
    for (database, scenario, twin), results in groups.items():
        samples = [result.sample for result in results]
        requests = sum(sample.requests for sample in samples)
        table.append(
            Row(
                database=database,
                scenario=scenario,
                twin=twin,
                rps=statistics.median(sample.rps for sample in samples),
                rps_min=min(sample.rps for sample in samples),
                rps_max=max(sample.rps for sample in samples),
                p50_ms=statistics.median(sample.p50_ms for sample in samples),
                p95_ms=statistics.median(sample.p95_ms for sample in samples),
                p99_ms=statistics.median(sample.p99_ms for sample in samples),
                error_pct=100 * sum(s.failures for s in samples) / requests if requests else 100,
                peak_rss_mib=max(result.peak_rss_mib for result in results),
                rounds=len(samples),
                requests=requests,
            )
        )
    return table


def find(table: list[Row], database: str, scenario: str, twin: str) -> Row | None:
    for row in table:
        if (row.database, row.scenario, row.twin) == (database, scenario, twin):
            return row
    return None


def best_flask(table: list[Row], database: str, scenario: str) -> Row | None:
    """The faster of Flask's two gunicorn workers: the comparison is with Flask at its best."""
    rows = [row for twin in FLASK_TWINS if (row := find(table, database, scenario, twin))]
    return max(rows, key=lambda row: row.rps, default=None)


def ratio(table: list[Row], database: str, scenario: str) -> float | None:
    """FastAPI ÷ the best Flask configuration, in requests per second."""
    if scenario.startswith("GET /health during"):
        return None  # a paced probe: its rate is set by the prober, not by the twins
    fast, flask = find(table, database, scenario, "fastapi"), best_flask(table, database, scenario)
    if fast is None or flask is None or not flask.rps:
        return None
    return fast.rps / flask.rps


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    met: bool


def targets(report: Report, table: list[Row]) -> list[Target]:
    found: list[Target] = []
    me, ramp = "GET /users/me", f"Locust ramp to {report.profile.ramp_users} users"
    databases = [db for db in report.profile.databases if find(table, db, me, "fastapi")]
    ceiling = (os.cpu_count() or 1) / report.hash_seconds if report.hash_seconds else 0.0
    for db in databases:
        for twin in TWINS:
            name = TWIN_NAMES[twin]
            reads, hello = find(table, db, me, twin), find(table, "none", "GET /hello", twin)
            if reads and hello:
                share = reads.rps / hello.rps
                measured = f"{reads.rps:,.0f} / {hello.rps:,.0f} = {share:.0%}"
                found.append(
                    Target(
                        f"1. {name} /users/me ≥ 50 % of its hello ({db})", measured, share >= 0.5
                    )
                )
        wanted = 1.3 if db == "postgresql" else 1.0
        if (pair := ratio(table, db, me)) is not None:
            found.append(
                Target(
                    f"2. FastAPI /users/me ≥ {wanted}× best Flask ({db})",
                    f"{pair:.2f}×",
                    pair >= wanted,
                )
            )
        if health := find(table, db, "GET /health during logins", "fastapi"):
            measured = f"{health.p99_ms:.1f} ms"
            found.append(
                Target(
                    f"2. FastAPI /health p99 < 50 ms during logins ({db})",
                    measured,
                    health.p99_ms < 50,
                )
            )
        for twin in TWINS:
            if (login := find(table, db, "POST /auth/login", twin)) and ceiling:
                share = login.rps / ceiling
                measured = f"{login.rps:.0f} / {ceiling:.0f} = {share:.0%}"
                found.append(
                    Target(
                        f"3. {TWIN_NAMES[twin]} login ≥ 80 % of the hashing ceiling ({db})",
                        measured,
                        share >= 0.8,
                    )
                )
        for twin in TWINS:
            if row := find(table, db, ramp, twin):
                measured = f"{row.error_pct:.2f} % of {row.requests:,} requests failed"
                found.append(
                    Target(
                        f"4. {TWIN_NAMES[twin]} ramp: zero failed requests ({db})",
                        measured,
                        row.error_pct == 0,
                    )
                )
    return found


def markdown(report: Report, table: list[Row], chart: str | None, date: str) -> str:
    lines = [f"# authtwin benchmark, {date} ({report.profile.name} profile)", ""]
    lines += _machine(report)
    for database in ["none", *report.profile.databases]:
        scenarios = list(dict.fromkeys(r.scenario for r in table if r.database == database))
        if not scenarios:
            continue
        title = "Framework ceiling (no database)" if database == "none" else database
        lines += ["", f"## {title}", "", _HEADER, _RULE]
        for scenario in scenarios:
            paced = scenario.startswith("GET /health during")  # the prober sets its rate
            best = None if paced else best_flask(table, database, scenario)
            for twin in TWINS:
                if row := find(table, database, scenario, twin):
                    pair = ratio(table, database, scenario) if twin == "fastapi" else None
                    lines.append(_line(row, pair, first=twin == TWINS[0], best=row is best))
    lines += _streams_section(report)
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {'yes' if t.met else '**no**'} |"
              for t in targets(report, table)]  # fmt: skip
    if report.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in report.notes]]
    if chart:
        lines += ["", f"![throughput and p99 per scenario]({chart})"]
    return "\n".join(lines) + "\n"


_HEADER = ("| scenario | twin | req/s median (min–max) | FastAPI ÷ best Flask | p50 ms | p95 ms "
           "| p99 ms "
           "| errors % | peak RSS/worker MiB, so far |")  # fmt: skip
_RULE = "|---|---|---|---|---|---|---|---|---|"


def _line(row: Row, pair_ratio: float | None, *, first: bool, best: bool) -> str:
    """One twin's row; the faster Flask configuration is marked, and FastAPI's row carries
    the ratio to it."""
    shown_ratio = f"{pair_ratio:.2f}×" if pair_ratio is not None else ""
    name = f"**{TWIN_NAMES[row.twin]}** (best Flask)" if best else TWIN_NAMES[row.twin]
    return (
        f"| {row.scenario if first else ''} | {name} "
        f"| {row.rps:,.0f} ({row.rps_min:,.0f}–{row.rps_max:,.0f}) | {shown_ratio} "
        f"| {row.p50_ms:.1f} | {row.p95_ms:.1f} | {row.p99_ms:.1f} | {row.error_pct:.2f} "
        f"| {row.peak_rss_mib:.0f} |"
    )


def stream_steps(report: Report, database: str, twin: str) -> list[StreamStep]:
    return [s for s in report.streams if (s.database, s.twin) == (database, twin)]


def _streams_section(report: Report) -> list[str]:
    """The streams ladder, one table per database, the twins side by side rung by rung."""
    lines: list[str] = []
    for database in report.profile.databases:
        steps = {twin: stream_steps(report, database, twin) for twin in STREAM_TWINS}
        if not any(steps.values()):
            continue
        rungs = sorted({step.streams for found in steps.values() for step in found})
        lines += ["", f"## Idle event streams per worker ({database})", "", *_STREAMS_INTRO]
        lines += ["", _STREAMS_HEADER, "|---" * 15 + "|"]
        for rung in rungs:
            cells = [f"{rung:,}"]
            for twin in STREAM_TWINS:
                step = next((s for s in steps[twin] if s.streams == rung), None)
                cells += _stream_cells(step)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for twin in STREAM_TWINS:
            lines.append(f"- {TWIN_NAMES[twin]}: {_degradation(steps[twin], report)}")
    return lines


_STREAMS_INTRO = [
    "One worker per twin; N idle SSE streams (`GET /users/me/events`) held open, then "
    "`GET /users/me` while they stay open: wrk at full load as in the `me` scenario (what "
    "the worker still serves; its p99 is mostly its own queue), then p50 / p99 from one "
    "client asking 20 times a second (the latency a caller sees). Memory per stream "
    "is (VmRSS with N open − VmRSS before the first) ÷ N. A rung is degraded when a stream "
    "is refused, late or dropped, /users/me errs, or the one client's p99 passes 10× its "
    "value at N=1; the ladder stops there."
]
_STREAMS_HEADER = (
    "| streams N | FastAPI opened | RSS MiB | KiB/stream | threads | /users/me p50 / p99 ms "
    "| wrk req/s | wrk p99 ms | Flask gthread opened | RSS MiB | KiB/stream | threads "
    "| /users/me p50 / p99 ms | wrk req/s | wrk p99 ms |"
)


def _stream_cells(step: StreamStep | None) -> list[str]:
    if step is None:
        return ["—", "", "", "", "", "", ""]
    opened = f"{step.opened:,}" if not step.degraded else f"**{step.opened:,}**"
    latency = f"{step.probe.p50_ms:.1f} / {step.probe.p99_ms:.1f}"
    if failures := step.me.failures + step.probe.failures:
        latency += f" ({failures} errors)"
    return [opened, f"{step.rss_mib:.0f}", f"{step.kib_per_stream:.0f}", str(step.threads),
            latency, f"{step.me.rps:,.0f}", f"{step.me.p99_ms:.0f}"]  # fmt: skip


def _degradation(steps: list[StreamStep], report: Report) -> str:
    if not steps:
        return "not run"
    baseline = f"{steps[0].baseline_rss_mib:.0f} MiB before any stream"
    if degraded := next((s for s in steps if s.degraded), None):
        return f"degrades at N={degraded.streams:,}: {degraded.degraded} ({baseline})"
    largest = max(report.profile.stream_ladder)
    return f"no degradation up to N={largest:,}, the ladder's top ({baseline})"


def _machine(report: Report) -> list[str]:
    profile = report.profile
    cpu = _cpu_model()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return [
        f"- Machine: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.platform()}; "
        f"Python {platform.python_version()}. The load generator runs on the same cores.",
        f"- Versions: {versions}; wrk {_wrk_version()}.",
        f"- Method: {profile.rounds} round(s) per scenario, the contenders in turns "
        f"(A B C, C B A, ...); wrk runs of {profile.seconds:g} s at {profile.connections} "
        f"connections; medians "
        f"over rounds, min–max of req/s, errors (socket errors, timeouts, status ≥ 400) "
        f"over all rounds. Peak RSS is the largest "
        f"worker's high-water mark since its server started, so each row holds the peak of "
        f"the scenarios above it too. 2 workers per server (deploy/servers.py); Flask "
        f"under gunicorn's gthread worker (8 threads) and under its sync worker; the ratio "
        f"is FastAPI's req/s over the faster Flask's.",
        f"- One password check (argon2id at the service's default cost) took "
        f"{report.hash_seconds * 1000:.1f} ms, so logins cannot exceed "
        f"{(os.cpu_count() or 1) / report.hash_seconds:.0f}/s here (cores ÷ hash time)."
        if report.hash_seconds
        else "- No hash time measured.",
    ]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str:
    try:
        return version(package)
    except Exception:
        return "not installed"


def _wrk_version() -> str:
    result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)  # noqa: S607
    return (result.stdout or result.stderr).split()[1] if result.stdout or result.stderr else "?"
