"""`rlrun sweep` on top of Hydra's launcher and sweeper plugins: presets, parallelism, sweep directory and
resumable Optuna studies. rlrun schedules nothing itself."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rlrun.compose import CONF_DIR

# The plugins' own option names, which users type, -> rlrun's presets in conf/hydra/ (each extends the
# plugin's config with rlrun's defaults). A preset cannot carry the plugin's own name: Hydra would match it
# against the plugin's schema of that name (deprecated; an error for the Optuna sweeper).
SWEEP_PRESETS = {
    "hydra/launcher": {"joblib": "rlrun_joblib", "submitit_local": "rlrun_submitit_local",
                       "submitit_slurm": "rlrun_submitit_slurm", "ray": "rlrun_ray"},
    "hydra/sweeper": {"optuna": "rlrun_optuna"},
}
# plugin option -> (module that provides it, the rlrun extra that installs it). The Ray launcher is rlrun's own
# (hydra_plugins/rlrun_ray_launcher, shipped with rlrun): it needs only Ray.
SWEEP_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "sweep"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "sweep"),
    "ray": ("ray", "ray"),
    "optuna": ("hydra_plugins.hydra_optuna_sweeper", "sweep"),
}


def value_of(args: list[str], key: str) -> str | None:
    """The value of the last `key=value` (or `+key=`, `++key=`) argument; None when there is none."""
    value = None
    for a in args:
        k, sep, v = a.lstrip("+").partition("=")
        if sep and k == key:
            value = v
    return value


def with_override(args: list[str], key: str, value: Any) -> list[str]:
    return [a for a in args if a.lstrip("+").partition("=")[0] != key] + [f"{key}={value}"]


def as_int(text: str | None) -> int | None:
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
    parts = [(value_of(args, g) or _default_choice(g)).replace(",", "+") for g in ("env", "agent")]
    return "".join(c if c.isalnum() or c in "+-_." else "_" for c in "-".join(parts))


def check_slurm_partition(partition: str | None) -> None:
    """One line before anything is submitted: no SLURM here, or a partition the cluster does not have."""
    import shutil
    import subprocess

    from rlrun.errors import ConfigError

    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise ConfigError("hydra/launcher=submitit_slurm needs SLURM's sbatch and sinfo on PATH: run the sweep "
                          "on the cluster's login node")
    if partition in (None, "null"):
        return
    proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"sinfo failed, so the SLURM controller cannot be reached: {proc.stderr.strip()}")
    available = sorted({p.strip().rstrip("*") for p in proc.stdout.split()})
    if partition not in available:
        raise ConfigError(f"hydra.launcher.partition={partition} is not a partition of this SLURM cluster; "
                          f"available: {', '.join(available)}")


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
    launcher = value_of(args, "hydra/launcher")
    if launcher is None:
        if importlib.util.find_spec(SWEEP_PLUGINS["joblib"][0]) is not None:
            launcher = "rlrun_joblib"
            args = [*args, f"hydra/launcher={launcher}"]
        else:
            launcher = "basic"
            print("warning: the joblib launcher is not installed (pip install 'rlrun[sweep]'): "
                  "running the jobs one after another", file=sys.stderr)
    sweeper = value_of(args, "hydra/sweeper") or "basic"
    for group, option in (("hydra/launcher", launcher), ("hydra/sweeper", sweeper)):
        plugin = SWEEP_PLUGINS.get(option.removeprefix("rlrun_"))
        if plugin and importlib.util.find_spec(plugin[0]) is None:
            what = "Ray" if plugin[0] == "ray" else "its Hydra plugin"
            raise ConfigError(f"{group}={option.removeprefix('rlrun_')} needs {what}: "
                              f"pip install 'rlrun[{plugin[1]}]'")
    if launcher == "rlrun_submitit_slurm":
        check_slurm_partition(value_of(args, "hydra.launcher.partition"))
    if launcher == "rlrun_ray":
        from rlrun.collect.ray_actor import check_ray_address

        key = "hydra.launcher.ray.init.address"
        check_ray_address(value_of(args, key) or "auto", key)
    threads_arg = value_of(args, "torch_threads")
    if launcher == "rlrun_joblib":
        n_jobs, threads = plan_parallelism(usable_cores(), as_int(value_of(args, "hydra.launcher.n_jobs")),
                                           as_int(threads_arg) if threads_arg is not None else None)
        args = with_override(args, "hydra.launcher.n_jobs", n_jobs)
        if threads_arg is None:
            args = with_override(args, "torch_threads", threads)
        if sweeper == "rlrun_optuna" and value_of(args, "hydra.sweeper.n_jobs") is None:
            args = with_override(args, "hydra.sweeper.n_jobs", n_jobs)  # one batch of trials fills the pool
    if launcher != "basic" and value_of(args, "progress") is None:
        args = with_override(args, "progress", "false")  # parallel bars interleave; each job still logs to train.log
    given = value_of(args, "hydra.sweep.dir")
    if given is None:  # sub-second; rlrun.run_dir.claim_run_dir adds a suffix if it is taken all the same
        sweep_dir = Path("outputs/sweep") / _sweep_name(args) / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        args = [*args, f"hydra.sweep.dir={sweep_dir}"]
    else:
        sweep_dir = Path(given)
    first_job = 0
    if sweeper == "rlrun_optuna":
        args, first_job = _resume_study(args, sweep_dir)
    return args, sweep_dir, first_job


def quoted(path: Path) -> str:
    """A path as a Hydra override value (quoted: a path may hold characters the override grammar parses)."""
    text = str(path).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


# ---- Ctrl-C / SIGTERM to a running sweep ------------------------------------------------------------------

INTERRUPTED_MARKER = ".interrupted"


def was_interrupted(sweep_dir: Path) -> bool:
    """Whether the sweep's parent was interrupted: jobs that have not started yet then do not start."""
    return (Path(sweep_dir) / INTERRUPTED_MARKER).exists()


