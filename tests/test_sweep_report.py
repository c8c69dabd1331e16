"""Sweep report and sweep planning, in process: grouping over seeds with the bootstrap CI, best first,
failed/unfinished jobs, the files and plots, `rlrun report` reproducing them, the parallelism plan, the
presets composing against the installed plugins, and resuming an Optuna study."""

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from rlrun import cli
from rlrun import sweep as sweep_cli
from rlrun.commands.report import report_command
from rlrun.compose import CONF_DIR
from rlrun.errors import ConfigError
from rlrun.sweep_report import bootstrap_ci, collect_jobs, group_jobs, summarise, swept_keys

FIXED = ["env=reach", "total_steps=300"]


def _job(sweep: Path, num: int, overrides: list[str], ret: float | None, status: str = "finished",
         curve: list[float] | None = None, error: str = "") -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(FIXED + overrides), job / ".hydra" / "overrides.yaml")
    if status == "finished":
        (job / "eval.json").write_text(json.dumps({
            "status": "finished", "step": 300, "train_seconds": 1.5,
            "final": {"return_mean": ret, "return_std": 0.5,
                      "metrics": {"distance": -ret / 10, "hits": 1.0}}}))
        rows = ["step,kind,episode,return,length,return_std,distance"]
        rows += [f"{20 * (i + 1)},train,{i + 1},{r - 1},20,,0.5" for i, r in enumerate(curve or [ret])]
        rows += [f"{100 * (i + 1)},eval,{i + 1},{r},20,0.5,0.5" for i, r in enumerate(curve or [ret])]
        (job / "metrics.csv").write_text("\n".join(rows) + "\n")
    elif status == "failed":
        (job / "eval.json").write_text(json.dumps({"status": "failed", "error": error}))
    elif status == "interrupted":
        (job / "checkpoints").mkdir()
        (job / "checkpoints" / "last.pt").write_bytes(b"x")
    return job


@pytest.fixture
def sweep(tmp_path) -> Path:
    """lr=1e-3: 3 seeds returning 1, 2, 3; lr=1e-2: seeds returning 5, 6 and one diverged; lr=1e-1: one job
    interrupted, one never started (killed)."""
    d = tmp_path / "sweep"
    num = 0
    for lr, results in (("1e-3", [1.0, 2.0, 3.0]), ("1e-2", [5.0, 6.0, None])):
        for seed, r in enumerate(results):
            if r is None:
                _job(d, num, [f"agent.actor_lr={lr}", f"seed={seed}"], None, "failed",
                     error="FloatingPointError: loss/critic became nan: training diverged")
            else:
                _job(d, num, [f"agent.actor_lr={lr}", f"seed={seed}"], r, curve=[r - 2, r - 1, r])
            num += 1
    _job(d, num, ["agent.actor_lr=1e-1", "seed=0"], None, "interrupted")
    _job(d, num + 1, ["agent.actor_lr=1e-1", "seed=1"], None, "missing")
    return d


def test_groups_over_seeds_best_first_with_bootstrap_ci(sweep):
    jobs = collect_jobs(sweep)
    assert [j.name for j in jobs] == [str(i) for i in range(8)]
    assert [j.status for j in jobs][-3:] == ["failed", "interrupted", "missing"]
    assert swept_keys(jobs) == ["agent.actor_lr", "seed"]
    groups = group_jobs(jobs)
    assert [g.config for g in groups] == ["agent.actor_lr=1e-2", "agent.actor_lr=1e-3", "agent.actor_lr=1e-1"]
    best, second, none = groups
    assert (best.n, best.n_failed, best.mean) == (2, 1, 5.5)
    assert best.std == pytest.approx(math.sqrt(0.5))  # sample std (ddof=1) over seeds
    assert (second.n, second.mean, second.std) == (3, 2.0, 1.0)
    # A resample of {1,2,3} is all 1s with probability 1/27 = 3.7% > 2.5% (all 3s likewise), and all
    # resample means lie in [1, 3]: the 95% percentile interval is exactly [1, 3].
    assert second.ci == (1.0, 3.0)
    assert second.metrics["distance"] == pytest.approx(-0.2)
    assert (none.n, none.n_failed) == (0, 2) and math.isnan(none.mean) and math.isnan(none.ci[0])


