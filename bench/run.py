"""One benchmark run: per database, seed every contender, then every scenario, in turns.

The contenders are the FastAPI twin and the Flask twin under gunicorn's ``gthread`` and
``sync`` workers (and their hello apps). They run side by side, each under its production
server with the same worker count; only one is under load at a time. Every scenario runs
each contender once per round, in turns (A B C, C B A, ...), so drift in the machine (the
load generator shares its two cores) falls on all alike.
"""

import os
import secrets
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import make_url

from bench import databases, seed, streams
from bench.loadgen import (
    Sample,
    finish_wrk,
    locust_ramp,
    paced_probe,
    start_wrk,
    wrk,
    wrk_command,
)
from bench.servers import Server, fronted, serve
from bench.streams import StreamStep
from deploy.servers import migrate
from shared.domain.schemas import TokenPair
from shared.infrastructure.config import Settings

# Called twins below for brevity; "flask-sync" is the Flask twin under gunicorn's sync worker.
TWINS = ("fastapi", "flask", "flask-sync")
FLASK_TWINS = ("flask", "flask-sync")
SCENARIOS = ("hello", "me", "me-nginx", "login", "refresh", "signup", "journey", "ramp", "streams")
# The streams scenario holds a stream per connection: gunicorn's sync worker would hold
# one and serve nothing else, so only Flask's gthread worker is measured (bench/README.md).
STREAM_TWINS = ("fastapi", "flask")
HEALTH = "/api/v1/health"


@dataclass(frozen=True)
class Profile:
    name: str
    databases: tuple[str, ...]
    rounds: int
    seconds: float  # per wrk run
    connections: int
    ramp_users: int
    ramp_rate: int
    ramp_seconds: int
    stream_ladder: tuple[int, ...] = ()  # the streams scenario's rungs, in streams per worker
    scenarios: tuple[str, ...] = SCENARIOS


PROFILES = {
    "full": Profile(
        "full", ("sqlite", "postgresql"), 3, 4, 64, 2000, 100, 30, (1, 100, 500, 1000, 2000, 4000)
    ),
    "quick": Profile("quick", ("sqlite",), 1, 2, 64, 300, 100, 6, (1, 50, 200)),
    # smoke: every user spawned at once, and 4 s for each to send its first request even on a
    # machine busy with other work (in 2 s, Locust once sent none).
    "smoke": Profile("smoke", ("sqlite",), 1, 1, 4, 10, 100, 4, (1, 5)),
}


@dataclass(frozen=True)
class Result:
    database: str  # "none" for the hello routes
    scenario: str
    twin: str
    round: int
    sample: Sample
    peak_rss_mib: float


@dataclass
class Report:
    profile: Profile
    results: list[Result] = field(default_factory=list)
    hash_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    streams: list[StreamStep] = field(default_factory=list)


@dataclass
class Stage:
    """What the scenarios of one database need."""

    database: str
    servers: dict[str, Server]
    settings: dict[str, Settings]
    workdir: Path
    # Each contender behind nginx (the me-nginx scenario); empty when that is not run.
    fronts: dict[str, str] = field(default_factory=dict)


# A scenario runs one twin once and names what it measured (login also probes /health).
Scenario = Callable[[Stage, str, int], dict[str, Sample]]


def run(profile: Profile, workdir: Path, postgres_url: str | None, redis_url: str | None) -> Report:
    report = Report(profile)
    if not redis_url:
        report.notes.append("no Redis: each worker kept its own lockout counts")
    secret = secrets.token_urlsafe(48)
    for database in profile.databases:
        with ExitStack() as stack:
            found = {
                twin: stack.enter_context(databases.fresh(database, twin, workdir, postgres_url))
                for twin in TWINS
            }
            urls = {twin: url for twin, url in found.items() if url}
            if len(urls) < len(TWINS):
                shown = make_url(postgres_url).render_as_string() if postgres_url else "(none)"
                report.notes.append(f"{database}: not run, no PostgreSQL at {shown}")
                continue
            overrides = {twin: _overrides(secret, urls[twin], redis_url, twin) for twin in TWINS}
            settings = {twin: Settings.model_validate(overrides[twin]) for twin in TWINS}
            env = {twin: _environment(overrides[twin]) for twin in TWINS}
            for twin in TWINS:
                migrate(env[twin])  # the deployment step: production servers create no table
                hash_seconds = _seed(settings[twin])
                report.hash_seconds = report.hash_seconds or hash_seconds  # the first measured
            if _scenarios(profile) or "hello" in profile.scenarios:
                _under_load(report, database, env, settings, workdir)
            if "streams" in profile.scenarios:
                # After the others, on servers of its own: one worker each, the caps raised.
                for twin in STREAM_TWINS:
                    report.streams += _streams(profile, database, twin, env, settings, workdir)
    return report


