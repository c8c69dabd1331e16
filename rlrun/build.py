"""Build env, agent and replay from a composed config with Hydra's `instantiate` (`_target_`), the one way
rlrun creates objects from config; a user can point `_target_` at their own class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import rlrun.envs  # noqa: F401  (registers rlrun/<Name>-v0 ids)
from rlrun.agents.base import Agent
from rlrun.errors import ConfigError, RlrunError
from rlrun.replay.buffer import ReplayBuffer


def _instantiate(node: DictConfig, group: str, **kwargs: Any) -> Any:
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, RlrunError):
            raise cause from None
        if isinstance(cause, (TypeError, ValueError)):
            raise ConfigError(f"{group}: {cause}") from None
        raise


def build_env(cfg: DictConfig, log_dir: Path | None = None, evaluation: bool = False) -> gym.Env:
    """`log_dir`: where envs that keep their own logs (the consensus env's shadow-mode and circuit-breaker
    event files) write them, unless the config names a directory itself. `evaluation`: apply the env class's
    `eval_kwargs` (e.g. the inverter's held-out days, `split=test`) so evaluation never sees training data."""
    from rlrun.config import locate, parameters

    target = locate(cfg.env._target_)
    extra: dict[str, Any] = dict(getattr(target, "eval_kwargs", {})) if evaluation else {}
    if log_dir is not None and "log_dir" in parameters(target)[0] and not cfg.env.get("log_dir"):
        log_dir.mkdir(parents=True, exist_ok=True)
        extra["log_dir"] = str(log_dir)
    env = _instantiate(cfg.env, "env", **extra)
    if not isinstance(env, gym.Env):
        raise ConfigError(f"env._target_ {cfg.env._target_} did not return a gymnasium.Env")
    return env


def build_agent(cfg: DictConfig, env: gym.Env, node: DictConfig | None = None) -> Agent:
    agent = _instantiate(
        node if node is not None else cfg.agent,
        "agent",
        observation_space=env.observation_space,
        action_space=env.action_space,
        device=cfg.device,
        seed=int(cfg.seed),
    )
    if not isinstance(agent, Agent):
        raise ConfigError(f"agent._target_ {cfg.agent._target_} is not an rlrun.agents.base.Agent")
    default = getattr(env.unwrapped, "default_action", None)
    if hasattr(agent, "use_env_default") and callable(default):
        agent.use_env_default(default())  # static baseline: the env's own default configuration
    return agent


def build_baseline(cfg: DictConfig, env: gym.Env) -> Agent | None:
    """The agent named by `cfg.baseline` (e.g. `static`), built from its packaged config, or None."""
    name = cfg.get("baseline")
    if not name:
        return None
    path = Path(__file__).parent / "conf" / "agent" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"baseline={name!r} is not an agent config; available: {', '.join(options)}")
    return build_agent(cfg, env, OmegaConf.load(path))


def build_replay(cfg: DictConfig, env: gym.Env, agent: Agent) -> ReplayBuffer:
    return _instantiate(
        cfg.replay,
        "replay",
        observation_space=env.observation_space,
        action_space=env.action_space,
        gamma=agent.gamma,
        device=agent.device,
        seed=int(cfg.seed) + 1,
    )


def load_dataset(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ConfigError(f"dataset={path!r} does not exist") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"dataset={path!r} is not a readable .npz dataset ({e})") from None
