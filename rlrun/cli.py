"""`rlrun <subcommand> ...`: pick the subcommand, compose the config, dispatch.

train / sweep go through Hydra's @hydra.main (so --cfg, --info, -m, --config-dir, launchers and sweepers
work); before that the overrides are composed once with Hydra's compose API so a typo or an unknown option
fails with one line instead of Hydra's multi-line report. The other subcommands read an existing run
directory and take plain key=value arguments.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import sys
from pathlib import Path
from typing import Any

from rlrun import sweep
from rlrun.commands.args import usage_from_doc
from rlrun.compose import CONF_DIR
from rlrun.errors import RlrunError

GROUPS = ("env", "agent", "replay", "reward")

# Subcommands that take key=value arguments: name -> ("module:function", help). Each function takes the list
# of argument strings and returns an exit code; it raises rlrun.errors.RlrunError for bad input.
KEYVALUE_COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("rlrun.commands.eval:eval_command",
             "evaluate a run: run=<dir> [episodes=N] [checkpoint=best|last|<path>]"),
    "plot": ("rlrun.commands.plot:plot_command", "write a run's plots again: run=<dir>"),
    "export": ("rlrun.commands.export:export_command",
               "export a trained actor: run=<dir> format=fixedpoint [--verify]"),
    "advise": ("rlrun.commands.advise:advise_command", "rollup advisory from a consensus run: run=<dir>"),
    "collect": ("rlrun.commands.collect:collect_command",
                "write a transitions dataset: env=<name> agent=<name> episodes=N"),
    "report": ("rlrun.commands.report:report_command", "summarise a sweep directory: sweep=<dir>"),
    "simulate": ("rlrun.commands.simulate:simulate_command",
                 "simulate the blockchain for N blocks: env=blockchain [env.scenario=NAME] blocks=N seed=S "
                 "[out=DIR]"),
    "dynamics-report": ("rlrun.commands.dynamics_report:dynamics_report_command",
                        "k-step error table of an agent=dynamics run: run=<dir>"),
    "inverter-compare": ("rlrun.commands.inverter_compare:inverter_compare_command",
                         "inverter policies vs PI on held-out days: run=<dir> [run=<dir> ...]"),
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

CONFIG_DIR_FLAGS = ("--config-dir", "-cd")


def split_config_dir(args: list[str]) -> tuple[str | None, list[str]]:
    """Hydra's `--config-dir DIR` (or `-cd DIR`, `--config-dir=DIR`) and the other arguments."""
    config_dir, rest, i = None, [], 0
    while i < len(args):
        a = args[i]
        if a in CONFIG_DIR_FLAGS and i + 1 < len(args):
            config_dir, i = args[i + 1], i + 2
            continue
        if a.startswith("--config-dir="):
            config_dir = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return config_dir, rest


def _task_overrides(args: list[str]) -> list[str]:
    """The overrides that shape the composed task config: Hydra's own settings are left to Hydra, except the
    search path, which decides which group options exist."""
    return [a for a in args if not a.startswith("hydra") or a.lstrip("+").startswith("hydra.searchpath=")]


def prevalidate(args: list[str], multirun: bool) -> None:
    """Compose the config once (first value of each sweep) and validate it; raise RlrunError on failure."""
    from rlrun.config import validate_run

    config_dir, args = split_config_dir(args)
    if any(a.startswith("-") for a in args):
        return  # Hydra's printing flags (--cfg, --info, --help): Hydra runs nothing
    overrides = _task_overrides(args)
    validate_run(_compose_or_one_line(overrides, config_dir, multirun))


def _compose_or_one_line(overrides: list[str], config_dir: str | None, multirun: bool):
    from rlrun.compose import compose_config

    return compose_config(sweep.first_of_sweeps(overrides) if multirun else overrides, config_dir)


# ---- train / sweep through Hydra ---------------------------------------------------------------------