def test_bootstrap_ci_matches_the_normal_interval_for_a_large_sample():
    values = np.random.default_rng(3).normal(10.0, 2.0, size=400)
    lo, hi = bootstrap_ci(values)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert lo == pytest.approx(values.mean() - half, abs=0.04)
    assert hi == pytest.approx(values.mean() + half, abs=0.04)
    assert bootstrap_ci(values) == (lo, hi)  # seeded: a report written twice agrees
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([1.0])))


def test_summary_files_plots_and_report_reproduces_them(sweep, capsys):
    rows = summarise(sweep)
    out = capsys.readouterr().out
    assert len(rows) == 8 and "sweep summary" in out
    lines = out.splitlines()
    table = [ln for ln in lines if ln.startswith("| ") and "actor_lr" in ln]
    assert table[0].startswith("| 1 | agent.actor_lr=1e-2 | 2 (+1 failed) | 5.500 ± 0.707 |")
    assert table[1].startswith("| 2 | agent.actor_lr=1e-3 | 3 | 2.000 ± 1.000 | [1.000, 3.000] |")
    assert "job 5 (failed) agent.actor_lr=1e-2 seed=2: FloatingPointError" in out
    assert "job 6 (interrupted)" in out and "job 7 (missing)" in out

    with (sweep / "summary.csv").open() as f:
        per_job = list(csv.DictReader(f))
    assert [r["status"] for r in per_job].count("finished") == 5 and per_job[1]["return_mean"] == "2.0"
    assert per_job[0]["seed"] == "0" and per_job[0]["agent.actor_lr"] == "1e-3"
    with (sweep / "summary_grouped.csv").open() as f:
        grouped = list(csv.DictReader(f))
    assert [(g["rank"], g["agent.actor_lr"], g["n"], g["n_failed"]) for g in grouped] == [
        ("1", "1e-2", "2", "1"), ("2", "1e-3", "3", "0"), ("3", "1e-1", "0", "2")]
    assert float(grouped[1]["ci95_low"]) == 1.0 and grouped[1]["jobs"] == "0 1 2"
    md = (sweep / "report.md").read_text()
    assert "## Jobs" in md and "![learning_curves](learning_curves.png)" in md and "training diverged" in md
    for png in ("return_vs_agent.actor_lr.png", "learning_curves.png"):
        assert (sweep / png).stat().st_size > 10_000
    assert not (sweep / "return_vs_seed.png").exists()

    before = {n: (sweep / n).read_bytes() for n in ("summary.csv", "summary_grouped.csv", "report.md")}
    for n in before:
        (sweep / n).unlink()
    assert report_command([f"sweep={sweep}"]) == 0
    assert capsys.readouterr().out == out
    assert {n: (sweep / n).read_bytes() for n in before} == before


