"""Adaptive control of the blockchain env: does a trained policy beat the best static setting when demand is
bursty? `python -m bench adaptive` (BENCH_FULL=1: 4x the training steps).

Setting (ADAPTIVE below): the env's training network with `transactions.pattern=bursts` (3 tx/s, and 20x
that, 60 tx/s of 400 B, for ~10 min about every 30 min) and `observation=extended` (the policy sees the
mempool, latency, propagation, its own setting and the time of day). A static setting must be one compromise
for calm and burst periods; a policy that reads the mempool can change block size and interval with the load.

Compared on the same held-out seeds (eval seeds 1000000..; training uses other seeds): DDPG, TD3 and SAC
(continuous action: relay mask + size + interval) and P-DQN (hybrid: strategy + size + interval), each trained
for STEPS env steps with its tuned settings where rlrun has them, against every point of a static grid of
(gossip strategy, block size, interval). Mean return per 50-step episode; one training seed per agent.
On a held-out seed every policy starts from the same topology, pools and first burst (later bursts share the
simulation's random stream, so they differ with the policy): the table gives each agent's paired difference
to the best static point with a 95 % t interval over the held-out episodes.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from bench.common import full, rlrun_train, set_threads
from rlrun.envs.blockchain import BlockchainEnv

ADAPTIVE = ["env.observation=extended", "env.transactions.pattern=bursts", "env.transactions.rate_tps=3.0",
            "env.transactions.burst_factor=20.0", "env.transactions.burst_every_s=1800.0",
            "env.transactions.burst_mean_s=600.0"]
EVAL_SEED, EVAL_EPISODES = 1_000_000, 5
AGENTS = ("ddpg", "td3", "sac", "pdqn")
GRID = {"strategy": ("flood", "nearest", "region"), "size_mb": (0.25, 1.0, 4.0), "interval_s": (5.0, 10.0, 20.0, 60.0)}


def _env_kwargs() -> dict:
    tx = {"pattern": "bursts", "rate_tps": 3.0, "burst_factor": 20.0, "burst_every_s": 1800.0,
          "burst_mean_s": 600.0}
    return {"observation": "extended", "transactions": tx}


def static_returns(strategy: str, size_mb: float, interval_s: float) -> list[float]:
    """Return of each held-out episode under one fixed (strategy, size, interval)."""
    env = BlockchainEnv(action_mode="hybrid", **_env_kwargs())
    u = [2.0 * env._to_unit(size_mb, *env.size_range) - 1.0, 2.0 * env._to_unit(interval_s, *env.interval_range) - 1.0]
    action = (env.strategies.index(strategy), np.array(u, dtype=np.float32))
    returns = []
    for i in range(EVAL_EPISODES):
        env.reset(seed=EVAL_SEED + i)
        ret, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(action)
            ret += r
            done = term or trunc
        returns.append(float(ret))
    return returns


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and the half-width of its 95 % t interval (5 episodes: 4 degrees of freedom, t = 2.776)."""
    d = np.asarray(a) - np.asarray(b)
    return float(d.mean()), float(2.776 * d.std(ddof=1) / math.sqrt(len(d)))


def main() -> None:
    set_threads(1)
    steps = 40_000 if full() else 10_000
    rows = []
    t0 = time.perf_counter()
    per_episode = {k: static_returns(*k) for k in itertools.product(*GRID.values())}
    grid = {k: float(np.mean(v)) for k, v in per_episode.items()}
    best = max(grid, key=grid.get)
    print(f"static grid ({len(grid)} points, {time.perf_counter() - t0:.0f} s): best {best} -> {grid[best]:.2f}",
          flush=True)
    for agent in AGENTS:
        t1 = time.perf_counter()
        summary = rlrun_train(["env=blockchain", f"agent={agent}", *ADAPTIVE, f"total_steps={steps}",
                               "learning_starts=1000", f"eval_episodes={EVAL_EPISODES}", f"eval_seed={EVAL_SEED}",
                               "baseline=null", "seed=0"])
        ret = float(summary["final"]["return_mean"])
        rows.append((agent, ret, paired(summary["final"]["returns"], per_episode[best])))
        print(f"{agent}: {ret:.2f} per episode after {steps} steps ({time.perf_counter() - t1:.0f} s)", flush=True)
    print("\n| policy (held-out seeds 1000000-1000004) | return per 50-step episode | minus best static, 95 % CI |")
    print("|---|---|---|")
    print(f"| best static point of the grid: {best[0]}, {best[1]:g} MB, {best[2]:g} s | {grid[best]:.2f} | |")
    for agent, ret, (d, half) in rows:
        print(f"| {agent} after {steps:,} steps | {ret:.2f} | {d:+.2f} ± {half:.2f} |")
    worst = min(grid, key=grid.get)
    print(f"| worst static point: {worst[0]}, {worst[1]:g} MB, {worst[2]:g} s | {grid[worst]:.2f} | |")
    assert all(math.isfinite(v) for v in grid.values())


if __name__ == "__main__":
    main()
