"""`rlrun inverter-compare run=<train run dir> [run=<another> ...] [episodes=12] [seed=1000]
[checkpoint=best|last] [episode_s=1800] [daylight=true] [model=<agent=dynamics run dir>]`: learned inverter
policies next to the PI baseline and "do nothing" on held-out days.

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
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from rlrun.agents.dynamics import DynamicsAgent
from rlrun.build import build_agent
from rlrun.commands.args import parse_args
from rlrun.compose import compose_config
from rlrun.envs.inverter.compare import Noop, compare, format_table
from rlrun.envs.inverter.env import InverterEnv
from rlrun.errors import ConfigError
from rlrun.models.dynamics import predicted_cost
from rlrun.run_dir import RunDir

KEYS = {"run": "train run directory (repeatable)", "episodes": "N", "seed": "S", "checkpoint": "best|last|<path>",
        "episode_s": "seconds per window", "daylight": "true|false", "model": "agent=dynamics run directory"}
PI_OVERRIDES = ["env=inverter", "agent=heuristic", "reward=export"]



def inverter_compare_command(argv: list[str]) -> int:
    args = parse_args("inverter-compare", argv, KEYS, repeatable=["run"])
    runs = [RunDir(path) for path in args.repeated.get("run", [])]
    for run in runs:
        run.require_env("InverterEnv", "inverter-compare", "inverter")
    episodes, seed = args.integer("episodes", 12, minimum=1), args.integer("seed", 1000)
    torch.set_num_threads(1)
    base = runs[0].cfg if runs else compose_config(PI_OVERRIDES)
    env_kwargs = OmegaConf.to_container(base.env, resolve=True)
    env_kwargs.pop("_target_")
    env_kwargs["split"] = "test"
    if "episode_s" in args:
        env_kwargs["episode_s"] = args.integer("episode_s", 0, minimum=1)
    if args.boolean("daylight", False):
        env_kwargs.update(window_start_h=6.0, window_end_h=20.0, episode_s=14 * 3600)
    env = InverterEnv(**env_kwargs)
    pi_cfg = compose_config(PI_OVERRIDES)
    policies: dict[str, Any] = {"do nothing": Noop(env), "PI (agent=heuristic)": build_agent(pi_cfg, env)}
    for run in runs:
        policies[run.name[-28:]] = run.build_agent(env, args.get("checkpoint", "best"))
    results = compare(env, policies, episodes, seed)
    print(f"held-out days (split=test), {episodes} windows of {env.episode_s} s, "
          f"seeds {seed}..{seed + episodes - 1}")
    print(format_table(results))
    if "model" in args:
        model_results = model_scores(RunDir(args.path("model", "agent=dynamics run directory")), policies)
        print("\nwith the forward model (predicted W, k steps after the action, held-out dataset states)")
        for name, r in model_results.items():
            print(f"{name:<28}{r['pred_export_w']:>21.1f}{r['pred_over_diversion_w']:>21.1f}")
        results["forward_model"] = model_results
    if runs:
        (runs[0].path / "compare_inverter.json").write_text(json.dumps(results, indent=2))
    return 0


def model_scores(model_run: RunDir, policies: dict[str, Any], n_states: int = 2000) -> dict[str, dict[str, float]]:
    dyn = model_run.build_agent(model_run.build_env(), "last")
    if not isinstance(dyn, DynamicsAgent):
        raise ConfigError(f"model={model_run.path} is not an agent=dynamics run")
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
