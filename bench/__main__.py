"""python -m bench [full|quick|smoke] [--out DIR]: run the benchmark, write the report.

Writes ``<out>/<date>.md`` (the table and the targets), ``<out>/<date>.png`` (the chart)
and ``<out>/<date>.json`` (every run, for anyone who wants other statistics; ``--render``
turns it into the .md and .png again). PostgreSQL is
``AUTHTWIN_BENCH_POSTGRES_URL`` (default: the local server the tests use); Redis, which
the two workers of each twin share lockout counts through, is ``AUTHTWIN_BENCH_REDIS_URL``.
"""

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench import chart, report
from bench.loadgen import Sample
from bench.run import PROFILES, SCENARIOS, Profile, Report, Result, run
from bench.streams import StreamStep

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("profile", nargs="?", default="full", choices=sorted(PROFILES))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--only", help=f"comma-separated scenarios, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--databases", help="comma-separated, of: sqlite, postgresql")
    parser.add_argument("--render", type=Path, help="rewrite the .md and .png of a saved .json")
    args = parser.parse_args(argv)
    if args.render:
        outcome, date = load(args.render)
        write(outcome, args.render.parent, date, args.render.stem)
        return 0
    profile = PROFILES[args.profile]
    if args.only:
        if unknown := set(args.only.split(",")) - set(SCENARIOS):
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
        profile = dataclasses.replace(profile, scenarios=tuple(args.only.split(",")))
    if args.databases:
        if unknown := set(args.databases.split(",")) - {"sqlite", "postgresql"}:
            parser.error(f"unknown databases: {', '.join(sorted(unknown))}")
        profile = dataclasses.replace(profile, databases=tuple(args.databases.split(",")))
    for tool in ("wrk", "locust"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (wrk: apt-get install wrk)", file=sys.stderr)
            return 2
    # Set to an empty value: no PostgreSQL runs, or no Redis (each worker then counts alone).
    postgres = os.environ.get("AUTHTWIN_BENCH_POSTGRES_URL", DEFAULT_POSTGRES) or None
    redis = os.environ.get("AUTHTWIN_BENCH_REDIS_URL", DEFAULT_REDIS) or None
    with tempfile.TemporaryDirectory(prefix="authtwin-bench-") as workdir:
        outcome = run(profile, Path(workdir), postgres, redis)
    write(outcome, args.out)
    return 0


def write(outcome: Report, out: Path, date: str | None = None, stem: str | None = None) -> Path:
    """The .md, .png and .json of a run; ``stem`` names them when a saved run is rendered
    again (a run from before a scenario existed would otherwise be named partial)."""
    out.mkdir(parents=True, exist_ok=True)
    date = date or datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    complete = PROFILES["full"]
    partial = (outcome.profile.name, outcome.profile.scenarios, outcome.profile.databases) != (
        "full",
        complete.scenarios,
        complete.databases,
    )
    stem = stem or (f"{date}-{outcome.profile.name}" if partial else date)
    table = report.rows(outcome)
    chart.draw(table, ["none", *outcome.profile.databases], out / f"{stem}.png", outcome.streams)
    page = out / f"{stem}.md"
    page.write_text(report.markdown(outcome, table, f"{stem}.png", date))
    raw = {"date": date, **dataclasses.asdict(outcome)}
    (out / f"{stem}.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(f"wrote {page}")
    return page


def load(path: Path) -> tuple[Report, str]:
    """A run saved by :func:`write`, to render again (after a change to the report)."""
    data = json.loads(path.read_text())
    fields = data["profile"]
    profile = Profile(
        **{
            **fields,
            "databases": tuple(fields["databases"]),
            "scenarios": tuple(fields["scenarios"]),
            "stream_ladder": tuple(fields.get("stream_ladder", ())),
        }
    )
    results = [Result(**{**r, "sample": Sample(**r["sample"])}) for r in data["results"]]
    # Runs saved before the streams scenario have none.
    streams = [
        StreamStep(**{**s, "me": Sample(**s["me"]), "probe": Sample(**s["probe"])})
        for s in data.get("streams", [])
    ]
    return Report(profile, results, data["hash_seconds"], data["notes"], streams), data["date"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
