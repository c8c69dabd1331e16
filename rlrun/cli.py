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
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

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

def _first_of_sweeps(overrides: list[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_sweep_override() and isinstance(o.value(), IntervalSweep):  # Optuna's interval(a, b)
            sweep = o.value()
            value = int(sweep.start) if "int" in sweep.tags else float(sweep.start)
            out.append(f"{o.get_key_element()}={value!r}")
        elif o.is_sweep_override():
            value = next(iter(o.sweep_string_iterator()))
            out.append(f"{o.get_key_element()}={value}")
        else:
            out.append(o.input_line)
    return out


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
            overrides = _first_of_sweeps(overrides)
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


# ---- sweep: launcher and sweeper presets, parallelism, resume, summary ---------------------------------

# The plugins' own option names, which users type, -> rlrun's presets in conf/hydra/ (each extends the
# plugin's config with rlrun's defaults). A preset cannot carry the plugin's own name: Hydra would match it
# against the plugin's schema of that name (deprecated; an error for the Optuna sweeper).
SWEEP_PRESETS = {
    "hydra/launcher": {"joblib": "rlrun_joblib", "submitit_local": "rlrun_submitit_local",
                       "submitit_slurm": "rlrun_submitit_slurm", "ray": "rlrun_ray"},
    "hydra/sweeper": {"optuna": "rlrun_optuna"},
}
# plugin option -> (module that provides it, the rlrun extra that installs it)
SWEEP_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "sweep"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "sweep"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "ray"),
    "optuna": ("hydra_plugins.hydra_optuna_sweeper", "sweep"),
}


def _value_of(args: list[str], key: str) -> str | None:
    """The value of the last `key=value` (or `+key=`, `++key=`) argument; None when there is none."""
    value = None
    for a in args:
        k, sep, v = a.lstrip("+").partition("=")
        if sep and k == key:
            value = v
    return value


def _with(args: list[str], key: str, value: Any) -> list[str]:
    return [a for a in args if a.lstrip("+").partition("=")[0] != key] + [f"{key}={value}"]


