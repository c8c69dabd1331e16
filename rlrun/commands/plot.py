"""`rlrun plot run=<dir>`: (re)write a run's plots from its metrics.csv and print their paths."""

from __future__ import annotations

from rlrun.commands.args import parse_args
from rlrun.errors import CheckpointError
from rlrun.plots import plot_run


def plot_command(argv: list[str]) -> int:
    run_dir = parse_args("plot", argv, {"run": "run directory containing metrics.csv"}).path("run", "run directory")
    if not run_dir.is_dir():
        raise CheckpointError(f"run={run_dir} is not a directory")
    for path in plot_run(run_dir):
        print(path)
    return 0
