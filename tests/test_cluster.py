"""Sweeps on a real SLURM cluster that the test starts on this machine (`make test-cluster`, marker `cluster`).

Each test drives the README's command (`rlrun sweep hydra/launcher=submitit_slurm ...`, only the partition,
time limit and setup line adapted) against munged + slurmctld + slurmd started in a temp dir, and checks the
jobs' run directories, the sweep summary and SLURM's own record of every job's final state.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cluster_engines import LocalSlurm

from conftest import run_cli

pytestmark = pytest.mark.cluster

VENV_BIN = Path(sys.executable).parent
SMALL = ["env=reach", "env.dim=3", "env.max_steps=25", "agent=ddpg", "agent.actor_hidden=[16]",
         "agent.critic_hidden=[16]", "learning_starts=100", "eval_episodes=2", "plots=false"]


def slurm_launcher(timeout_min: int = 10, extra: tuple[str, ...] = ()) -> list[str]:
    """README's SLURM command, adapted to the test cluster: partition, time limit and the setup line."""
    return ["hydra/launcher=submitit_slurm", f"hydra.launcher.partition={LocalSlurm.PARTITION}",
            f"hydra.launcher.timeout_min={timeout_min}", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1", f"hydra.launcher.setup=[source {VENV_BIN}/activate]", *extra]


@pytest.fixture(scope="module")
def slurm():
    if not all(shutil.which(b) for b in ("munged", "slurmctld", "slurmd", "sbatch")):
        pytest.skip("SLURM and munge are not installed (make test-cluster installs them)")
    # munged wants every directory above its socket searchable by all, which pytest's tmp dirs are not
    root = Path(tempfile.mkdtemp(prefix="rlrun-slurm-", dir="/tmp"))
    cluster = LocalSlurm(root)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    import csv

    with (sweep_dir / "summary.csv").open() as f:
        return list(csv.DictReader(f))


def test_slurm_sweep_runs_every_job_and_records_its_state(slurm, tmp_path):
    grid = ["seed=0,1", "agent.actor_lr=1e-3,3e-4", "total_steps=300"]
    t0 = time.perf_counter()
    proc = run_cli(["sweep", *slurm_launcher(), *SMALL, *grid, f"hydra.sweep.dir={tmp_path / 'slurm'}"],
                   tmp_path, timeout=600, env=slurm.env)
    slurm_s = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = summary_rows(tmp_path / "slurm")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    for job in range(4):
        run = tmp_path / "slurm" / str(job)
        assert json.loads((run / "eval.json").read_text())["status"] == "finished"
        assert (run / "checkpoints" / "last.pt").is_file() and (run / "metrics.csv").is_file()
    states = slurm.job_states()
    assert len(states) == 4 and set(states.values()) == {"COMPLETED"}, states

    t0 = time.perf_counter()
    proc = run_cli(["sweep", *SMALL, *grid, f"hydra.sweep.dir={tmp_path / 'joblib'}"], tmp_path, timeout=600)
    joblib_s = time.perf_counter() - t0
    assert proc.returncode == 0
    print(f"4-job sweep: SLURM {slurm_s:.1f} s, joblib {joblib_s:.1f} s")  # README's cluster section


def _job_id(slurm: LocalSlurm) -> str:
    out = slurm.run("squeue", "-h", "-o", "%i %T").split()
    return out[0] if len(out) >= 2 and out[1] == "RUNNING" else ""


def _resume_and_finish(run_dir: Path, tmp_path: Path) -> None:
    from rlrun.checkpoint import load_checkpoint

    step = int(load_checkpoint(run_dir / "checkpoints" / "last.pt")["trainer"]["step"])
    assert step > 0
    proc = run_cli(["train", f"resume={run_dir}", f"total_steps={step + 200}"], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "eval.json").read_text())["step"] == step + 200


def test_scancel_mid_run_marks_the_job_and_the_job_resumes(slurm, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", *slurm_launcher(), *SMALL, "total_steps=1000000", "checkpoint_every=200", "seed=0",
            f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "rlrun.cli", *args], cwd=tmp_path, env=slurm.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not ((sweep_dir / "0" / "checkpoints" / "last.pt").is_file() and _job_id(slurm)):
            assert time.monotonic() < deadline, "the job never started and checkpointed"
            time.sleep(1.0)
        job = _job_id(slurm)
        slurm.run("scancel", job)
        proc.communicate(timeout=240)
    finally:
        proc.kill()
    rows = summary_rows(sweep_dir)
    assert rows[0]["status"] in ("interrupted", "failed"), rows
    assert slurm.job_states()[job] == "CANCELLED"
    _resume_and_finish(sweep_dir / "0", tmp_path)


def test_time_limit_checkpoints_through_the_forwarded_signal_and_resumes(slurm, tmp_path):
    """timeout_min=1 with submitit's USR2 40 s before the limit: the trainer checkpoints and stops cleanly."""
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(["sweep", *slurm_launcher(timeout_min=1, extra=("hydra.launcher.signal_delay_s=40",)),
                    *SMALL, "total_steps=1000000", "checkpoint_every=1000000", "seed=0",
                    f"hydra.sweep.dir={sweep_dir}"], tmp_path, timeout=300, env=slurm.env)
    log = "".join(f.read_text() for f in sweep_dir.glob(".submitit/*/*_log.out"))  # the job's stdout
    assert "interrupted by SIGUSR2" in log, (proc.stderr[-2000:], log[-2000:])
    assert summary_rows(sweep_dir)[0]["status"] == "interrupted"
    _resume_and_finish(sweep_dir / "0", tmp_path)


def test_unknown_partition_is_one_line_and_submits_nothing(slurm, tmp_path):
    proc = run_cli(["sweep", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", *SMALL,
                    "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, env=slurm.env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: hydra.launcher.partition=gpu is not a partition of this SLURM cluster; "
                                   "available: debug")
    assert not (tmp_path / "sweep").exists() and slurm.run("squeue", "-h").strip() == ""
