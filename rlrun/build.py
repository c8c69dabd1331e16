"""Build env, agent and replay from a composed config with Hydra's `instantiate` (`_target_`), the one way
rlrun creates objects from config; a user can point `_target_` at their own class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig, OmegaConf

from rlrun.agents.base import Agent
from rlrun.collect import EnvFactory, EnvPool, make_env, make_pool
from rlrun.compose import CONF_DIR
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
    path = CONF_DIR / "agent" / f"{name}.yaml"
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
