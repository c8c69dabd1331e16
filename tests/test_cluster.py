"""Sweeps on real SLURM and Ray clusters that the tests start on this machine (`make test-cluster`, marker
`cluster`).

SLURM: each test drives the README's command (`rlrun sweep hydra/launcher=submitit_slurm ...`, only the
partition, time limit and setup line adapted) against munged + slurmctld + slurmd started in a temp dir, and
checks the jobs' run directories, the sweep summary and SLURM's own record of every job's final state.

Ray: a head (`ray start --head`) and a worker node (`ray start --address=<head>`), one CPU each, on the loopback
interface; the README's `rlrun sweep hydra/launcher=ray hydra.launcher.ray.init.address=<head>` and a
`vector=ray ray.address=<head>` training run on them, and a worker node killed in the middle of a sweep.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cluster_engines import LocalRay, LocalSlurm, free_port

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


# ---- Ray ------------------------------------------------------------------------------------------------

def ray_launcher(cluster: LocalRay) -> list[str]:
    """README's Ray command, adapted to the test cluster: its address."""
    return ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={cluster.address}"]


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray")
    cluster = LocalRay()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def ray_nodes_of_jobs(sweep_dir: Path) -> dict[str, tuple[str, int]]:
    """job -> (Ray node id, pid) from the line each job's train.log starts with."""
    out = {}
    for log in sorted(sweep_dir.glob("*/train.log")):
        m = re.search(r"running on Ray node (\w+) \(host [^)]*\), pid (\d+)", log.read_text())
        if m:
            out[log.parent.name] = (m.group(1), int(m.group(2)))
    return out


def test_ray_sweep_runs_every_job_on_both_nodes(ray_cluster, tmp_path):
    grid = ["seed=0,1", "agent.actor_lr=1e-3,3e-4", "total_steps=300"]
    t0 = time.perf_counter()
    proc = run_cli(["sweep", *ray_launcher(ray_cluster), *SMALL, *grid, f"hydra.sweep.dir={tmp_path / 'ray'}"],
                   tmp_path, timeout=600, env=ray_cluster.env)
    ray_s = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = summary_rows(tmp_path / "ray")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    for job in range(4):
        run = tmp_path / "ray" / str(job)
        assert json.loads((run / "eval.json").read_text())["status"] == "finished"
        assert (run / "checkpoints" / "last.pt").is_file() and (run / "metrics.csv").is_file()
    placed = ray_nodes_of_jobs(tmp_path / "ray")
    assert sorted(placed) == ["0", "1", "2", "3"], placed
    assert {node for node, _ in placed.values()} == set(ray_cluster.node_ids().values()), placed  # both nodes
    assert len({pid for _, pid in placed.values()}) == 4  # max_calls: 1, a fresh worker process per job

    t0 = time.perf_counter()
    proc = run_cli(["sweep", *SMALL, *grid, f"hydra.sweep.dir={tmp_path / 'joblib'}"], tmp_path, timeout=600)
    joblib_s = time.perf_counter() - t0
    assert proc.returncode == 0
    print(f"4-job sweep: Ray {ray_s:.1f} s, joblib {joblib_s:.1f} s")  # README's cluster section


def test_vector_ray_places_the_env_copies_on_the_cluster(ray_cluster, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["train", *SMALL, "num_envs=2", "vector=ray", f"ray.address={ray_cluster.address}",
                    "total_steps=300", "progress=false", f"hydra.run.dir={run_dir}"], tmp_path, timeout=300,
                   env=ray_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "eval.json").read_text())["status"] == "finished"
    line = next(ln for ln in (run_dir / "train.log").read_text().splitlines() if "training env copies" in ln)
    nodes = set(re.findall(r"copy \d on (\w+)", line))
    assert nodes == set(ray_cluster.node_ids().values()), line  # one copy per node: each has one CPU


def test_ray_address_nobody_answers_is_one_line_and_submits_nothing(tmp_path):
    address = f"{LocalRay.IP}:{free_port()}"
    proc = run_cli(["sweep", "hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}", *SMALL,
                    "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: hydra.launcher.ray.init.address={address}: no Ray cluster answers "
                                   "there (is `ray start --head` running, and is the port its --port?)")
    assert not (tmp_path / "sweep").exists()


def test_a_killed_ray_worker_node_fails_only_its_job(tmp_path):
    pytest.importorskip("ray")
    cluster = LocalRay().start()  # its own: the worker node does not come back
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", *ray_launcher(cluster), *SMALL, "seed=0,1,2,3", "total_steps=3000", "eval_every=0",
            f"hydra.sweep.dir={sweep_dir}"]
    try:
        worker = cluster.node_ids()["worker"]
        proc = subprocess.Popen([sys.executable, "-m", "rlrun.cli", *args], cwd=tmp_path, env=cluster.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 180
            while not any(node == worker for node, _ in ray_nodes_of_jobs(sweep_dir).values()):
                assert proc.poll() is None and time.monotonic() < deadline, "no job started on the worker node"
                time.sleep(0.5)
            time.sleep(1.0)
            victims = [job for job, (node, _) in ray_nodes_of_jobs(sweep_dir).items() if node == worker]
            assert not any((sweep_dir / job / "eval.json").exists() for job in victims), "finished too soon"
            cluster.kill_worker()
            _, err = proc.communicate(timeout=400)
        finally:
            proc.kill()
    finally:
        cluster.stop()
    assert proc.returncode == 1, err[-3000:]
    rows = {r["job"]: r for r in summary_rows(sweep_dir)}  # the summary: every job, the lost one failed
    assert sorted(rows) == ["0", "1", "2", "3"], rows
    failed = sorted(job for job, r in rows.items() if r["status"] != "finished")
    assert failed == victims, (failed, victims, err[-2000:])
    assert all(rows[j]["status"] == "failed" and "Ray lost the job" in rows[j]["error"] for j in failed), rows
    print(f"killed the worker node during job(s) {victims}: failed {failed}, the other jobs finished")
