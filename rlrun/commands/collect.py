"""`rlrun collect env=<name> agent=<name> [episodes=N] [seed=S] [explore=true|false] [out=<dir>]
[run=<dir> [checkpoint=best|last|<path>]] [config overrides]`: roll a policy out in an environment and write
the transitions as an offline dataset.

    rlrun collect env=inverter agent=heuristic episodes=50          # the PI baseline (+ explore noise)
    rlrun collect env=inverter agent=heuristic episodes=5 env.split=test explore=false
    rlrun collect run=outputs/train/inverter-cql/<date> episodes=10 # a trained run, its best checkpoint

This is the stand-in for historical site data: offline agents (`agent.offline`, e.g. agent=cql, and the
dynamics model) train from it with `rlrun train agent=... dataset=<path>/dataset.npz`.

Arguments: `episodes=N` (default 10), `seed=S` (episode i is reset with seed S + i; default 0),
`explore=true|false` (call act(obs, explore) with exploration, default true: a dataset needs action coverage),
`out=<dir>` (default outputs/collect/<env>-<agent>/<timestamp>), `run=<dir>` with optional
`checkpoint=best|last|<path>` (collect from a trained run: its config and weights), and any other key=value is
a Hydra override of the composed config (env=..., agent=..., env.day=..., reward=..., agent.kp=...).

The dataset (numpy .npz, compressed; load with np.load(path, allow_pickle=False)):
    obs [N, obs_dim] float32, actions [N, act_dim] float32 (flat encoding, rlrun.spaces), rewards [N] float32,
    next_obs [N, obs_dim] float32, terminated [N] bool, truncated [N] bool, episode [N] int32 (episode id;
    transitions are stored in time order, so consecutive rows of one episode form a trajectory),
    schema: a JSON string {"format": "rlrun-transitions-v1", "keys": {name: [dtype, shape]},
    "metadata": {...}}
    with the env/agent configs, seeds, episode returns and the env's per-episode metrics.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlrun.commands.args import parse_args
from rlrun.compose import compose_config
from rlrun.errors import ConfigError
from rlrun.replay.dataset import save_dataset
from rlrun.run_dir import RunDir

KEYS = {"episodes": "N", "seed": "S", "explore": "true|false", "out": "directory", "run": "run directory",
        "checkpoint": "best|last|<path>"}


def collect(cfg: DictConfig, episodes: int, seed: int, explore: bool, run: RunDir | None = None,
            checkpoint: str = "best") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Roll the configured agent (or `run`'s trained agent, from `checkpoint`) out for `episodes` episodes;
    return the arrays and the metadata."""
    from rlrun.build import build_agent, build_env
    from rlrun.config import validate_run
    from rlrun.evaluate import InfoAverager
    from rlrun.spaces import flatten_action

    validate_run(cfg)
    torch.set_num_threads(int(cfg.torch_threads))
    torch.manual_seed(int(cfg.seed))
    env = build_env(cfg)
    agent = run.build_agent(env, checkpoint) if run is not None else build_agent(cfg, env)
    names = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated", "episode")
    cols: dict[str, list] = {k: [] for k in names}
    returns, metrics = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        averager, ret, done = InfoAverager(), 0.0, False
        while not done:
            action = agent.act(obs, explore=explore)
            next_obs, reward, terminated, truncated, info = env.step(action)
            cols["obs"].append(np.asarray(obs, dtype=np.float32).reshape(-1))
            cols["actions"].append(flatten_action(env.action_space, action))
            cols["rewards"].append(float(reward))
            cols["next_obs"].append(np.asarray(next_obs, dtype=np.float32).reshape(-1))
            cols["terminated"].append(bool(terminated))
            cols["truncated"].append(bool(truncated))
            cols["episode"].append(ep)
            averager.add(info)
            ret += float(reward)
            obs, done = next_obs, terminated or truncated
        agent.on_episode_end()
        returns.append(ret)
        metrics.append(averager.means())
        print(f"episode {ep + 1}/{episodes}: return {ret:.3f}, {len(cols['rewards'])} transitions",
              flush=True)
    data = {
        "obs": np.stack(cols["obs"]).astype(np.float32),
        "actions": np.stack(cols["actions"]).astype(np.float32),
        "rewards": np.asarray(cols["rewards"], dtype=np.float32),
        "next_obs": np.stack(cols["next_obs"]).astype(np.float32),
        "terminated": np.asarray(cols["terminated"], dtype=bool),
        "truncated": np.asarray(cols["truncated"], dtype=bool),
        "episode": np.asarray(cols["episode"], dtype=np.int32),
    }
    meta = {
        "env": OmegaConf.to_container(cfg.env, resolve=True),
        "agent": OmegaConf.to_container(cfg.agent, resolve=True),
        "episodes": episodes, "seed": seed, "explore": explore, "transitions": len(data["rewards"]),
        "episode_returns": returns, "episode_metrics": metrics,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    return data, meta


def collect_command(argv: list[str]) -> int:
    args = parse_args("collect", argv, KEYS, overrides="config")
    episodes = args.integer("episodes", 10, minimum=1)
    seed = args.integer("seed", 0)
    explore = args.boolean("explore", True)
    run = None
    if "run" in args:
        run = RunDir(args.path("run", "run directory"))
        bad = [o for o in args.overrides if not o.startswith("env.")]
        if bad:
            raise ConfigError(f"rlrun collect run=<dir> keeps the run's config; only env.<key>=... may change, "
                              f"got {bad[0]!r}")
        run.override_env(args.overrides)
        cfg, name = run.cfg, run.path.parent.name  # outputs/train/<env>-<agent>/<date>
    else:
        if "checkpoint" in args:
            raise ConfigError("rlrun collect: checkpoint=... needs run=<run directory>")
        cfg = compose_config(args.overrides)
        choice = dict(o.split("=", 1) for o in args.overrides if o.startswith(("env=", "agent=")))
        name = f"{choice.get('env', 'default')}-{choice.get('agent', 'default')}"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = Path(args.values["out"]) if "out" in args else Path("outputs") / "collect" / name / stamp
    if (out_dir / "dataset.npz").exists():
        raise ConfigError(f"out={out_dir} already holds a dataset.npz; choose a new directory")
    data, meta = collect(cfg, episodes, seed, explore, run, args.get("checkpoint", "best"))
    meta["overrides"] = argv
    save_dataset(out_dir / "dataset.npz", data, meta)
    OmegaConf.save(cfg, out_dir / "config.yaml")
    rets = np.asarray(meta["episode_returns"])
    print(f"wrote {out_dir / 'dataset.npz'}: {meta['transitions']} transitions from {episodes} episodes "
          f"(return {rets.mean():.3f} ± {rets.std():.3f})")
    return 0