def test_report_rejects_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        report_command([f"sweep={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="no job directories"):
        report_command([f"sweep={tmp_path}"])
    with pytest.raises(ConfigError, match="run is not a report setting"):
        report_command(["run=x"])


@pytest.mark.parametrize(("cores", "n_jobs", "threads", "expected"), [
    (2, None, None, (2, 1)),     # default: one single-threaded job per core
    (16, None, None, (16, 1)),
    (16, 4, None, (4, 4)),       # fewer jobs: their torch threads share the cores
    (16, None, 4, (4, 4)),       # more threads per job: fewer jobs
    (16, -1, None, (16, 1)),     # joblib's -1 = all cores, -2 = all but one
    (16, -2, None, (15, 1)),
    (2, 8, None, (8, 1)),        # the user's choice is kept even when it oversubscribes
    (2, 3, 2, (3, 2)),
])
def test_parallelism_plan(cores, n_jobs, threads, expected):
    assert sweep_cli.plan_parallelism(cores, n_jobs, threads) == expected


def test_prepare_sweep_picks_presets_parallelism_and_the_sweep_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep_cli, "usable_cores", lambda: 6)
    monkeypatch.setattr(sweep_cli, "check_slurm_partition", lambda partition: None)  # no SLURM needed here
    args, sweep_dir, first = sweep_cli.prepare_sweep(["agent=td3", "seed=0,1"])
    assert "hydra/launcher=rlrun_joblib" in args and "hydra.launcher.n_jobs=6" in args
    assert "torch_threads=1" in args and "progress=false" in args and first == 0
    assert sweep_dir.parent == Path("outputs/sweep/reach-td3") and f"hydra.sweep.dir={sweep_dir}" in args

    args, _, _ = sweep_cli.prepare_sweep(["hydra.launcher.n_jobs=2", "progress=true", "hydra.sweep.dir=x"])
    assert "hydra.launcher.n_jobs=2" in args and "torch_threads=3" in args and "progress=true" in args
    args, sweep_dir, _ = sweep_cli.prepare_sweep(["hydra/launcher=submitit_slurm", "env=reach,gym",
                                            "hydra.sweep.dir=y"])
    assert "hydra/launcher=rlrun_submitit_slurm" in args and sweep_dir == Path("y")
    assert not any(a.startswith(("hydra.launcher.n_jobs", "torch_threads")) for a in args)
    assert sweep_cli._sweep_name(["env=reach,gym", "agent=sac"]) == "reach+gym-sac"


def _hydra_cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import rlrun.config  # noqa: F401  (registers the run schema)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[*overrides, "hydra.sweep.dir=outputs/sweep/t"],
                       return_hydra_config=True)