def mark_interrupted(sweep_dir: Path, signum: int) -> None:
    """Record that the sweep was interrupted (by the parent, or by a job that ran in the parent's process
    under the basic launcher, where the job's own handler got the signal)."""
    (Path(sweep_dir) / INTERRUPTED_MARKER).write_text(str(signum))


def write_job_status(run_dir: Path, status: str, labels: dict[str, Any], error: str) -> None:
    """eval.json of a job that has no result (failed, not started), which the sweep report reads."""
    import json

    (Path(run_dir) / "eval.json").write_text(json.dumps({"status": status, **labels, "error": error}, indent=2))


class SweepInterrupt:
    """Ctrl-C reaches the sweep's parent and its job processes together (one process group). The jobs stop at
    their next step and write their interrupt checkpoints; the parent must not tear the pool down meanwhile
    (joblib's reaction to KeyboardInterrupt), so it only records the signal, keeps the queued jobs from
    starting and waits. SIGTERM, which reaches the parent alone, is passed on to the job processes."""

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SweepInterrupt:
        global _watching
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        _watching = self
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            print("\ninterrupted: waiting for the running jobs to write their checkpoints "
                  "(queued jobs do not start)", file=sys.stderr)
            mark_interrupted(self.sweep_dir, signum)
        if signum == signal.SIGTERM:
            for pid in child_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def __exit__(self, *exc: Any) -> None:
        global _watching
        _watching = None
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        marker = self.sweep_dir / INTERRUPTED_MARKER
        if self.signum is None and marker.is_file():
            text = marker.read_text().strip()
            self.signum = int(text) if text.isdigit() else int(signal.SIGINT)
        marker.unlink(missing_ok=True)


_watching: SweepInterrupt | None = None  # set in the sweep's parent process while its jobs run


def runs_in_sweep_parent() -> bool:
    """Whether this job runs inside the sweep's parent (basic launcher): its own signal handler then took the
    Ctrl-C meant for the sweep. A job in a worker or on a cluster node that gets a signal (a SLURM time
    limit) stops alone; the other jobs go on."""
    return _watching is not None


def child_pids() -> list[int]:
    """This process's direct children (the launcher's job processes), from /proc; empty elsewhere."""
    pids: list[int] = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in children.read_text().split()]
    return pids


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
        cfg = compose(config_name="config", overrides=first_of_sweeps(args), return_hydra_config=True)
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
    args = with_override(args, "hydra.sweeper.n_trials", remaining)
    seed = sweeper.sampler.get("seed")
    if seed is not None and done:  # the same seed would draw the first run's random trials again
        args = with_override(args, "hydra.sweeper.sampler.seed", int(seed) + done)
    return args, max(jobs) + 1


@contextlib.contextmanager
def first_job_number(first: int):
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


def first_of_sweeps(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first job (prevalidation and `--cfg` show that one)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if o.is_sweep_override() and isinstance(o.value(), IntervalSweep):  # Optuna's interval(a, b)
            interval = o.value()
            value = int(interval.start) if "int" in interval.tags else float(interval.start)
            out.append(f"{o.get_key_element()}={value!r}")
        elif o.is_sweep_override():
            value = next(iter(o.sweep_string_iterator()))
            out.append(f"{o.get_key_element()}={value}")
        else:
            out.append(o.input_line)
    return out
