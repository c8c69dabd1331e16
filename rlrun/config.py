"""Config schemas and validation: bad input fails before training with one line naming the key.

Two layers:
- `RunConfig`, a structured-config dataclass registered in Hydra's ConfigStore as `schema_run` and listed
  first in conf/config.yaml's defaults, types the run settings (`total_steps=abc` fails at composition).
- The `env`, `agent` and `replay` groups are validated against their `_target_`'s constructor signature,
  the one place their parameters and types are declared: an unknown key (`agent.tua`) or a value of the
  wrong type (`agent.actor_lr=abc`) is reported with the allowed keys.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from rlrun.collect.pool import VECTOR_MODES
from rlrun.errors import ConfigError
from rlrun.instantiate import locate, parameters


@dataclass
class RayConfig:
    address: Any = None  # null: start a local Ray; "<head>:6379" (or "auto"): join a running cluster


@dataclass
class RunConfig:
    env: Any = None
    agent: Any = None
    replay: Any = None
    reward: Any = None
    seed: int = 0
    total_steps: int = 20000
    learning_starts: int = 1000
    train_every: int = 1
    gradient_steps: int = 1
    eval_every: int = 5000
    eval_episodes: int = 5
    eval_seed: int = 1_000_000
    val_seed: int = 2_000_000
    checkpoint_every: int = 5000
    device: str = "cpu"
    torch_threads: int = 1
    progress: bool = True
    resume: Any = None
    dataset: Any = None
    plots: bool = True
    baseline: Any = "static"
    num_envs: int = 1
    vector: str = "sync"
    env_timeout: float = 600.0
    ray: RayConfig = field(default_factory=RayConfig)


def register_schemas() -> None:
    ConfigStore.instance().store(name="schema_run", node=RunConfig)


register_schemas()

DEVICES = ("cpu", "cuda", "auto")


def validate_run(cfg: DictConfig) -> None:
    """Range checks on the run settings (types are already enforced by RunConfig)."""
    checks = {
        "total_steps": cfg.total_steps >= 1,
        "learning_starts": cfg.learning_starts >= 0,
        "train_every": cfg.train_every >= 1,
        "gradient_steps": cfg.gradient_steps >= 0,
        "eval_every": cfg.eval_every >= 0,
        "eval_episodes": cfg.eval_episodes >= 1,
        "checkpoint_every": cfg.checkpoint_every >= 0,
        "torch_threads": cfg.torch_threads >= 1,
        "num_envs": cfg.num_envs >= 1,
    }
    for key, ok in checks.items():
        if not ok:
            minimum = 1 if key in ("total_steps", "train_every", "eval_episodes", "torch_threads", "num_envs") else 0
            raise ConfigError(f"{key} must be >= {minimum}, got {cfg[key]}")
    if abs(int(cfg.val_seed) - int(cfg.eval_seed)) < int(cfg.eval_episodes):
        raise ConfigError(f"val_seed={cfg.val_seed} and eval_seed={cfg.eval_seed} overlap over eval_episodes="
                          f"{cfg.eval_episodes} episodes: validation and test episodes must differ")
    if cfg.device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {cfg.device!r}")
    for group in ("env", "agent", "replay"):
        node = cfg.get(group)
        if node is None or "_target_" not in node:
            raise ConfigError(f"config group '{group}' is missing or has no _target_")
        validate_target(node, group)
        validate_numbers(node, group)
    reward = cfg.get("reward")
    if isinstance(reward, DictConfig) and "_target_" in reward:  # a reward component (rlrun.envs.rewards)
        validate_target(reward, "reward")
        validate_numbers(reward, "reward")
    validate_agent_ranges(cfg.agent)
    validate_vector(cfg)


def _nan_keys(value: Any, key: str) -> list[str]:
    if isinstance(value, float) and math.isnan(value):
        return [key]
    if isinstance(value, dict):
        return [k for name, v in value.items() for k in _nan_keys(v, f"{key}.{name}")]
    if isinstance(value, list):
        return [k for i, v in enumerate(value) for k in _nan_keys(v, f"{key}[{i}]")]
    return []


def validate_numbers(node: DictConfig, group: str) -> None:
    """NaN is never a setting: caught here it is a config error, not "training diverged" a minute later."""
    values = OmegaConf.to_container(node, resolve=True)
    for key, value in values.items():
        bad = _nan_keys(value, f"{group}.{key}")
        if bad:
            raise ConfigError(f"{bad[0]}=nan is not a number")


def validate_agent_ranges(agent: DictConfig) -> None:
    """Ranges every agent shares (their constructors only see types): a discount outside (0, 1] makes returns
    grow without bound, a batch of fewer than one sample has no mean."""
    if "gamma" in agent and not 0 < agent.gamma <= 1:
        raise ConfigError(f"agent.gamma must be in (0, 1], got {agent.gamma}")
    if "batch_size" in agent and isinstance(agent.batch_size, int) and agent.batch_size < 1:
        raise ConfigError(f"agent.batch_size must be >= 1, got {agent.batch_size}")




def validate_vector(cfg: DictConfig) -> None:
    """num_envs / vector / env_timeout, and whether the agent can act for several env copies at once."""
    if cfg.vector not in VECTOR_MODES:
        raise ConfigError(f"vector must be one of {', '.join(VECTOR_MODES)}, got {cfg.vector!r}")
    if not cfg.env_timeout > 0:
        raise ConfigError(f"env_timeout must be > 0 seconds, got {cfg.env_timeout}")
    if cfg.vector == "ray":
        if importlib.util.find_spec("ray") is None:
            raise ConfigError("vector=ray needs Ray, which is not installed: pip install 'rlrun[ray]'")
        from rlrun.collect.ray_actor import check_ray_address

        check_ray_address(cfg.ray.address, "ray.address")
    agent = locate(cfg.agent._target_)
    if cfg.num_envs > 1 and not getattr(agent, "batched_acting", False):
        raise ConfigError(f"agent {agent.__name__} acts for one env stream only (per-stream state): it cannot "
                          f"drive num_envs={cfg.num_envs}; use num_envs=1")


# ---- validation of instantiated groups against their constructor --------------------------------------

# Arguments the trainer passes to constructors itself; they must not come from the config.
INJECTED = {
    "env": set(),
    "agent": {"observation_space", "action_space", "device", "seed"},
    "replay": {"observation_space", "action_space", "gamma", "device", "seed", "num_envs"},
}


def _type_ok(value: Any, annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        return isinstance(value, list | tuple | ListConfig)
    if origin is dict or annotation is dict:
        return isinstance(value, dict | DictConfig)
    return True


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


# The glossary's renames (docs/GLOSSARY.md): an old key is refused with its new name.
RENAMED = {
    "agent.eps_min": "agent.eps_end",
    "agent.epsilon_min": "agent.eps_end",
    "agent.epsilon_start": "agent.eps_start",
    "agent.epsilon_decay": "agent.eps_decay, now the factor per decision (1 - the old value)",
    "reward.alpha": "reward.latency_weight",
    "reward.beta": "reward.throughput_weight",
    "reward.gamma": "reward.orphan_weight (the discount is agent.gamma)",
}


def renamed_hint(key: str) -> str:
    """'; it was renamed to X' when `key` is a name the glossary retired, else ''."""
    new = RENAMED.get(key)
    return f"; it was renamed to {new}" if new else ""


def validate_target(node: DictConfig, group: str) -> None:
    target = locate(node._target_)
    params, open_kwargs = parameters(target)
    allowed = sorted(set(params) - INJECTED.get(group, set()))
    values = OmegaConf.to_container(node, resolve=True)
    for key in node:
        if key.startswith("_"):
            continue
        if key in INJECTED.get(group, set()):
            raise ConfigError(f"{group}.{key} is set by rlrun itself and cannot be configured")
        if key not in params:
            if open_kwargs:
                continue
            hint = renamed_hint(f"{group}.{key}") or f"; allowed: {', '.join(allowed)}"
            raise ConfigError(f"{group}.{key} is not a parameter of {node._target_}{hint}")
        value = values[key]
        annotation = params[key].annotation
        if not _type_ok(value, annotation):
            raise ConfigError(f"{group}.{key}={value!r} has the wrong type; expected {_type_name(annotation)}")