@pytest.mark.parametrize(("option", "target", "checks"), [
    ("rlrun_joblib", "JoblibLauncher", {"n_jobs": -1}),
    ("rlrun_submitit_local", "LocalLauncher", {"cpus_per_task": 1, "timeout_min": 120}),
    ("rlrun_submitit_slurm", "SlurmLauncher", {"partition": None, "timeout_min": 240, "cpus_per_task": 2,
                                               "gpus_per_node": None, "array_parallelism": 64}),
])
def test_launcher_presets_extend_the_plugins(option, target, checks):
    from hydra.utils import instantiate

    cfg = _hydra_cfg([f"hydra/launcher={option}"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith(target)
    assert {k: launcher[k] for k in checks} == checks
    assert type(instantiate(launcher)).__name__ == target  # every key is one the plugin accepts


def test_slurm_preset_submits_a_job_array_with_its_resources(tmp_path, monkeypatch):
    """The SLURM launcher's own code, from the preset to the sbatch script it would submit (captured
    instead of calling sbatch: there is no cluster here)."""
    import submitit.slurm.slurm as slurm
    from hydra.utils import instantiate

    (tmp_path / "srun").write_text("#!/bin/sh\n")  # submitit checks that it runs on a SLURM node
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    class Submitted(Exception):
        pass

    def capture(self, command, uid):
        raise Submitted(slurm._make_sbatch_string(command=command, folder=self.folder, **self.parameters))

    monkeypatch.setattr(slurm.SlurmExecutor, "_make_submission_file_text", capture)
    cfg = _hydra_cfg(["hydra/launcher=rlrun_submitit_slurm",
                      "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
                      "hydra.launcher.setup=[source .venv/bin/activate]"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=cli._train_task, config=cfg)
    with pytest.raises(Submitted) as sbatch:
        launcher.launch([["seed=0"], ["seed=1"], ["seed=2"]], initial_job_idx=0)
    lines = str(sbatch.value).splitlines()
    for line in ("#SBATCH --array=0-2%3", "#SBATCH --partition=gpu", "#SBATCH --time=240",
                 "#SBATCH --cpus-per-task=2", "#SBATCH --gpus-per-node=1", "#SBATCH --mem=8GB",
                 "#SBATCH --job-name=train", "source .venv/bin/activate"):
        assert line in lines
    assert any(ln.startswith("srun ") and "submitit.core._submit" in ln for ln in lines)


def test_ray_preset_is_rlruns_own_launcher_that_hydra_finds():
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    cfg = _hydra_cfg(["hydra/launcher=rlrun_ray"])
    assert cfg.hydra.launcher.ray.init.address == "auto" and cfg.hydra.launcher.ray.remote.num_cpus == 1
    assert cfg.hydra.launcher.ray.remote.max_retries == 0  # a lost job is failed, not rerun over its run dir
    target = cfg.hydra.launcher._target_
    assert target in [f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)]


def test_optuna_preset_maximises_the_return_with_a_study_in_the_sweep_dir():
    from hydra.utils import instantiate

    cfg = _hydra_cfg(["hydra/sweeper=rlrun_optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.max_failure_rate == 1.0
    assert sweeper.storage == "sqlite:///outputs/sweep/t/optuna.db"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    impl = instantiate(sweeper).sweeper
    assert impl.direction == "maximize" and impl.n_trials == 20


def test_an_interrupted_optuna_study_resumes_after_its_jobs(tmp_path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    sweep = Path("outputs/sweep/study")
    for num in range(3):
        (sweep / str(num) / ".hydra").mkdir(parents=True)
    storage = f"sqlite:///{sweep}/optuna.db"
    study = optuna.create_study(study_name="rlrun", storage=storage, direction="maximize")
    for value in (1.0, 2.0):
        trial = study.ask()
        trial.suggest_float("agent.actor_lr", 1e-4, 1e-2, log=True)
        study.tell(trial, value)
    study.ask()  # the trial the interruption left running
    args, sweep_dir, first = sweep_cli.prepare_sweep(
        ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=5", f"hydra.sweep.dir={sweep}",
         "agent.actor_lr=tag(log,interval(1e-4,1e-2))"])
    assert first == 3 and sweep_dir == sweep
    assert "hydra.sweeper.n_trials=3" in args  # 5 asked for, 2 finished
    assert "hydra.sweeper.sampler.seed=2" in args  # not the first run's random draws again
    states = [t.state for t in optuna.load_study(study_name="rlrun", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL]


def test_without_the_plugins_a_sweep_runs_sequentially_or_says_what_to_install(tmp_path, monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("hydra_plugins.")
                        or name == "ray" else find_spec(name, *a))
    args, _, _ = sweep_cli.prepare_sweep(["seed=0,1", "hydra.sweep.dir=x"])
    assert not any(a.startswith(("hydra/launcher", "hydra.launcher", "progress")) for a in args)
    assert "running the jobs one after another" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"hydra/sweeper=optuna needs its Hydra plugin: pip install 'rlrun\[sweep\]'"):
        sweep_cli.prepare_sweep(["hydra/sweeper=optuna", "hydra.sweep.dir=x"])
    with pytest.raises(ConfigError, match=r"^hydra/launcher=ray needs Ray: pip install 'rlrun\[ray\]'$"):
        sweep_cli.prepare_sweep(["hydra/launcher=ray", "hydra.sweep.dir=x"])


def test_slurm_launcher_without_slurm_or_with_an_unknown_partition_is_one_line(monkeypatch):
    import shutil
    import subprocess

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="needs SLURM's sbatch and sinfo on PATH"):
        sweep_cli.check_slurm_partition("debug")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "debug*\ngpu\n", ""))
    sweep_cli.check_slurm_partition("gpu")
    with pytest.raises(ConfigError, match=r"partition=cpu is not a partition of this SLURM cluster; "
                                          r"available: debug, gpu"):
        sweep_cli.check_slurm_partition("cpu")


def test_ray_address_nobody_answers_is_one_line(monkeypatch, tmp_path):
    import socket
    import tempfile

    from rlrun.collect.ray_actor import check_ray_address

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(ConfigError, match=f"ray.address=127.0.0.1:{port}: no Ray cluster answers there"):
        check_ray_address(f"127.0.0.1:{port}", "ray.address")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    with pytest.raises(ConfigError, match="=auto, but no Ray cluster runs on this machine"):
        check_ray_address("auto", "hydra.launcher.ray.init.address")
    check_ray_address(None, "ray.address")  # a local Ray: nothing to check
