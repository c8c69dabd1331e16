"""`python -m bench parallel`: env steps per second of `rlrun train env=blockchain agent=ddpg` with num_envs
copies in worker processes (`vector=async`) against one copy in-process, measured in the same session.

Two rows per copy count:
- collect: random actions for the whole run (`learning_starts` = `total_steps`), so the figure is the
  simulators plus the trainer's bookkeeping: how env collection scales with cores;
- train: DDPG with one update per env step summed over the copies (`train_every=1`, `gradient_steps=1`: the
  update-to-data ratio of the single-env run), so the learner's share does not shrink with more copies.

Scaling efficiency = speed-up / num_envs. Copy counts default to 1, 2, 4 and then every power of two up to the
core count (BENCH_ENVS="1,2,4,8,16" chooses them). Steps per run: BENCH_STEPS (default 1,600; counted over
the copies, so every row simulates the same number of env steps).
"""

from __future__ import annotations

import os

from bench.common import print_table, rlrun_train, set_threads


def copy_counts() -> list[int]:
    if os.environ.get("BENCH_ENVS"):
        return [int(n) for n in os.environ["BENCH_ENVS"].split(",")]
    cores = os.cpu_count() or 1
    counts, n = [1, 2, 4], 8
    while n <= cores:
        counts.append(n)
        n *= 2
    return counts


def steps_per_second(num_envs: int, steps: int, learn: bool) -> float:
    vector = "sync" if num_envs == 1 else "async"
    starts = 200 if learn else steps
    summary = rlrun_train(["env=blockchain", "agent=ddpg", f"num_envs={num_envs}", f"vector={vector}",
                           f"total_steps={steps}", f"learning_starts={starts}", "eval_episodes=1",
                           "baseline=null", "seed=0"])
    return summary["step"] / summary["train_seconds"]


def synchronous_bound(steps: int = 600) -> tuple[float, float, float]:
    """Env step times in-process and the speed-up two synchronous copies could reach with no overhead at all:
    each vector step lasts as long as the slower copy's step, so the bound is 2 mean / mean(max of two)."""
    import time

    import numpy as np

    from rlrun.build import build_env
    from rlrun.compose import compose as _compose

    env = build_env(_compose(["env=blockchain"]))
    env.reset(seed=0)
    env.action_space.seed(0)
    times = []
    for _ in range(steps):
        action = env.action_space.sample()
        t0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        times.append(time.perf_counter() - t0)
        if terminated or truncated:
            env.reset()
    ms = np.asarray(times) * 1000
    pairs = ms[: len(ms) // 2 * 2].reshape(-1, 2)
    return float(ms.mean()), float(ms.std()), float(2 * ms.mean() / pairs.max(axis=1).mean())


def main() -> None:
    set_threads(1)
    steps = int(os.environ.get("BENCH_STEPS", "1600"))
    counts = copy_counts()
    print(f"env=blockchain agent=ddpg, {steps} env steps per run, {os.cpu_count()} cores; "
          f"num_envs=1 in-process, more copies in worker processes (vector=async)")
    rows = [("run", "env steps/s", "speed-up", "efficiency")]
    for learn in (False, True):
        base = None
        for n in counts:
            sps = steps_per_second(n, steps, learn)
            base = base or sps
            label = f"{'train' if learn else 'collect'} num_envs={n}"
            rows.append((label, f"{sps:.0f}", f"{sps / base:.2f}x", f"{sps / base / n:.2f}"))
            print(f"  {label}: {sps:.0f} steps/s", flush=True)
    print_table(rows)
    mean, std, bound = synchronous_bound()
    print(f"blockchain env step: {mean:.2f} ms mean, {std:.2f} ms std; two synchronous copies with zero "
          f"overhead would reach at most {bound:.2f}x (each step waits for the slower copy)")
