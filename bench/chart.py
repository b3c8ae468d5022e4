"""The PNG: throughput and p99 per scenario, the contenders side by side, a column per database;
below, when the streams scenario ran, memory per stream and /users/me p99 against the number
of idle streams a worker holds."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from bench.report import TWIN_NAMES, Row, find
from bench.run import STREAM_TWINS, TWINS
from bench.streams import StreamStep

COLOURS = {"fastapi": "#009688", "flask": "#3b3b3b", "flask-sync": "#9e9e9e"}
TITLES = {"none": "no database (hello)", "sqlite": "SQLite", "postgresql": "PostgreSQL"}


def draw(
    table: list[Row], databases: list[str], path: Path, streams: Sequence[StreamStep] = ()
) -> None:
    columns = [db for db in databases if any(row.database == db for row in table)]
    widths = [max(1, len({r.scenario for r in table if r.database == db})) for db in columns]
    parts = [part for part, drawn in (("bars", columns), ("streams", streams)) if drawn]
    heights = {"bars": 8.0, "streams": 4.0}
    figure = plt.figure(
        figsize=(max(9, 3 + 1.3 * sum(widths)), sum(heights[p] for p in parts) or 4),
        layout="constrained",
    )
    panels = figure.subfigures(max(1, len(parts)), 1, squeeze=False,
                               height_ratios=[heights[p] for p in parts] or None)  # fmt: skip
    for panel, part in zip(panels[:, 0], parts, strict=False):
        if part == "bars":
            _scenarios(panel, table, columns, widths)
        else:
            _streams(panel, streams)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _scenarios(
    panel: Figure | SubFigure, table: list[Row], columns: list[str], widths: list[int]
) -> None:
    axes = panel.subplots(2, len(columns), squeeze=False, gridspec_kw={"width_ratios": widths})
    for column, database in enumerate(columns):
        scenarios = list(dict.fromkeys(r.scenario for r in table if r.database == database))
        _bars(axes[0][column], table, database, scenarios, throughput=True)
        _bars(axes[1][column], table, database, scenarios, throughput=False)
        axes[0][column].set_title(TITLES.get(database, database))
    axes[0][0].set_ylabel("requests/s (median, min–max), log")
    axes[1][0].set_ylabel("p99 latency ms (median), log")
    axes[0][0].legend()


def _streams(panel: Figure | SubFigure, steps: Sequence[StreamStep]) -> None:
    """Memory per stream and /users/me p99 against N, a line per twin and database."""
    memory, latency = panel.subplots(1, 2, squeeze=False)[0]
    databases = list(dict.fromkeys(step.database for step in steps))
    for database in databases:
        for twin in STREAM_TWINS:
            found = [s for s in steps if (s.database, s.twin) == (database, twin)]
            if not found:
                continue
            xs = [s.streams for s in found]
            style = {"color": COLOURS[twin], "marker": "o",
                     "linestyle": "-" if database == databases[0] else "--",
                     "label": f"{TWIN_NAMES[twin]} ({TITLES.get(database, database)})"}  # fmt: skip
            memory.plot(xs, [s.kib_per_stream for s in found], **style)
            latency.plot(xs, [s.probe.p99_ms for s in found], **style)
            if degraded := next((s for s in found if s.degraded), None):
                latency.annotate("degrades", (degraded.streams, degraded.probe.p99_ms),
                                 fontsize=8, color=COLOURS[twin])  # fmt: skip
    memory.set_ylabel("worker RSS per open stream, KiB")
    latency.set_ylabel("GET /users/me p99 ms (one client, 20/s), log")
    latency.set_yscale("log")
    for axis in (memory, latency):
        axis.set_xscale("log")
        axis.set_xlabel("idle SSE streams open on one worker, log")
        axis.grid(alpha=0.3)
    memory.legend(fontsize=8)
    panel.suptitle("Idle event streams per worker")


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