def _train_task(cfg) -> float | None:
    """Hydra task function for `train` and for each job of `sweep`; returns the mean return of the final
    validation evaluation (the objective Hydra sweepers such as Optuna maximise: model selection never sees
    the test split), None for a job that failed or was interrupted:
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
    if multirun and sweep.was_interrupted(Path(hc.sweep.dir)):
        sweep.write_job_status(run_dir, "not started", labels, "the sweep was interrupted before this job started")
        return None
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir, labels=labels)
        summary = trainer.run()
    except Exception as e:
        if not multirun and isinstance(e, RlrunError):
            if trainer is None:
                _discard_refused_run(run_dir)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        if not multirun:
            raise
        # A failing job is recorded (traceback in its train.log) and the sweep goes on.
        logging.getLogger("rlrun").exception("job failed: %s: %s", type(e).__name__, e)
        sweep.write_job_status(run_dir, "failed", labels, f"{type(e).__name__}: {e}")
        return None
    if summary["status"] == "interrupted":
        _exit_code = 128 + int(summary["signal"])
        if multirun and sweep.runs_in_sweep_parent():  # the queued jobs must not start (sweep.SweepInterrupt)
            sweep.mark_interrupted(Path(hc.sweep.dir), int(summary["signal"]))
        return None
    value = float(summary["validation"]["return_mean"])  # selection sees the validation split, never the test
    return value if math.isfinite(value) else None


_new_run_dir: Path | None = None  # the run directory this process created for `rlrun train`


def _discard_refused_run(run_dir: Path) -> None:
    """A run refused before training leaves no directory behind (Hydra already wrote its config and log)."""
    import shutil

    if _new_run_dir is None or Path(run_dir).resolve() != _new_run_dir.resolve():
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            root.removeHandler(handler)
    shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # outputs/train/<env>-<agent>/ when this run was its only one
        Path(run_dir).parent.rmdir()


def _hydra_main(args: list[str], multirun: bool, first_job: int = 0) -> int:
    """Hand the command line to Hydra. The task function is taken from the imported module even under
    `python -m rlrun.cli`, so that launchers that pickle it (joblib, submitit, ray) pickle a reference, not
    a copy of __main__."""
    import hydra

    module = importlib.import_module("rlrun.cli")
    sys.argv = ["rlrun", *args, *(["--multirun"] if multirun else [])]
    with sweep.first_job_number(first_job):
        hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(module._train_task)()
    return module._exit_code


def _run_hydra(args: list[str], multirun: bool) -> int:
    args = [a for a in args if a not in ("-m", "--multirun")]  # `multirun` says it
    config_dir, plain = split_config_dir(args)
    given = sweep.value_of(plain, "hydra.sweep.dir" if multirun else "hydra.run.dir") is not None
    sweep_dir, first_job = None, 0
    if multirun:
        args, sweep_dir, first_job = sweep.prepare_sweep(args)
    prevalidate(args, multirun)
    if any(a.startswith("-") for a in plain):  # --cfg, --info, --help: Hydra prints, runs nothing
        if multirun:  # Hydra takes --cfg/--info only without --multirun: show the first job
            args = [sweep.first_of_sweeps([a])[0] if "=" in a and not a.startswith("-") else a for a in args]
        return _hydra_main(args, False)
    if multirun:
        return _run_sweep(args, sweep_dir, given, first_job)
    return _run_single(args, config_dir, given)


def _run_single(args: list[str], config_dir: str | None, given: bool) -> int:
    """One run in a directory of its own: claimed and locked before Hydra writes anything into it."""
    from rlrun.run_dir import claim_run_dir, resolve_run_dir

    _, plain = split_config_dir(args)
    path = resolve_run_dir(_task_overrides(plain) + [a for a in plain if a.startswith("hydra.run.")], config_dir)
    run_dir, created, lock = claim_run_dir(path, given)
    # set where _train_task reads it: under `python -m rlrun.cli` this function runs in __main__
    importlib.import_module("rlrun.cli")._new_run_dir = run_dir if created else None
    try:
        return _hydra_main(sweep.with_override(args, "hydra.run.dir", sweep.quoted(run_dir)), False)
    finally:
        lock.release()


def _run_sweep(args: list[str], sweep_dir: Path, given: bool, first_job: int) -> int:
    """All jobs, then the summary; 130/143 when interrupted (the jobs checkpoint first), 1 when a job failed."""
    from rlrun.run_dir import claim_run_dir
    from rlrun.sweep_report import summarise

    if sweep.as_int(sweep.value_of(args, "hydra.sweeper.n_trials")) == 0:
        print("the study already has all its trials", file=sys.stderr)
        if sweep_dir.is_dir():
            summarise(sweep_dir)
        return 0
    sweep_dir, _, lock = claim_run_dir(sweep_dir, given)
    args = sweep.with_override(args, "hydra.sweep.dir", sweep.quoted(sweep_dir))
    jobs: list[dict[str, Any]] = []
    try:
        with sweep.SweepInterrupt(sweep_dir) as interrupt:
            try:
                _hydra_main(args, True, first_job)
            finally:  # also when Hydra gives up part-way: the jobs that finished are summarised
                jobs = summarise(sweep_dir)
    finally:
        lock.release()
    if interrupt.signum is not None:
        return 128 + interrupt.signum
    return 1 if any(j["status"] != "finished" for j in jobs) else 0


def _resume(args: list[str]) -> int:
    """`rlrun train resume=<dir> [key=value ...]`: the run's own saved config, the same run directory."""

    from rlrun.checkpoint import RunDirLock
    from rlrun.run_dir import RunDir

    run = RunDir(next(a for a in args if a.startswith("resume=")).split("=", 1)[1])
    with RunDirLock(run.path):  # before the log file is opened: a second writer touches nothing
        return _resume_locked(run, [a for a in args if not a.startswith("resume=")])


