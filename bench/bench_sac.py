"""SAC throughput: rlrun's full training loop vs Stable-Baselines3's `learn`, Pendulum-v1, same process.

Same hyperparameters on both sides (rl-zoo3's Pendulum SAC: lr 1e-3; otherwise SB3's defaults: [256, 256]
networks, batch 256, tau 0.005, gamma 0.99, automatic entropy with target -|A|, one gradient step per env
step) and the same 1,000 random warm-up steps. The runs are short, so this measures steps per second of the
whole loop (acting, storing, sampling, updating, logging); the returns after so few steps are printed for
reference only, not as a learning-quality result (that is tests/test_sac.py's slow test: >= -200 in 20k).
Stable-Baselines3 is a bench-only extra (`pip install -c constraints.txt stable-baselines3`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlrun.compose import CONF_DIR

STEPS = 4000
WARMUP = 1000
EVAL_EPISODES = 5
EVAL_SEED = 1_000_000


def run_rlrun() -> tuple[float, float, float]:
    from hydra import compose, initialize_config_dir

    from rlrun.trainer import Trainer

    overrides = ["env=gym", "env.id=Pendulum-v1", "agent=sac", "agent.lr=1e-3", f"total_steps={STEPS}",
                 f"learning_starts={WARMUP}", "eval_every=0", f"eval_episodes={EVAL_EPISODES}",
                 f"eval_seed={EVAL_SEED}", "progress=false", "plots=false", "checkpoint_every=0", "seed=0"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp))
        cpu0 = time.process_time()
        summary = trainer.run()  # CPU time includes its final evaluation (+ static baseline) and checkpoint
        cpu = time.process_time() - cpu0
    return summary["steps_per_second"], STEPS / cpu, summary["final"]["return_mean"]


def run_sb3() -> tuple[float, float, float] | None:
    try:
        from stable_baselines3 import SAC as SB3SAC
    except ImportError:
        return None
    env = gym.make("Pendulum-v1")
    model = SB3SAC("MlpPolicy", env, learning_rate=1e-3, learning_starts=WARMUP, batch_size=256, tau=0.005,
                   gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto", device="cpu", seed=0,
                   verbose=0)
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=STEPS)
    sps, cpu_sps = STEPS / (time.perf_counter() - t0), STEPS / (time.process_time() - cpu0)
    returns = []
    for i in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        done, ret = False, 0.0
        while not done:
            obs, r, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
            ret += float(r)
            done = terminated or truncated
        returns.append(ret)
    return sps, cpu_sps, float(np.mean(returns))


def main() -> None:
    torch.set_num_threads(1)
    ours_sps, ours_cpu, ours_ret = run_rlrun()
    ref = run_sb3()
    print(f"SAC on Pendulum-v1, {STEPS} env steps ({WARMUP} random warm-up), 1 gradient step per step, "
          "one thread: throughput")
    print(f"{'implementation':<24}{'steps/wall-s':>14}{'steps/CPU-s':>13}{'ratio (CPU)':>13}"
          f"{'eval return (5 ep)':>20}")
    print(f"{'rlrun SAC':<24}{ours_sps:>14.0f}{ours_cpu:>13.0f}{'1.00':>13}{ours_ret:>20.1f}")
    if ref is None:
        print("Stable-Baselines3: skipped: not installed (`.venv/bin/pip install -c constraints.txt "
              "stable-baselines3`)")
        return
    sb3_sps, sb3_cpu, sb3_ret = ref
    print(f"{'Stable-Baselines3 SAC':<24}{sb3_sps:>14.0f}{sb3_cpu:>13.0f}{sb3_cpu / ours_cpu:>13.2f}"
          f"{sb3_ret:>20.1f}")
    print(f"rlrun / SB3: {ours_cpu / sb3_cpu:.2f}x steps per CPU-second, {ours_sps / sb3_sps:.2f}x per wall-second "
          f"(target >= 2x). CPU time is the fairer figure on a shared host. Returns after {STEPS} steps are "
          "not a learning-quality result.")


if __name__ == "__main__":
    main()
