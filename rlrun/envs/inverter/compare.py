"""Held-out comparison for env=inverter (`rlrun inverter-compare`, rlrun.commands.inverter_compare): every
policy evaluated deterministically on the same windows of held-out days, and the per-window means of exported
kWh, imported kWh, import caused by over-diversion, the fraction of seconds over the export limit, the longest
excursion and the return."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrun.envs.inverter.env import InverterEnv

COLUMNS = ("export_kwh", "import_kwh", "over_diversion_kwh", "over_limit_fraction", "longest_excursion_s")


class Noop:
    def __init__(self, env: InverterEnv) -> None:
        self.noop = env.noop_action

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        return self.noop

    def on_episode_end(self) -> None:
        pass


def evaluate(env: InverterEnv, agent: Any, episodes: int, seed: int) -> dict[str, float]:
    """Per-window means of the end-of-episode metrics and the return (deterministic actions)."""
    rows = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        if hasattr(agent, "on_episode_end"):
            agent.on_episode_end()
        ret, done, info = 0.0, False, {}
        while not done:
            obs, r, terminated, truncated, info = env.step(agent.act(obs, explore=False))
            ret += r
            done = terminated or truncated
        rows.append([info[c] for c in COLUMNS] + [ret])
    mean = np.mean(np.asarray(rows), axis=0)
    return dict(zip((*COLUMNS, "return"), (float(x) for x in mean), strict=True))


def compare(
    env: InverterEnv, policies: dict[str, Any], episodes: int, seed: int
) -> dict[str, dict[str, float]]:
    return {name: evaluate(env, agent, episodes, seed) for name, agent in policies.items()}


def format_table(results: dict[str, dict[str, float]]) -> str:
    head = f"{'policy':<28}" + "".join(f"{c:>21}" for c in (*COLUMNS, "return"))
    lines = [head]
    for name, r in results.items():
        lines.append(f"{name:<28}" + "".join(f"{r[c]:>21.4f}" for c in (*COLUMNS, "return")))
    return "\n".join(lines)
