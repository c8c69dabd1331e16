"""Seed 000's MetricsTracker plots, drawn from a run directory's metrics.csv into <run_dir>/plots/.

    learning_curve.png          episode return vs step: training episodes and evaluation mean +- std (always)
    throughput_vs_latency.png   throughput vs confirmation latency per episode, coloured by step
                                (when metrics.csv has `latency` and `throughput` columns)
    orphan_rate.png             orphan rate vs step (when it has an `orphan_rate` column)

metrics.csv has one row per training episode (kind=train) and per evaluation (kind=eval); columns step,
kind, episode, return, length, return_std, then the env's info metrics averaged per episode. Written at the
end of training (the trainer also adds them to TensorBoard as images) and by `rlrun plot run=<dir>`.

Headless: figures are built on matplotlib's Agg canvas directly, without pyplot, so no display, backend
switch or global figure state is involved.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlrun.errors import CheckpointError

_TRAIN = "#4c72b0"
_EVAL = "#dd8452"


def read_metrics(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(train columns, eval columns) of a metrics.csv as float arrays (blank or non-numeric cells -> nan)."""
    rows: dict[str, list[dict[str, str]]] = {"train": [], "eval": []}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c != "kind"]
        for row in reader:
            kind = row.get("kind", "train")
            rows.setdefault(kind, []).append(row)

    def to_float(v: str | None) -> float:
        try:
            return float(v) if v not in (None, "") else math.nan
        except ValueError:
            return math.nan

    def columnize(rs: list[dict[str, str]]) -> dict[str, np.ndarray]:
        out = {c: np.array([to_float(r.get(c)) for r in rs], dtype=float) for c in columns}
        if "step" in out:
            order = np.argsort(out["step"], kind="stable")
            out = {c: v[order] for c, v in out.items()}
        return out

    return columnize(rows["train"]), columnize(rows["eval"])


def _rolling_mean(y: np.ndarray) -> np.ndarray:
    w = max(1, len(y) // 20)
    if w == 1:
        return y
    kernel = np.ones(w) / w
    padded = np.concatenate([np.full(w - 1, y[0]), y])
    return np.convolve(padded, kernel, mode="valid")


def _has(cols: dict[str, np.ndarray], name: str) -> bool:
    return name in cols and len(cols[name]) > 0 and bool(np.any(np.isfinite(cols[name])))


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _series(ax, train: dict[str, np.ndarray], ev: dict[str, np.ndarray], column: str,
            std_column: str | None = None) -> bool:
    """Training episodes as faint dots + rolling mean; evaluations as a line with error bars."""
    drew = False
    if _has(train, column):
        x, y = train["step"], train[column]
        ok = np.isfinite(y)
        ax.scatter(x[ok], y[ok], s=6, alpha=0.3, color=_TRAIN, label="train episodes")
        ax.plot(x[ok], _rolling_mean(y[ok]), color=_TRAIN, lw=1.5, label="train (rolling mean)")
        drew = True
    if _has(ev, column):
        x, y = ev["step"], ev[column]
        err = ev[std_column] if std_column and _has(ev, std_column) else None
        ax.errorbar(x, y, yerr=err, color=_EVAL, marker="o", ms=4, lw=1.5, capsize=3, label="eval mean")
        drew = True
    if drew:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no episodes recorded yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    return drew


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the run's plots into <run_dir>/plots/ and return their paths."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "metrics.csv"
    if not csv_path.is_file():
        raise CheckpointError(f"run={run_dir} has no metrics.csv to plot")
    train, ev = read_metrics(csv_path)
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    _series(ax, train, ev, "return", "return_std")
    ax.set_ylabel("episode return")
    ax.set_title("Reward vs. step")
    written.append(_save(fig, out_dir / "learning_curve.png"))

    pairs = [(_has(c, "latency") and _has(c, "throughput")) for c in (train, ev)]
    if any(pairs):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        if pairs[0]:
            sc = ax.scatter(train["latency"], train["throughput"], c=train["step"], cmap="viridis", s=12,
                            alpha=0.7, label="train episodes")
            fig.colorbar(sc, ax=ax, label="step")
        if pairs[1]:
            ax.scatter(ev["latency"], ev["throughput"], marker="*", s=90, color=_EVAL, edgecolors="k",
                       linewidths=0.5, label="eval")
        lat = np.concatenate([c["latency"] for c, ok in zip((train, ev), pairs, strict=True) if ok])
        lat = lat[np.isfinite(lat) & (lat > 0)]
        if len(lat) and lat.max() / lat.min() > 30:  # spans decades: seconds-long blocks next to 10-minute ones
            ax.set_xscale("log")
        ax.set_xlabel("confirmation latency (s)")
        ax.set_ylabel("throughput (tx/s)")
        ax.set_title("Throughput vs. Confirmation Latency")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        written.append(_save(fig, out_dir / "throughput_vs_latency.png"))

    if _has(train, "orphan_rate") or _has(ev, "orphan_rate"):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        _series(ax, train, ev, "orphan_rate")
        ax.set_ylabel("orphan rate (stale / found blocks)")
        ax.set_title("Orphan Block Rate Over Time")
        written.append(_save(fig, out_dir / "orphan_rate.png"))
    return written