def merge_resume_overrides(cfg, extra: list[str]):
    """The saved config, typed by the run-settings schema, with `key=value` overrides of existing keys; a
    wrong type or an unknown key is one ConfigError line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rlrun.compose import one_line
    from rlrun.config import RunConfig
    from rlrun.errors import ConfigError

    bad = [a for a in extra if "=" not in a or a.split("=")[0].split(".")[0] not in cfg]
    if bad:
        raise ConfigError(f"resume accepts key=value overrides of existing keys only, got {bad}")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(RunConfig), cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"the run's saved config does not fit rlrun's schema: {one_line(e, [])}") from None
    OmegaConf.set_struct(typed, True)
    for override in extra:
        key, _, value = override.partition("=")
        if OmegaConf.select(typed, key, default="__missing__") == "__missing__":
            raise ConfigError(f"{key} is not a config key of this run (resume keeps the run's config; "
                              f"only existing keys can change)")
        try:
            typed.merge_with_dotlist([override])
        except OmegaConfBaseException as e:
            reason = one_line(e, []).splitlines()[0].removeprefix(f"{key}: ")
            raise ConfigError(f"{key}={value!r} is refused: {reason}") from None
    return typed


def _resume_locked(run, extra: list[str]) -> int:
    from rlrun.trainer import Trainer

    run_dir = run.path
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        from rlrun.errors import CheckpointError

        raise CheckpointError(f"run directory {run_dir} has no checkpoints/last.pt to resume from")
    cfg = merge_resume_overrides(run.cfg, extra)
    choices = run.choices
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(levelname)s] %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / "train.log")])
    labels = {"env": choices.get("env"), "agent": choices.get("agent")}
    summary = Trainer(cfg, run_dir, resume=True, labels=labels).run()
    return 128 + int(summary["signal"]) if summary["status"] == "interrupted" else 0


def _take_trust(args: list[str]) -> list[str]:
    """`trust_config=...` applies to whatever run directory the command loads (see rlrun.trust)."""
    from rlrun.trust import set_trust

    for a in args:
        if a.startswith("trust_config="):
            set_trust(a.split("=", 1)[1])
    return [a for a in args if not a.startswith("trust_config=")]


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
    if command in KEYVALUE_COMMANDS and any(a in ("-h", "--help") for a in args):
        module = importlib.import_module(KEYVALUE_COMMANDS[command][0].split(":")[0])
        own_usage = getattr(module, "usage", None)  # a command with more to say (simulate lists its scenarios)
        print(own_usage() if callable(own_usage) else usage_from_doc(module.__doc__))
        return 0
    if command in KEYVALUE_COMMANDS or any(a.startswith("resume=") for a in args):
        args = _take_trust(args)
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
        return e.exit_code
    print(f"error: unknown command {command!r}; choose from train, sweep, {', '.join(KEYVALUE_COMMANDS)}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