def _under_load(
    report: Report,
    database: str,
    env: dict[str, dict[str, str]],
    settings: dict[str, Settings],
    workdir: Path,
) -> None:
    """Every scenario but streams, on servers that stay up across them."""
    profile = report.profile
    with ExitStack() as stack:
        contenders = list(TWINS)
        if first := database == profile.databases[0] and "hello" in profile.scenarios:
            contenders += [f"{twin}-hello" for twin in TWINS]
            env = {**env, **{f"{twin}-hello": dict(os.environ) for twin in TWINS}}
        servers = stack.enter_context(serve(contenders, env, workdir))
        if first:
            _hello(report, {twin: servers[f"{twin}-hello"] for twin in TWINS}, workdir)
        fronts = (
            stack.enter_context(fronted(servers, workdir))
            if "me-nginx" in profile.scenarios
            else {}
        )
        stage = Stage(database, servers, settings, workdir, fronts)
        for scenario in _scenarios(profile):
            _interleave(report, stage, scenario)


def _streams(
    profile: Profile,
    database: str,
    twin: str,
    env: dict[str, dict[str, str]],
    settings: dict[str, Settings],
    workdir: Path,
) -> list[StreamStep]:
    """The ladder of idle streams on one worker of ``twin``, the other twin stopped: the
    streams are cumulative, and a twin's streams end only when their client leaves (Flask's
    at its next heartbeat), so the twins do not take turns rung by rung."""
    rungs = profile.stream_ladder
    pairs = _mint_for(settings[twin], streams.users_needed(rungs) + 1)
    served = {twin: {**env[twin], **streams.stream_environment(rungs)}}
    with serve([twin], served, workdir, workers=1) as servers:
        server = servers[twin]
        [worker] = server.worker_pids()
        return streams.ladder(
            database, twin, server.url, worker, rungs=rungs,
            stream_tokens=[pair.access_token for pair in pairs[1:]],
            me_token=pairs[0].access_token, seconds=profile.seconds,
            connections=profile.connections,
        )  # fmt: skip


def _hello(report: Report, servers: dict[str, Server], workdir: Path) -> None:
    profile = report.profile
    stage = Stage("none", servers, {}, workdir)

    def hello(stage: Stage, twin: str, _round: int) -> dict[str, Sample]:
        url = stage.servers[twin].url + "/hello"
        return {
            "GET /hello": wrk(
                url, "get.lua", seconds=profile.seconds, connections=profile.connections
            )
        }

    _interleave(report, stage, hello)


def _interleave(report: Report, stage: Stage, scenario: Scenario) -> None:
    for round_ in range(report.profile.rounds):
        # A B C, then C B A: no twin always runs first, on a machine just warmed by another.
        for twin in TWINS if round_ % 2 == 0 else TWINS[::-1]:
            samples = scenario(stage, twin, round_)
            rss = stage.servers[twin].peak_rss_mib()
            for measured, sample in samples.items():
                report.results.append(Result(stage.database, measured, twin, round_, sample, rss))
                _print(stage.database, measured, twin, round_, sample)


def _print(database: str, name: str, twin: str, round_: int, sample: Sample) -> None:
    print(
        f"{database:10} {name:22} {twin:10} r{round_} {sample.rps:8.0f} req/s "
        f"p99 {sample.p99_ms:7.1f} ms errors {sample.error_pct:.2f} %",
        flush=True,
    )


def _overrides(secret: str, database_url: str, redis_url: str | None, twin: str) -> dict[str, str]:
    overrides = {
        "env": "production",
        "secret_key": secret,
        "database_url": database_url,
        # The write pool sized to the 8 threads each worker runs sync work on (the read pool
        # keeps its default); every contender's pools together stay under PostgreSQL's
        # default max_connections of 100 (the sync worker uses one connection at a time).
        "db_pool_size": "8",
        # Every benchmark client is 127.0.0.1; the per-account lockout stays on.
        "rate_limit_enabled": "false",
        "redis_key_prefix": f"authtwin-bench-{twin}-{uuid.uuid4().hex}",
    }
    if redis_url:
        overrides["redis_url"] = redis_url  # two workers share one lockout count
    return overrides


