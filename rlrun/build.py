"""Build env, agent and replay from a composed config with Hydra's `instantiate` (`_target_`), the one way
rlrun creates objects from config; a user can point `_target_` at their own class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlrun.agents.base import Agent
from rlrun.collect import EnvFactory, EnvPool, make_env, make_pool
from rlrun.errors import ConfigError
from rlrun.instantiate import instantiate_node
from rlrun.replay.buffer import ReplayBuffer


def build_env(cfg: DictConfig, log_dir: Path | None = None, evaluation: bool | str = False) -> gym.Env:
    """One env copy in this process (see rlrun.collect.make_env for `log_dir` and `evaluation`)."""
    return make_env(cfg.env, log_dir, evaluation)


def build_pool(cfg: DictConfig, log_dir: Path | None = None, evaluation: bool | str = False,
               num_envs: int | None = None) -> EnvPool:
    """`num_envs` copies of the env (default cfg.num_envs) stepped by the backend `cfg.vector` names."""
    ray_address = cfg.ray.address if cfg.get("ray") is not None else None
    return make_pool(EnvFactory(cfg.env, log_dir, evaluation), int(num_envs or cfg.num_envs), str(cfg.vector),
                     float(cfg.env_timeout), ray_address)


def env_default_action(env: gym.Env | EnvPool) -> Any:
    """The env's `default_action()` (its static configuration), or None."""
    if isinstance(env, EnvPool):
        return env.call("default_action", indices=[0])[0] if env.has_method("default_action") else None
    default = getattr(env.unwrapped, "default_action", None)
    return default() if callable(default) else None


def build_agent(cfg: DictConfig, env: gym.Env | EnvPool, node: DictConfig | None = None) -> Agent:
    """The agent for `env` (one env or a pool of copies: only their spaces and default action are read)."""
    agent = instantiate_node(
        node if node is not None else cfg.agent,
        "agent",
        observation_space=env.observation_space,
        action_space=env.action_space,
        device=cfg.device,
        seed=int(cfg.seed),
    )
    if not isinstance(agent, Agent):
        raise ConfigError(f"agent._target_ {cfg.agent._target_} is not an rlrun.agents.base.Agent")
    if hasattr(agent, "use_env_default"):
        default = env_default_action(env)
        if default is not None:
            agent.use_env_default(default)  # static baseline: the env's own default configuration
    return agent


def build_baseline(cfg: DictConfig, env: gym.Env | EnvPool) -> Agent | None:
    """The agent named by `cfg.baseline` (e.g. `static`), built from its packaged config, or None."""
    name = cfg.get("baseline")
    if not name:
        return None
    path = Path(__file__).parent / "conf" / "agent" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"baseline={name!r} is not an agent config; available: {', '.join(options)}")
    return build_agent(cfg, env, OmegaConf.load(path))


def build_replay(cfg: DictConfig, env: gym.Env | EnvPool, agent: Agent) -> ReplayBuffer:
    return instantiate_node(
        cfg.replay,
        "replay",
        observation_space=env.observation_space,
        action_space=env.action_space,
        gamma=agent.gamma,
        device=agent.device,
        seed=int(cfg.seed) + 1,
        num_envs=int(cfg.get("num_envs", 1)),
    )


DATASET_KEYS = ("obs", "actions", "rewards", "next_obs", "terminated")


def load_dataset(path: str, like: ReplayBuffer | None = None) -> dict[str, np.ndarray]:
    """The arrays of a transitions .npz; with `like` (the replay buffer it goes into) checked against that
    buffer's row sizes first: numpy would silently broadcast a wrong action dim into every row."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ConfigError(f"dataset={path!r} does not exist") from None
    except Exception as e:  # truncated zip (BadZipFile, zlib.error, EOFError), not an npz, pickled arrays
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"dataset={path!r} is not a readable .npz dataset ({reason})") from None
    if like is not None:
        check_dataset(arrays, path, obs_dim=like.obs.shape[1], action_dim=like.actions.shape[1])
    return arrays


def check_dataset(data: dict[str, np.ndarray], path: str, obs_dim: int, action_dim: int) -> None:
    """One ConfigError line for a dataset that does not fit the env: keys, rows, lengths, dims."""
    missing = [k for k in DATASET_KEYS if k not in data]
    if missing:
        raise ConfigError(f"dataset={path!r} lacks {', '.join(missing)}; a dataset holds "
                          f"{', '.join(DATASET_KEYS)} (see `rlrun collect`)")
    lengths = {k: len(data[k]) if data[k].ndim else 0 for k in DATASET_KEYS}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"dataset={path!r} has arrays of different lengths: "
                          f"{', '.join(f'{k} {n}' for k, n in lengths.items())}")
    n = lengths["rewards"]
    if n == 0:
        raise ConfigError(f"dataset={path!r} has no transitions")
    for key, want in (("obs", obs_dim), ("next_obs", obs_dim), ("actions", action_dim)):
        got = int(np.prod(data[key].shape[1:]))
        if got != want:
            raise ConfigError(f"dataset={path!r}: {key} rows have {got} values, the env needs {want}")
