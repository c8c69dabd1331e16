"""Sweep wall time: the same 4 short reach jobs through `rlrun sweep` with the joblib launcher (rlrun's
default: one single-threaded job per core) and with Hydra's basic launcher (one job after another), each
`rlrun sweep` a fresh process timed from start to its summary. The ratio tends to min(cores, 4) as the jobs
grow longer than the start-up of a worker process (Python + torch import); on a busy machine it is lower.
BENCH_FULL=1 runs 4x longer jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import full, print_table
from rlrun.sweep import usable_cores

STEPS = 12_000 if full() else 3_000
JOB = ["env=reach", "env.dim=4", "env.max_steps=50", "agent=ddpg", "agent.actor_hidden=[64,64]",
       "agent.critic_hidden=[64,64]", "agent.critic_arch=concat", "agent.batch_size=64",
       f"total_steps={STEPS}", "learning_starts=500", "eval_every=0", "eval_episodes=3",
       "checkpoint_every=0", "plots=false", "progress=false", "seed=0,1,2,3"]


def _sweep(launcher: str, cwd: Path) -> tuple[float, float]:
    """(wall seconds of the whole `rlrun sweep`, summed train_seconds of its jobs)."""
    sweep_dir = cwd / launcher
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rlrun.cli", "sweep", *JOB, f"hydra/launcher={launcher}",
                           f"hydra.sweep.dir={sweep_dir}"], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"rlrun sweep with {launcher} failed:\n{proc.stderr[-2000:]}")
    results = [json.loads((sweep_dir / str(i) / "eval.json").read_text()) for i in range(4)]
    if any(r["status"] != "finished" for r in results):
        raise RuntimeError(f"a job of the {launcher} sweep did not finish: {[r['status'] for r in results]}")
    return wall, sum(r["train_seconds"] for r in results)


_BUSY = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(15_000_000):\n    x += i\n" \
        "print(time.perf_counter() - t)"


def free_cores(n: int) -> float:
    """Cores this machine gives us right now: n pure-Python busy loops at once vs one alone (n x the
    single loop's time / the slowest parallel loop's). Other users' processes make it less than n."""
    one = float(subprocess.run([sys.executable, "-c", _BUSY], capture_output=True, text=True).stdout)
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    slowest = max(float(p.communicate()[0]) for p in procs)
    return n * one / slowest


def main() -> None:
    cores = usable_cores()
    free_before = free_cores(cores)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        basic, basic_train = _sweep("basic", cwd)
        joblib, joblib_train = _sweep("joblib", cwd)
    free_after = free_cores(cores)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"4 reach jobs of {STEPS} steps each; {cores} usable cores; load average {load:.1f}; "
          f"cores free for us (busy-loop probe) {free_before:.2f} before, {free_after:.2f} after: "
          f"the speed-up cannot exceed that")
    print_table([
        ("launcher", "sweep wall s", "sum of job train s", "ratio"),
        (f"joblib (rlrun default, n_jobs={cores})", f"{joblib:.1f}", f"{joblib_train:.1f}", ""),
        ("basic (sequential, Hydra's default)", f"{basic:.1f}", f"{basic_train:.1f}", ""),
        ("speed-up basic / joblib", "", "", f"{basic / joblib:.2f}x"),
    ])


if __name__ == "__main__":
    main()
