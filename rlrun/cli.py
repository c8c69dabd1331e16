"""`rlrun <subcommand> ...`: pick the subcommand, compose the config, dispatch.

train / sweep go through Hydra (@hydra.main, so --cfg, --info, -m, launchers and sweepers all work);
the other subcommands read an existing run directory and take plain key=value arguments.
"""

from __future__ import annotations

import importlib
import sys

# Subcommands that take key=value arguments: name -> "module:function". Each function takes the list of
# argument strings and returns an exit code; it raises rlrun.errors.RlrunError for bad input.
KEYVALUE_COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("rlrun.evaluate:eval_command", "evaluate a run's checkpoint: run=<dir> [episodes=N] [checkpoint=best|last|<path>]"),
    "plot": ("rlrun.plots:plot_command", "write a run's plots again: run=<dir>"),
    "export": ("rlrun.deploy.export:export_command", "export a trained actor: run=<dir> format=fixedpoint [--verify]"),
    "advise": ("rlrun.deploy.rollup:advise_command", "rollup advisory from a consensus run: run=<dir>"),
    "collect": ("rlrun.collect:collect_command", "write a transitions dataset: env=<name> agent=<name> episodes=N"),
    "report": ("rlrun.sweep_report:report_command", "summarise a sweep directory: sweep=<dir>"),
}


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("rlrun CLI is being assembled")


if __name__ == "__main__":
    sys.exit(main())
