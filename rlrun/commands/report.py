"""`rlrun report sweep=<dir> [plots=false]`: write and print a sweep's report again (or for the first time,
for a sweep that was interrupted before its end)."""

from __future__ import annotations

from rlrun.commands.args import parse_args
from rlrun.errors import ConfigError
from rlrun.sweep_report import job_dirs, summarise


def report_command(argv: list[str]) -> int:
    args = parse_args("report", argv, {"sweep": "sweep directory", "plots": "true|false"})
    sweep = args.path("sweep", "existing sweep directory")
    if not sweep.is_dir():
        raise ConfigError(f"rlrun report: sweep={sweep} is not a directory")
    if not job_dirs(sweep):
        raise ConfigError(f"sweep={sweep} has no job directories (numbered folders with .hydra/)")
    summarise(sweep, plots=args.boolean("plots", True))
    return 0
