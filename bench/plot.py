"""Lateness percentiles against the number of jobs, one line set per system.

Reads a results JSON as bench/run.py writes it ({"machine": ..., "results":
[...]}, results of jobsched and of the APScheduler peer side by side) and
writes a PNG next to it: p50/p90/p99 lateness in ms (log scale) against N.

    .venv/bin/python bench/plot.py bench/results/run-<timestamp>.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a benchmark machine
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import FuncFormatter  # noqa: E402

PERCENTILES = (("p50", ":"), ("p90", "--"), ("p99", "-"))


def plot(results: list[dict], path: Path, cpus: int | None = None) -> None:
    """Draws results' lateness p50/p90/p99 against "jobs" into the PNG ``path``."""
    systems: dict[str, list[dict]] = {}
    for r in results:
        systems.setdefault(r.get("system", "jobsched"), []).append(r)
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for color, (system, rows) in zip(colors, sorted(systems.items())):
        rows = sorted(rows, key=lambda r: r["jobs"])
        for name, style in PERCENTILES:
            points = [(r["jobs"], r["latenessMs"][name]) for r in rows
                      if _finite(r["latenessMs"].get(name))]
            if points:
                xs, ys = zip(*points)
                # Log scale: a lateness of 0 ms (or early) is drawn at 1 ms.
                ax.plot(xs, [max(y, 1) for y in ys], style, marker="o", color=color,
                        label=f"{system} {name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 600, not 6x10^2
    ax.yaxis.set_major_formatter(plain)
    # Labels on 2, 3 and 5 of each decade only: all nine overlap.
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:g}"[0] in "235" else ""))
    ax.set_xticks(sorted({r["jobs"] for r in results}), minor=False)
    ax.set_xticks([], minor=True)
    ax.xaxis.set_major_formatter(plain)
    ax.set_xlabel("every-second jobs (N)")
    ax.set_ylabel("lateness at the target (ms)")
    ax.set_title(f"Lateness vs jobs, {cpus or os.cpu_count()} cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a results JSON written by bench/run.py")
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    path = args.results.with_suffix(".png")
    plot(data["results"], path, data.get("machine", {}).get("cpus"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
