"""Held-out comparison for env=inverter: learned policies next to the PI baseline and "do nothing".

    python -m rlrun.envs.inverter.compare run=<train run dir> [run=<another>] [episodes=12] [seed=1000]
        [checkpoint=best|last] [episode_s=1800]

Every policy is evaluated deterministically on the same `episodes` windows of held-out days (split=test,
seeds seed..seed+episodes-1) of the env configured in the first run (or env defaults), and the table reports
per-window means of exported kWh, imported kWh, import caused by over-diversion, the fraction of seconds over
the export limit, the longest excursion and the return. The PI baseline is agent=heuristic with its config
defaults; "do nothing" sends the all-off action.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlrun.envs.inverter.env import InverterEnv
from rlrun.errors import ConfigError

COLUMNS = ("export_kwh", "import_kwh", "over_diversion_kwh", "over_limit_fraction", "longest_excursion_s")


class _Noop:
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


def main(args: list[str]) -> int:
    from omegaconf import OmegaConf

    from rlrun.build import build_agent
    from rlrun.checkpoint import load_checkpoint, resolve_checkpoint
    from rlrun.collect import compose_config
    from rlrun.evaluate import load_run_config

    runs, kv = [], {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("run", "episodes", "seed", "checkpoint", "episode_s"):
            raise ConfigError(f"unexpected argument {arg!r}; keys: run (repeatable), episodes, seed, "
                              "checkpoint, episode_s")
        if key == "run":
            runs.append(Path(value))
        else:
            kv[key] = value
    episodes, seed = int(kv.get("episodes", 12)), int(kv.get("seed", 1000))
    torch.set_num_threads(1)
    cfgs = [load_run_config(r) for r in runs]
    base = cfgs[0] if cfgs else compose_config(["env=inverter", "agent=heuristic", "reward=export"])
    env_kwargs = OmegaConf.to_container(base.env, resolve=True)
    env_kwargs.pop("_target_")
    env_kwargs["split"] = "test"
    if "episode_s" in kv:
        env_kwargs["episode_s"] = int(kv["episode_s"])
    env = InverterEnv(**env_kwargs)
    pi_cfg = compose_config(["env=inverter", "agent=heuristic", "reward=export"])
    policies: dict[str, Any] = {"do nothing": _Noop(env), "PI (agent=heuristic)": build_agent(pi_cfg, env)}
    for run, cfg in zip(runs, cfgs, strict=True):
        agent = build_agent(cfg, env)
        agent.load_state_dict(load_checkpoint(resolve_checkpoint(run, kv.get("checkpoint", "best")))["agent"])
        policies[f"{run.parent.name}/{run.name}"[-28:]] = agent
    results = compare(env, policies, episodes, seed)
    print(f"held-out days (split=test), {episodes} windows of {env.episode_s} s, "
          f"seeds {seed}..{seed + episodes - 1}")
    print(format_table(results))
    if runs:
        (runs[0] / "compare_inverter.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
