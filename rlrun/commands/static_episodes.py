"""`rlrun simulate env=<relay|consensus|inverter|...> episodes=N`: the env's static policy (its own
`default_action()`, else the centre of the action space, as `agent=static` plays it) for N episodes on seeds
S, S+1, ..., and each of the env's info metrics averaged per episode, with a 95 % t interval across episodes.

This is the counterpart of the blockchain's N-block simulation for envs whose natural unit is the episode:
what the env does at its default configuration, without training, in the env's own metrics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from rlrun.evaluate import InfoAverager


def t_interval(x: list[float]) -> list[float]:
    """95 % t interval of the mean of x (nan with fewer than 2 values)."""
    a = np.asarray(x, dtype=float)
    if len(a) < 2:
        return [math.nan, math.nan]
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))
    return [float(a.mean()) - half, float(a.mean()) + half]


def static_episodes(cfg: Any, episodes: int, seed: int, log_dir: Path | None = None) -> dict[str, Any]:
    from rlrun.agents.baselines import static_baseline
    from rlrun.build import build_env

    env = build_env(cfg, log_dir=log_dir, evaluation=True)
    agent = static_baseline(env, seed=seed)
    returns: list[float] = []
    per_episode: list[dict[str, float]] = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        agent.reset_episode()
        averager = InfoAverager()
        ret, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, explore=False))
            ret += float(reward)
            averager.add(info)
            done = terminated or truncated
        returns.append(ret)
        per_episode.append(averager.means())
    keys = sorted(set().union(*per_episode)) if per_episode else []
    metrics = {}
    for k in keys:
        vals = [m[k] for m in per_episode if k in m]
        metrics[k] = {"mean": float(np.mean(vals)), "ci95": t_interval(vals)}
    return {
        "episodes": episodes,
        "policy": f"static ({agent.source})" if hasattr(agent, "source") else "static",
        "return_mean": float(np.mean(returns)),
        "return_ci95": t_interval(returns),
        "returns": returns,
        "metrics": metrics,
    }
