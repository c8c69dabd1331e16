"""`rlrun collect`: roll a policy out in an environment and write the transitions as an offline dataset.

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
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlrun.errors import ConfigError

FORMAT = "rlrun-transitions-v1"
OWN_KEYS = ("episodes", "seed", "explore", "out", "run", "checkpoint")


def compose_config(overrides: list[str]) -> DictConfig:
    """Compose rlrun's config tree (the package's conf/) with Hydra's compose API."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException

    import rlrun.config  # noqa: F401  (registers the structured run schema)

    try:
        with initialize_config_module(config_module="rlrun.conf", version_base="1.3"):
            return compose("config", overrides=overrides)
    except HydraException as e:
        raise ConfigError(f"cannot compose the config from {overrides}: {str(e).splitlines()[0]}") from None


def _parse(args: list[str]) -> tuple[dict[str, str], list[str]]:
    own: dict[str, str] = {}
    overrides: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"unexpected argument {arg!r}; expected key=value ({', '.join(OWN_KEYS)} or a "
                              "config override such as env=inverter)")
        if key in OWN_KEYS:
            own[key] = value
        else:
            overrides.append(arg)
    return own, overrides


def _as_bool(key: str, value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}")


def collect(cfg: DictConfig, episodes: int, seed: int, explore: bool,
            agent_state: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Roll the configured agent out for `episodes` episodes; return the arrays and the metadata."""
    from rlrun.build import build_agent, build_env
    from rlrun.config import validate_run
    from rlrun.evaluate import InfoAverager
    from rlrun.spaces import flatten_action

    validate_run(cfg)
    torch.set_num_threads(int(cfg.torch_threads))
    torch.manual_seed(int(cfg.seed))
    env = build_env(cfg)
    agent = build_agent(cfg, env)
    if agent_state is not None:
        agent.load_state_dict(agent_state)
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


def save_dataset(path: Path, data: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    schema = {"format": FORMAT,
              "keys": {k: [str(v.dtype), list(v.shape)] for k, v in data.items()},
              "metadata": meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **data, schema=np.array(json.dumps(schema)))
    tmp.replace(path)


def read_schema(data: dict[str, np.ndarray] | Any) -> dict[str, Any]:
    """The schema entry of a dataset loaded with np.load (or an equivalent dict)."""
    if "schema" not in data:
        raise ConfigError("dataset has no 'schema' entry (not written by rlrun collect)")
    schema = json.loads(str(np.asarray(data["schema"])))
    if schema.get("format") != FORMAT:
        raise ConfigError(f"dataset format {schema.get('format')!r} is not {FORMAT}")
    return schema


def collect_command(args: list[str]) -> int:
    own, overrides = _parse(args)
    try:
        episodes = int(own.get("episodes", 10))
        seed = int(own.get("seed", 0))
    except ValueError:
        raise ConfigError("episodes and seed must be integers") from None
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    explore = _as_bool("explore", own.get("explore", "true"))
    agent_state = None
    if "run" in own:
        from rlrun.checkpoint import load_checkpoint, resolve_checkpoint
        from rlrun.evaluate import load_run_config

        run_dir = Path(own["run"])
        cfg = load_run_config(run_dir)
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
        agent_state = load_checkpoint(resolve_checkpoint(run_dir, own.get("checkpoint", "best")))["agent"]
        name = run_dir.parent.name  # outputs/train/<env>-<agent>/<date>
    else:
        if "checkpoint" in own:
            raise ConfigError("checkpoint=... needs run=<run directory>")
        cfg = compose_config(overrides)
        choice = dict(o.split("=", 1) for o in overrides if o.startswith(("env=", "agent=")))
        name = f"{choice.get('env', 'default')}-{choice.get('agent', 'default')}"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = Path(own["out"]) if "out" in own else Path("outputs") / "collect" / name / stamp
    if (out_dir / "dataset.npz").exists():
        raise ConfigError(f"out={out_dir} already holds a dataset.npz; choose a new directory")
    data, meta = collect(cfg, episodes, seed, explore, agent_state)
    meta["overrides"] = args
    save_dataset(out_dir / "dataset.npz", data, meta)
    OmegaConf.save(cfg, out_dir / "config.yaml")
    rets = np.asarray(meta["episode_returns"])
    print(f"wrote {out_dir / 'dataset.npz'}: {meta['transitions']} transitions from {episodes} episodes "
          f"(return {rets.mean():.3f} ± {rets.std():.3f})")
    return 0
