"""rlrun TD3 vs Stable-Baselines3 TD3 on Pendulum-v1: env steps per second with the same hyperparameters
(rl-zoo3's: gamma 0.98, Gaussian noise 0.1, lr 1e-3, 400-300 nets, batch 256, one update per step), measured
in the same process, one torch thread each. BENCH_FULL=1 trains 20k steps (10k random) and compares final
returns; the default run is 6k steps (1k random) and measures throughput only."""

from __future__ import annotations

import time

from bench.common import evaluate_sb3, full, print_table, rlrun_train, set_threads

ENV_ID = "Pendulum-v1"


def main() -> None:
    set_threads(1)
    steps, starts = (20_000, 10_000) if full() else (6_000, 1_000)
    episodes = 10
    rl = rlrun_train(["+experiment=pendulum_td3", f"total_steps={steps}", f"learning_starts={starts}",
                      f"eval_episodes={episodes}", "seed=0"])
    rl_sps = steps / rl["train_seconds"]

    try:
        from stable_baselines3 import TD3
        from stable_baselines3.common.noise import NormalActionNoise
    except ImportError:
        print("stable-baselines3 is not installed (pip install -e '.[bench]'): rlrun only")
        print(f"rlrun TD3: {rl_sps:.0f} steps/s, final return {rl['final']['return_mean']:.1f}")
        return
    import numpy as np

    model = TD3("MlpPolicy", ENV_ID, learning_rate=1e-3, gamma=0.98, buffer_size=200_000, learning_starts=starts,
                batch_size=256, tau=0.005, train_freq=1, gradient_steps=1, policy_kwargs={"net_arch": [400, 300]},
                action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), device="cpu", seed=0, verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    sb3_seconds = time.perf_counter() - t0
    sb3_sps = steps / sb3_seconds
    sb3_return = evaluate_sb3(model, ENV_ID, episodes, seed=1_000_000)
    print(f"Pendulum-v1, {steps} steps ({starts} random), 1 torch thread, final return over {episodes} episodes")
    print_table([
        ("", "steps/s", "final return", "train seconds"),
        ("rlrun TD3", f"{rl_sps:.0f}", f"{rl['final']['return_mean']:.1f}", f"{rl['train_seconds']:.1f}"),
        ("SB3 TD3", f"{sb3_sps:.0f}", f"{sb3_return:.1f}", f"{sb3_seconds:.1f}"),
        ("ratio", f"{rl_sps / sb3_sps:.2f}x", "", ""),
    ])