def _environment(overrides: dict[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHTWIN_")}
    env.update({f"AUTHTWIN_{name.upper()}": value for name, value in overrides.items()})
    return env


def _seed(settings: Settings) -> float:
    with seed.runtime_for(settings) as runtime:
        seed.seed_accounts(runtime)
        return seed.hash_seconds(runtime)


def _scenarios(profile: Profile) -> list[Scenario]:
    seconds, connections = profile.seconds, profile.connections
    password = {"BENCH_PASSWORD": seed.PASSWORD}

    def me(stage: Stage, twin: str, _round: int) -> dict[str, Sample]:
        access = _mint(stage, twin, 1)[0].access_token
        url = stage.servers[twin].url + "/api/v1/users/me"
        env = {"BENCH_TOKEN": access}
        return {
            "GET /users/me": wrk(url, "get.lua", seconds=seconds, connections=connections, env=env)
        }

    def me_nginx(stage: Stage, twin: str, _round: int) -> dict[str, Sample]:
        """The same reads through nginx, where the production topology puts each twin."""
        access = _mint(stage, twin, 1)[0].access_token
        url = stage.fronts[twin] + "/api/v1/users/me"
        env = {"BENCH_TOKEN": access}
        return {
            "GET /users/me via nginx": wrk(
                url, "get.lua", seconds=seconds, connections=connections, env=env
            )
        }

    def login(stage: Stage, twin: str, _round: int) -> dict[str, Sample]:
        """Logins at full load, and meanwhile one client asking for /health 20 times a second."""
        env = {**password, "BENCH_ACCOUNTS": str(_accounts_file(stage.workdir))}
        command = wrk_command(stage.servers[twin].url, "login.lua", seconds=seconds,
                              connections=connections, threads=2)  # fmt: skip
        logins = start_wrk(command, env)
        time.sleep(0.3)  # the probe starts once the logins are under way, and ends before
        health = paced_probe(stage.servers[twin].url + HEALTH, seconds=seconds - 0.6)
        return {"POST /auth/login": finish_wrk(logins), "GET /health during logins": health}

    def signup(stage: Stage, twin: str, round_: int) -> dict[str, Sample]:
        env = {**password, "BENCH_RUN": f"{twin}{round_}-{uuid.uuid4().hex[:8]}"}
        url = stage.servers[twin].url
        return {
            "POST /auth/signup": wrk(
                url, "signup.lua", seconds=seconds, connections=connections, env=env
            )
        }

    def refresh(stage: Stage, twin: str, _round: int) -> dict[str, Sample]:
        tokens = stage.workdir / "refresh-tokens.txt"
        pairs = _mint(stage, twin, connections)
        tokens.write_text("".join(f"{pair.refresh_token}\n" for pair in pairs))
        env = {"BENCH_REFRESH_TOKENS": str(tokens)}
        sample = wrk(stage.servers[twin].url, "refresh.lua", seconds=seconds,
                     connections=connections, threads=connections, env=env)  # fmt: skip
        return {"POST /auth/refresh": sample}

    def journey(stage: Stage, twin: str, _round: int) -> dict[str, Sample]:
        env = {**password, "BENCH_ACCOUNTS": str(_accounts_file(stage.workdir))}
        sample = wrk(stage.servers[twin].url, "journey.lua", seconds=seconds,
                     connections=connections, threads=connections, env=env)  # fmt: skip
        return {"journey (login, 8 reads, refresh, logout)": sample}

    def ramp(stage: Stage, twin: str, _round: int) -> dict[str, Sample]:
        tokens = stage.workdir / "ramp-tokens.txt"
        pairs = _mint(stage, twin, profile.ramp_users)
        tokens.write_text("".join(f"{p.access_token},{p.refresh_token}\n" for p in pairs))
        sample = locust_ramp(
            stage.servers[twin].url,
            users=profile.ramp_users,
            spawn_rate=profile.ramp_rate,
            seconds=profile.ramp_seconds,
            tokens=tokens,
            workdir=stage.workdir,
        )
        return {f"Locust ramp to {profile.ramp_users} users": sample}

    chosen = {"me": me, "me-nginx": me_nginx, "login": login, "refresh": refresh,
              "signup": signup, "journey": journey, "ramp": ramp}  # fmt: skip
    return [chosen[name] for name in SCENARIOS if name in chosen and name in profile.scenarios]


def _mint(stage: Stage, twin: str, count: int) -> list[TokenPair]:
    return _mint_for(stage.settings[twin], count)


def _mint_for(settings: Settings, count: int) -> list[TokenPair]:
    with seed.runtime_for(settings) as runtime:
        return seed.mint_pairs(runtime, count)


def _accounts_file(workdir: Path) -> Path:
    path = workdir / "accounts.txt"
    if not path.exists():
        path.write_text("".join(f"{seed.email(i)}\n" for i in range(seed.ACCOUNTS)))
    return path
