"""Held-out comparison for env=inverter: learned policies next to the PI baseline and "do nothing".

    python -m rlrun.envs.inverter.compare run=<train run dir> [run=<another>] [episodes=12] [seed=1000]
        [checkpoint=best|last] [episode_s=1800] [daylight=true] [model=<agent=dynamics run dir>]

Every policy is evaluated deterministically on the same `episodes` windows of held-out days (split=test,
seeds seed..seed+episodes-1) of the env configured in the first run (or env defaults), and the table reports
per-window means of exported kWh, imported kWh, import caused by over-diversion, the fraction of seconds over
the export limit, the longest excursion and the return. `daylight=true` evaluates whole days instead
(06:00-20:00, all the export there is), so the kWh columns are daily figures. The PI baseline is
agent=heuristic with its config defaults; "do nothing" sends the all-off action.

With `model=<run dir of agent=dynamics>` each policy is also scored "with the forward model" as seed 002's
`train_sac_agent` validates: on up to 2000 states of the dynamics run's held-out episodes, the model predicts
the state k steps after the policy's action, and the table reports predicted export and over-diversion in W
(the dataset's own actions give the behaviour policy's row).
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
    from rlrun.commands.collect import compose_config
    from rlrun.evaluate import load_run_config

    runs, kv = [], {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in ("run", "episodes", "seed", "checkpoint", "episode_s", "model", "daylight"):
            raise ConfigError(f"unexpected argument {arg!r}; keys: run (repeatable), episodes, seed, "
                              "checkpoint, episode_s, daylight, model")
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
    if kv.get("daylight", "false").lower() in ("true", "1", "yes"):
        env_kwargs.update(window_start_h=6.0, window_end_h=20.0, episode_s=14 * 3600)
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
    if "model" in kv:
        model_results = model_scores(Path(kv["model"]), policies)
        print("\nwith the forward model (predicted W, k steps after the action, held-out dataset states)")
        for name, r in model_results.items():
            print(f"{name:<28}{r['pred_export_w']:>21.1f}{r['pred_over_diversion_w']:>21.1f}")
        results["forward_model"] = model_results
    if runs:
        (runs[0] / "compare_inverter.json").write_text(json.dumps(results, indent=2))
    return 0


def model_scores(
    model_run: Path, policies: dict[str, Any], n_states: int = 2000
) -> dict[str, dict[str, float]]:
    from rlrun.agents.dynamics import DynamicsAgent
    from rlrun.build import build_agent, build_env
    from rlrun.checkpoint import load_checkpoint, resolve_checkpoint
    from rlrun.evaluate import load_run_config
    from rlrun.models.dynamics import predicted_cost

    cfg = load_run_config(model_run)
    dyn = build_agent(cfg, build_env(cfg))
    if not isinstance(dyn, DynamicsAgent):
        raise ConfigError(f"model={model_run} is not an agent=dynamics run")
    dyn.load_state_dict(load_checkpoint(resolve_checkpoint(model_run, "last"))["agent"])
    val = dyn.val_data
    idx = val.starts[np.linspace(0, len(val) - 1, min(n_states, len(val))).astype(np.int64)]
    states, behaviour = val.states[idx], val.actions[idx]
    out = {"dataset behaviour": predicted_cost(dyn.trainer.best_model, states, behaviour, dyn.obs_scale)}
    for name, agent in policies.items():
        acts = []
        for s in states:
            if hasattr(agent, "on_episode_end"):
                agent.on_episode_end()
            acts.append(np.asarray(agent.act(s, explore=False), dtype=np.float32))
        out[name] = predicted_cost(dyn.trainer.best_model, states, np.stack(acts), dyn.obs_scale)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
