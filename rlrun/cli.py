"""`rlrun <subcommand> ...`: pick the subcommand, compose the config, dispatch.

train / sweep go through Hydra's @hydra.main (so --cfg, --info, -m, --config-dir, launchers and sweepers
work); before that the overrides are composed once with Hydra's compose API so a typo or an unknown option
fails with one line instead of Hydra's multi-line report. The other subcommands read an existing run
directory and take plain key=value arguments.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
from pathlib import Path
from typing import Any

from rlrun import sweep
from rlrun.errors import RlrunError

CONF_DIR = Path(__file__).parent / "conf"
GROUPS = ("env", "agent", "replay", "reward")

# Subcommands that take key=value arguments: name -> ("module:function", help). Each function takes the list
# of argument strings and returns an exit code; it raises rlrun.errors.RlrunError for bad input.
KEYVALUE_COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("rlrun.evaluate:eval_command", "evaluate a run: run=<dir> [episodes=N] [checkpoint=best|last|<path>]"),
    "plot": ("rlrun.plots:plot_command", "write a run's plots again: run=<dir>"),
    "export": ("rlrun.deploy.export:export_command", "export a trained actor: run=<dir> format=fixedpoint [--verify]"),
    "advise": ("rlrun.deploy.rollup:advise_command", "rollup advisory from a consensus run: run=<dir>"),
    "collect": ("rlrun.collect:collect_command", "write a transitions dataset: env=<name> agent=<name> episodes=N"),
    "report": ("rlrun.sweep_report:report_command", "summarise a sweep directory: sweep=<dir>"),
    "simulate": ("rlrun.simulate:simulate_command",
                 "simulate the blockchain for N blocks: env=blockchain [env.scenario=NAME] blocks=N seed=S "
                 "[out=DIR]"),
}

_exit_code = 0


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def usage() -> str:
    lines = [
        "usage: rlrun <command> [args]",
        "",
        "commands:",
        "  train  [overrides]            train one run into outputs/train/<env>-<agent>/<timestamp>/",
        "  train  resume=<run_dir> [overrides]  continue an interrupted run in place",
        "  sweep  [overrides with a,b,c lists]  parallel Hydra multirun into",
        "                                outputs/sweep/<env>-<agent>/<timestamp>/<job>/ + report",
    ]
    for name, (_, text) in KEYVALUE_COMMANDS.items():
        lines.append(f"  {name:<29}{text}")
    lines += ["", "config groups (choose with group=option):"]
    for group in GROUPS:
        lines.append(f"  {group:<8}{', '.join(group_options(group))}")
    lines += [
        "",
        "examples:",
        "  rlrun train agent=ddpg env=reach env.dim=8 total_steps=5000",
        "  rlrun train agent=td3 env=gym env.id=Pendulum-v1",
        "  rlrun sweep agent=td3 env=gym agent.actor_lr=1e-4,1e-3 seed=0,1,2",
        "  rlrun sweep hydra/launcher=submitit_slurm hydra.launcher.partition=cpu seed='range(5)'",
        "  rlrun sweep hydra/sweeper=optuna 'agent.actor_lr=tag(log,interval(1e-5,1e-2))'",
        "  rlrun train --cfg job agent=sac      (Hydra flags: --cfg, --info, --help, -m, --config-dir)",
    ]
    return "\n".join(lines)


# ---- override pre-validation ---------------------------------------------------------------------------

def _one_line(e: Exception, overrides: list[str]) -> str:
    msg = str(e)
    cause = e.__cause__
    if cause is not None:
        msg += "\n" + str(cause)
    if "Could not find '" in msg and "Available options in '" in msg:
        missing = msg.split("Could not find '")[1].split("'")[0]
        group, _, option = missing.partition("/")
        opts = [ln.strip() for ln in msg.split("Available options in")[1].splitlines()[1:] if ln.strip()]
        opts = [o for o in opts if not o.startswith("Config search path")]
        opts = opts[: opts.index("") if "" in opts else len(opts)]
        return f"{group}={option} is not a known option; available: {', '.join(o for o in opts if ' ' not in o)}"
    if "Could not override '" in msg:
        key = msg.split("Could not override '")[1].split("'")[0]
        group, _, _ = key.partition(".")
        allowed = _keys_of(group, [o for o in overrides if not o.startswith(key + "=")])
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{key} is not a config key{hint} (to add a new key use +{key}=...)"
    full_key = ""
    for line in msg.splitlines():
        if line.strip().startswith("full_key:"):
            full_key = line.split("full_key:")[1].strip()
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip() and not ln.strip().startswith(
        ("full_key", "object_type", "reference_type"))]
    if not lines:
        return type(e).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]}: {lines[-1]}"
    return f"{full_key}: {text}" if full_key and full_key not in text else text


def _keys_of(group: str, overrides: list[str]) -> list[str]:
    try:
        cfg = _compose(overrides)
    except Exception:
        return []
    node = cfg.get(group)
    return sorted(k for k in node if not str(k).startswith("_")) if hasattr(node, "keys") else []


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import rlrun.config  # noqa: F401  (registers the run-settings schema in Hydra's ConfigStore)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def prevalidate(args: list[str], multirun: bool) -> None:
    """Compose the config once (first value of each sweep) and validate it; raise RlrunError on failure."""
    from omegaconf.errors import OmegaConfBaseException

    from rlrun.config import validate_run
    from rlrun.errors import ConfigError

    if any(a.startswith("-") for a in args):
        return  # Hydra flags (--cfg, --config-dir, ...): let Hydra handle the command line itself
    overrides = [a for a in args if not a.startswith("hydra")]
    try:
        if multirun:
            overrides = sweep.first_of_sweeps(overrides)
        cfg = _compose(overrides)
    except (OmegaConfBaseException, Exception) as e:  # hydra's exceptions do not share one base
        if isinstance(e, RlrunError):
            raise
        raise ConfigError(_one_line(e, overrides)) from None
    validate_run(cfg)


# ---- train / sweep through Hydra ---------------------------------------------------------------------

def _train_task(cfg) -> float | None:
    """Hydra task function for `train` and for each job of `sweep`; returns the final mean eval return
    (the objective Hydra sweepers such as Optuna maximise), None for a job that failed or was interrupted:
    the Optuna sweeper records None as a failed trial, while NaN makes hydra-optuna-sweeper 1.3 crash the
    whole study (its failure path re-tells the NaN)."""
    global _exit_code
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from rlrun.trainer import Trainer

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    labels = {"env": hc.runtime.choices.get("env"), "agent": hc.runtime.choices.get("agent")}
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        summary = Trainer(cfg, run_dir, labels=labels).run()
    except Exception as e:
        if not multirun and isinstance(e, RlrunError):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        if not multirun:
            raise
        # A failing job is recorded (traceback in its train.log) and the sweep goes on.
        logging.getLogger("rlrun").exception("job failed: %s: %s", type(e).__name__, e)
        import json

        (run_dir / "eval.json").write_text(json.dumps({"status": "failed", **labels,
                                                        "error": f"{type(e).__name__}: {e}"}, indent=2))
        return None
    if summary["status"] == "interrupted":
        _exit_code = 128 + int(summary["signal"])
        return None
    value = float(summary["final"]["return_mean"])
    return value if math.isfinite(value) else None


def _run_hydra(args: list[str], multirun: bool) -> int:
    import hydra

    args = [a for a in args if a not in ("-m", "--multirun")]  # `multirun` says it
    hydra_flags = any(a.startswith("-") for a in args)  # --cfg, --info, --help: Hydra prints, runs nothing
    sweep_dir, first_job = None, 0
    if multirun:
        args, sweep_dir, first_job = sweep.prepare_sweep(args)
    prevalidate(args, multirun)
    if multirun and sweep.as_int(sweep.value_of(args, "hydra.sweeper.n_trials")) == 0:
        print("the study already has all its trials", file=sys.stderr)
    else:
        # The task function is taken from the imported module even under `python -m rlrun.cli`, so that
        # launchers that pickle it (joblib, submitit, ray) pickle a reference, not a copy of __main__.
        module = importlib.import_module("rlrun.cli")
        if multirun and hydra_flags:  # Hydra takes --cfg/--info only without --multirun: show the first job
            args = [sweep.first_of_sweeps([a])[0] if "=" in a and not a.startswith("-") else a for a in args]
            multirun = False
        sys.argv = ["rlrun", *args, *(["--multirun"] if multirun else [])]
        try:
            with sweep.first_job_number(first_job):
                hydra.main(config_path="conf", config_name="config", version_base="1.3")(module._train_task)()
        finally:  # also when Hydra gives up part-way: the jobs that finished are summarised
            if multirun and not hydra_flags and sweep_dir.is_dir():
                from rlrun.sweep_report import summarise

                summarise(sweep_dir)
        return module._exit_code
    if sweep_dir is not None and sweep_dir.is_dir():
        from rlrun.sweep_report import summarise

        summarise(sweep_dir)
    return 0


def _resume(args: list[str]) -> int:
    """`rlrun train resume=<dir> [key=value ...]`: the run's own saved config, the same run directory."""
    from omegaconf import OmegaConf

    from rlrun.errors import ConfigError
    from rlrun.evaluate import load_run_config
    from rlrun.trainer import Trainer

    run_dir = Path(next(a for a in args if a.startswith("resume=")).split("=", 1)[1])
    extra = [a for a in args if not a.startswith("resume=")]
    cfg = load_run_config(run_dir)
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        from rlrun.errors import CheckpointError

        raise CheckpointError(f"run directory {run_dir} has no checkpoints/last.pt to resume from")
    bad = [a for a in extra if "=" not in a or a.split("=")[0].split(".")[0] not in cfg]
    if bad:
        raise ConfigError(f"resume accepts key=value overrides of existing keys only, got {bad}")
    OmegaConf.set_struct(cfg, True)
    cfg.merge_with_dotlist(extra)
    hydra_cfg = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml")
    choices = hydra_cfg.hydra.runtime.choices
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(levelname)s] %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / "train.log")])
    summary = Trainer(cfg, run_dir, resume=True, labels={"env": choices.env, "agent": choices.agent}).run()
    return 128 + int(summary["signal"]) if summary["status"] == "interrupted" else 0


def _keyvalue(name: str, args: list[str]) -> int:
    module, func = KEYVALUE_COMMANDS[name][0].split(":")
    try:
        fn: Any = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        print(f"error: `rlrun {name}` is not available in this installation", file=sys.stderr)
        return 2
    return int(fn(args) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, args = argv[0], argv[1:]
    try:
        if command == "train":
            if any(a.startswith("resume=") and a != "resume=null" for a in args):
                return _resume(args)
            return _run_hydra(args, multirun="-m" in args or "--multirun" in args)
        if command == "sweep":
            return _run_hydra([a for a in args if a not in ("-m", "--multirun")], multirun=True)
        if command in KEYVALUE_COMMANDS:
            return _keyvalue(command, args)
    except RlrunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"error: unknown command {command!r}; choose from train, sweep, {', '.join(KEYVALUE_COMMANDS)}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
