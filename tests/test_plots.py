"""rlrun.plots: the seed's three MetricsTracker plots from a run directory's metrics.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from rlrun.commands.plot import plot_command
from rlrun.errors import CheckpointError, ConfigError
from rlrun.plots import plot_run, read_metrics

BASE = ["step", "kind", "episode", "return", "length", "return_std"]


def write_metrics(path: Path, env_columns: list[str], episodes: int = 40) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, BASE + env_columns)
        w.writeheader()
        for i in range(episodes):
            row = {"step": 50 * (i + 1), "kind": "train", "episode": i,
                   "return": -20 + 0.5 * i + rng.normal(), "length": 50, "return_std": ""}
            row.update({c: float(rng.uniform(0, 1)) for c in env_columns})
            w.writerow(row)
            if i % 10 == 9:
                ev = {"step": 50 * (i + 1), "kind": "eval", "episode": i, "return": -15 + 0.5 * i,
                      "length": 50, "return_std": 1.0}
                ev.update({c: 0.5 for c in env_columns})
                w.writerow(ev)


def _distinct_colours(png: Path) -> int:
    img = imread(png)[..., :3]
    return len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))


def test_blockchain_run_gets_all_three_plots(tmp_path):
    write_metrics(tmp_path / "metrics.csv", ["latency", "throughput", "orphan_rate", "mempool_depth"])
    paths = plot_run(tmp_path)
    assert [p.name for p in paths] == ["learning_curve.png", "throughput_vs_latency.png", "orphan_rate.png"]
    for p in paths:
        assert p.parent == tmp_path / "plots"
        img = imread(p)
        assert img.shape[0] >= 300 and img.shape[1] >= 500  # 7x4.5 in at 100 dpi
        assert _distinct_colours(p) > 20  # something was drawn, not a blank canvas


def test_other_envs_get_only_the_learning_curve(tmp_path):
    write_metrics(tmp_path / "metrics.csv", ["distance"])
    paths = plot_run(tmp_path)
    assert [p.name for p in paths] == ["learning_curve.png"]
    assert not (tmp_path / "plots" / "orphan_rate.png").exists()


def test_read_metrics_splits_train_and_eval_and_keeps_numbers(tmp_path):
    write_metrics(tmp_path / "metrics.csv", ["orphan_rate"], episodes=20)
    train, ev = read_metrics(tmp_path / "metrics.csv")
    assert len(train["step"]) == 20 and len(ev["step"]) == 2
    assert np.all(np.isnan(train["return_std"])) and np.all(ev["return_std"] == 1.0)
    assert ev["return"].tolist() == [-15 + 0.5 * 9, -15 + 0.5 * 19]


def test_eval_only_metrics_still_plot(tmp_path):
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, BASE + ["orphan_rate"])
        w.writeheader()
        w.writerow({"step": 100, "kind": "eval", "episode": 0, "return": -3.0, "length": 10,
                    "return_std": 0.5, "orphan_rate": 0.02})
    assert [p.name for p in plot_run(tmp_path)] == ["learning_curve.png", "orphan_rate.png"]


def test_plot_command(tmp_path, capsys):
    write_metrics(tmp_path / "metrics.csv", ["latency", "throughput", "orphan_rate"])
    assert plot_command([f"run={tmp_path}"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3 and all(Path(p).is_file() for p in printed)
    with pytest.raises(ConfigError, match="needs run="):
        plot_command([])
    with pytest.raises(ConfigError, match="colour"):
        plot_command([f"run={tmp_path}", "colour=red"])
    with pytest.raises(CheckpointError, match="not a directory"):
        plot_command([f"run={tmp_path / 'missing'}"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="metrics.csv"):
        plot_command([f"run={empty}"])
