"""The benchmark harness (bench/), run once at its smallest size so that it cannot rot.

This measures nothing: it proves that every scenario still drives both twins under their
production servers and gets only successful answers, and that the report and chart are
written. ``make bench`` is the measurement. wrk is a Debian package: without it this skips
with the reason, except under CI=true, where .ci/run installs it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# xdist_group: one worker runs the one smoke round the tests read (a fixture is per worker:
# spread over two, the round ran twice). Session-scoped: a module fixture is torn down when
# the worker runs another module's tests between these, and the round ran again.
pytestmark = [pytest.mark.in_process, pytest.mark.xdist_group("bench-smoke")]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("wrk"):
        reason = "wrk is not installed (Debian package wrk)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI requires wrk: {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("bench")
    env = {
        **os.environ,
        # locust is a console script of this environment
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AUTHTWIN_BENCH_REDIS_URL": os.environ.get("AUTHTWIN_TEST_REDIS_URL", ""),
    }
    finished = subprocess.run(  # noqa: S603 — our own interpreter and module
        [sys.executable, "-m", "bench", "smoke", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return out


def test_every_scenario_drove_both_twins_without_a_failure(smoke_run: Path) -> None:
    [raw] = smoke_run.glob("*-smoke.json")
    results = json.loads(raw.read_text())["results"]
    by_scenario: dict[str, set[str]] = {}
    for result in results:
        sample = result["sample"]
        where = f"{result['scenario']} on {result['twin']}"
        assert sample["requests"] > 0, f"{where}: no request was answered"
        assert sample["failures"] == 0, f"{where}: {sample['failures']} failed"
        by_scenario.setdefault(result["scenario"], set()).add(result["twin"])
    # hello, me, me via nginx, login, health, refresh, signup, journey, ramp
    assert len(by_scenario) >= 9
    everyone = {"fastapi", "flask", "flask-sync"}  # Flask under gthread and under sync
    assert all(twins == everyone for twins in by_scenario.values()), by_scenario


def test_the_streams_ladder_held_every_stream_on_both_twins(smoke_run: Path) -> None:
    """Its tiny ladder (1, then 5 streams on one worker): every stream opened and stayed
    open, and /users/me answered beside them. Flask's sync worker is not in it (README)."""
    [raw] = smoke_run.glob("*-smoke.json")
    steps = json.loads(raw.read_text())["streams"]
    assert {(step["twin"], step["streams"]) for step in steps} == {
        (twin, n) for twin in ("fastapi", "flask") for n in (1, 5)
    }
    for step in steps:
        where = f"{step['streams']} streams on {step['twin']}"
        assert step["opened"] == step["streams"], f"{where}: {step['errors']}"
        assert step["closed_early"] == 0, where
        assert step["me"]["requests"] > 0, f"{where}: no /users/me answered"
        assert step["me"]["failures"] == 0, f"{where}: /users/me failed"
        assert step["probe"]["failures"] == 0, f"{where}: /users/me failed (probe)"
        assert step["rss_mib"] > 0, f"{where}: no worker memory read"
        assert step["threads"] > 0, f"{where}: no worker threads read"


def test_the_report_and_chart_are_written(smoke_run: Path) -> None:
    [page] = smoke_run.glob("*-smoke.md")
    text = page.read_text()
    assert "| GET /users/me | FastAPI |" in text
    assert "## Targets" in text
    assert "## Idle event streams per worker (sqlite)" in text
    [chart] = smoke_run.glob("*-smoke.png")
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert f"]({chart.name})" in text