def _as_int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_parallelism(cores: int, n_jobs: int | None, torch_threads: int | None) -> tuple[int, int]:
    """(parallel jobs, torch threads per job) for a local parallel sweep: every core busy, none shared.

    A value the user set is kept and the other one derived from it; by default one single-threaded job per
    core (small RL networks train fastest on one thread). n_jobs below 1 counts like joblib's: -1 = all
    cores, -2 = all but one."""
    if n_jobs is not None and n_jobs < 1:
        n_jobs = max(1, cores + 1 + n_jobs)
    if n_jobs is None:
        n_jobs = max(1, cores // max(1, torch_threads or 1))
    if torch_threads is None:
        torch_threads = max(1, cores // n_jobs)
    return n_jobs, torch_threads


def _default_choice(group: str) -> str:
    from omegaconf import OmegaConf

    for item in OmegaConf.load(CONF_DIR / "config.yaml").defaults:
        if not isinstance(item, str) and group in item:
            return str(item[group])
    return group


def _sweep_name(args: list[str]) -> str:
    """`<env>-<agent>` (a swept group joins its options with +), the folder under outputs/sweep/."""
    parts = [(_value_of(args, g) or _default_choice(g)).replace(",", "+") for g in ("env", "agent")]
    return "".join(c if c.isalnum() or c in "+-_." else "_" for c in "-".join(parts))


def prepare_sweep(args: list[str]) -> tuple[list[str], Path, int]:
    """The overrides `rlrun sweep` hands to Hydra, the sweep directory and the first job number.

    Maps plugin names to rlrun's presets, selects the parallel local launcher unless one is named, sizes
    n_jobs and torch_threads to the cores, turns the progress bars of parallel jobs off, names the sweep
    directory outputs/sweep/<env>-<agent>/<timestamp>/ and, for an Optuna study already in that directory,
    continues it (see `_resume_study`)."""
    import importlib.util

    from rlrun.errors import ConfigError

    out = []
    for a in args:
        key, sep, value = a.partition("=")
        out.append(f"{key}={SWEEP_PRESETS[key].get(value, value)}" if sep and key in SWEEP_PRESETS else a)
    args = out
    launcher = _value_of(args, "hydra/launcher")
    if launcher is None:
        if importlib.util.find_spec(SWEEP_PLUGINS["joblib"][0]) is not None:
            launcher = "rlrun_joblib"
            args = [*args, f"hydra/launcher={launcher}"]
        else:
            launcher = "basic"
            print("warning: the joblib launcher is not installed (pip install 'rlrun[sweep]'): "
                  "running the jobs one after another", file=sys.stderr)
    sweeper = _value_of(args, "hydra/sweeper") or "basic"
    for group, option in (("hydra/launcher", launcher), ("hydra/sweeper", sweeper)):
        plugin = SWEEP_PLUGINS.get(option.removeprefix("rlrun_"))
        if plugin and importlib.util.find_spec(plugin[0]) is None:
            raise ConfigError(f"{group}={option.removeprefix('rlrun_')} needs its Hydra plugin: "
                              f"pip install 'rlrun[{plugin[1]}]'")
    threads_arg = _value_of(args, "torch_threads")
    if launcher == "rlrun_joblib":
        n_jobs, threads = plan_parallelism(usable_cores(), _as_int(_value_of(args, "hydra.launcher.n_jobs")),
                                           _as_int(threads_arg) if threads_arg is not None else None)
        args = _with(args, "hydra.launcher.n_jobs", n_jobs)
        if threads_arg is None:
            args = _with(args, "torch_threads", threads)
        if sweeper == "rlrun_optuna" and _value_of(args, "hydra.sweeper.n_jobs") is None:
            args = _with(args, "hydra.sweeper.n_jobs", n_jobs)  # one batch of trials fills the pool
    if launcher != "basic" and _value_of(args, "progress") is None:
        args = _with(args, "progress", "false")  # parallel bars interleave; each job still logs to train.log
    given = _value_of(args, "hydra.sweep.dir")
    if given is None:
        sweep_dir = Path("outputs/sweep") / _sweep_name(args) / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        base, n = sweep_dir, 1
        while sweep_dir.exists():  # two sweeps started in the same second
            sweep_dir, n = base.with_name(f"{base.name}_{n}"), n + 1
        args = [*args, f"hydra.sweep.dir={sweep_dir}"]
    else:
        sweep_dir = Path(given)
    first_job = 0
    if sweeper == "rlrun_optuna":
        args, first_job = _resume_study(args, sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)  # the study's sqlite file goes there before any job
    return args, sweep_dir, first_job


def _resume_study(args: list[str], sweep_dir: Path) -> tuple[list[str], int]:
    """Continue the Optuna study stored in an existing sweep directory instead of starting over.

    Hydra restarts job numbers at 0 and the sweeper runs n_trials more trials on every call; a resumed
    study instead numbers its jobs after the existing job directories (which it must not overwrite), marks
    the trials the interruption left running as failed, and runs only the trials still missing."""
    from hydra import compose, initialize_config_dir

    import rlrun.config  # noqa: F401  (registers the run schema the primary config names)

    jobs = [int(p.name) for p in sweep_dir.iterdir() if p.name.isdigit()] if sweep_dir.is_dir() else []
    if not jobs:
        return args, 0
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=_first_of_sweeps(args), return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    done = 0
    if sweeper.storage:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.load_study(study_name=sweeper.study_name, storage=str(sweeper.storage))
        except KeyError:  # no study of that name stored yet
            study = None
        for trial in study.trials if study is not None else []:
            if trial.state.is_finished():
                done += 1
            else:  # left running by the interruption: it never reports back
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    remaining = max(0, int(sweeper.n_trials) - done)
    print(f"resuming the study in {sweep_dir}: {done} trials finished, {remaining} to go; "
          f"new jobs start at {max(jobs) + 1}", file=sys.stderr)
    args = _with(args, "hydra.sweeper.n_trials", remaining)
    seed = sweeper.sampler.get("seed")
    if seed is not None and done:  # the same seed would draw the first run's random trials again
        args = _with(args, "hydra.sweeper.sampler.seed", int(seed) + done)
    return args, max(jobs) + 1


@contextlib.contextmanager
def _first_job_number(first: int):
    """Make the Optuna sweeper number its jobs from `first` (it always starts at 0)."""
    if not first:
        yield
        return
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl

    setup = OptunaSweeperImpl.setup

    def setup_from(self, **kwargs):
        setup(self, **kwargs)
        self.job_idx = first

    OptunaSweeperImpl.setup = setup_from
    try:
        yield
    finally:
        OptunaSweeperImpl.setup = setup


def _run_hydra(args: list[str], multirun: bool) -> int:
    import hydra

    args = [a for a in args if a not in ("-m", "--multirun")]  # `multirun` says it
    hydra_flags = any(a.startswith("-") for a in args)  # --cfg, --info, --help: Hydra prints, runs nothing
    sweep_dir, first_job = None, 0
    if multirun:
        args, sweep_dir, first_job = prepare_sweep(args)
    prevalidate(args, multirun)
    if multirun and _as_int(_value_of(args, "hydra.sweeper.n_trials")) == 0:
        print("the study already has all its trials", file=sys.stderr)
    else:
        # The task function is taken from the imported module even under `python -m rlrun.cli`, so that
        # launchers that pickle it (joblib, submitit, ray) pickle a reference, not a copy of __main__.
        module = importlib.import_module("rlrun.cli")
        if multirun and hydra_flags:  # Hydra takes --cfg/--info only without --multirun: show the first job
            args = [_first_of_sweeps([a])[0] if "=" in a and not a.startswith("-") else a for a in args]
            multirun = False
        sys.argv = ["rlrun", *args, *(["--multirun"] if multirun else [])]
        try:
            with _first_job_number(first_job):
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
