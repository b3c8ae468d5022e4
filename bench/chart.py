"""The PNG: throughput and p99 per scenario, the contenders side by side, a column per database."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.report import TWIN_NAMES, Row, find
from bench.run import TWINS

COLOURS = {"fastapi": "#009688", "flask": "#3b3b3b", "flask-sync": "#9e9e9e"}
TITLES = {"none": "no database (hello)", "sqlite": "SQLite", "postgresql": "PostgreSQL"}


def draw(table: list[Row], databases: list[str], path: Path) -> None:
    columns = [db for db in databases if any(row.database == db for row in table)]
    widths = [max(1, len({r.scenario for r in table if r.database == db})) for db in columns]
    figure, axes = plt.subplots(
        2, len(columns), figsize=(3 + 1.3 * sum(widths), 8), squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )  # fmt: skip
    for column, database in enumerate(columns):
        scenarios = list(dict.fromkeys(r.scenario for r in table if r.database == database))
        _bars(axes[0][column], table, database, scenarios, throughput=True)
        _bars(axes[1][column], table, database, scenarios, throughput=False)
        axes[0][column].set_title(TITLES.get(database, database))
    axes[0][0].set_ylabel("requests/s (median, min–max), log")
    axes[1][0].set_ylabel("p99 latency ms (median), log")
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bars(
    axis: Axes, table: list[Row], database: str, scenarios: list[str], *, throughput: bool
) -> None:
    width = 0.8 / len(TWINS)
    for offset, twin in enumerate(TWINS):
        found = [find(table, database, scenario, twin) for scenario in scenarios]
        rows = [row for row in found if row is not None]
        shift = (offset - (len(TWINS) - 1) / 2) * width
        xs = [i + shift for i, row in enumerate(found) if row is not None]
        if throughput:
            heights = [row.rps for row in rows]
            spread = [[r.rps - r.rps_min for r in rows], [r.rps_max - r.rps for r in rows]]
            axis.bar(xs, heights, width, yerr=spread, capsize=2, color=COLOURS[twin],
                     label=TWIN_NAMES[twin])  # fmt: skip
        else:
            axis.bar(xs, [row.p99_ms for row in rows], width, color=COLOURS[twin])
    axis.set_yscale("log")
    axis.set_xticks(range(len(scenarios)))
    axis.set_xticklabels([_short(s) for s in scenarios], rotation=35, ha="right", fontsize=8)
    axis.grid(axis="y", alpha=0.3)


def _short(scenario: str) -> str:
    return scenario.replace("journey (login, 8 reads, refresh, logout)", "journey")
