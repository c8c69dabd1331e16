"""`python -m bench ppo`: rlrun PPO vs Stable-Baselines3 PPO on CartPole-v1 and Pendulum-v1, same process.

Both sides get rl-zoo3's tuned hyperparameters (rlrun's `+experiment=cartpole_ppo` / `pendulum_ppo`; Pendulum
without gSDE on both sides, since rlrun has none), the same number of env copies stepped in-process
(rlrun `vector=sync`, SB3 `DummyVecEnv`), SB3's MlpPolicy networks (64-64 tanh actor and critic, orthogonal
init) and one torch thread. Printed per task: env steps per second over the whole training loop (wall clock
and CPU time: this machine is shared, CPU time is the steadier figure), the final deterministic return over
10 episodes on the same evaluation seeds, and rlrun / SB3 ratios. Every run is the full 1e5 steps; BENCH_FULL=1
repeats them over seeds 0-2 so the returns can be compared within the seeds' noise.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.common import evaluate_sb3, full, print_table, rlrun_train, set_threads

EVAL_EPISODES = 10
EVAL_SEED = 1_000_000  # rlrun's default eval_seed: both sides see the same evaluation episodes


@dataclass
class Task:
    env_id: str
    experiment: str
    num_envs: int
    total_steps: int
    sb3: dict[str, Any]  # SB3 PPO keyword arguments equal to the experiment file's agent settings


def linear(start: float) -> Callable[[float], float]:
    """rl-zoo3's lin_x: SB3 calls schedules with the progress remaining (1 -> 0)."""
    return lambda progress_remaining: start * progress_remaining


TASKS = [
    Task("CartPole-v1", "cartpole_ppo", 8, 100_000,
         dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
              learning_rate=linear(1e-3), clip_range=linear(0.2))),
    Task("Pendulum-v1", "pendulum_ppo", 4, 100_000,
         dict(n_steps=1024, batch_size=64, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
              learning_rate=1e-3, clip_range=0.2, use_sde=False)),
]


def run_rlrun(task: Task, seed: int) -> tuple[float, float, float]:
    """(wall steps/s, CPU steps/s, final return) of rlrun's trainer; CPU time includes the final evaluation."""
    cpu0 = time.process_time()
    summary = rlrun_train([f"+experiment={task.experiment}", f"total_steps={task.total_steps}", f"seed={seed}",
                           f"eval_episodes={EVAL_EPISODES}", f"eval_seed={EVAL_SEED}", "baseline=null"])
    cpu = time.process_time() - cpu0
    steps = summary["step"]
    return steps / summary["train_seconds"], steps / cpu, summary["final"]["return_mean"]


def run_sb3(task: Task, seed: int) -> tuple[float, float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(task.env_id, n_envs=task.num_envs, seed=seed)
    model = PPO("MlpPolicy", env, device="cpu", seed=seed, verbose=0, **task.sb3)
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=task.total_steps)
    wall = time.perf_counter() - t0
    ret = evaluate_sb3(model, task.env_id, EVAL_EPISODES, seed=EVAL_SEED)
    cpu = time.process_time() - cpu0
    steps = model.num_timesteps  # SB3 finishes its last rollout: up to num_envs * n_steps past total_steps
    return steps / wall, steps / cpu, ret


def main() -> None:
    set_threads(1)
    have_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    if not have_sb3:
        print("stable-baselines3 is not installed (pip install -c constraints.txt stable-baselines3): rlrun only")
    seeds = [0, 1, 2] if full() else [0]
    rows: list[tuple[str, str, str, str]] = [("", "steps/s (wall)", "steps/s (CPU)", "final return")]
    for task in TASKS:
        rl = np.array([run_rlrun(task, s) for s in seeds])
        rows.append((f"{task.env_id} rlrun PPO", f"{rl[:, 0].mean():.0f}", f"{rl[:, 1].mean():.0f}",
                     " ".join(f"{r:.1f}" for r in rl[:, 2])))
        if not have_sb3:
            continue
        sb = np.array([run_sb3(task, s) for s in seeds])
        rows.append((f"{task.env_id} SB3 PPO", f"{sb[:, 0].mean():.0f}", f"{sb[:, 1].mean():.0f}",
                     " ".join(f"{r:.1f}" for r in sb[:, 2])))
        rows.append((f"{task.env_id} ratio", f"{rl[:, 0].mean() / sb[:, 0].mean():.2f}x",
                     f"{rl[:, 1].mean() / sb[:, 1].mean():.2f}x", ""))
    print(f"rl-zoo3 hyperparameters, {EVAL_EPISODES} deterministic evaluation episodes, seeds {seeds}, "
          "1 torch thread, env copies in-process")
    print_table(rows)
