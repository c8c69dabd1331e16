"""Building env copies from the `env` config node: in this process or inside a worker.

`EnvFactory` is picklable (plain config container + paths) so worker processes and Ray actors build their own
copy; it imports only the env layer, never torch, so a worker starts in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
from omegaconf import DictConfig, OmegaConf

import rlrun.envs  # noqa: F401  (registers rlrun/<Name>-v0 ids)
from rlrun.errors import ConfigError
from rlrun.instantiate import instantiate_node, locate, parameters


def make_env(env_cfg: DictConfig, log_dir: Path | None = None, evaluation: bool = False) -> gym.Env:
    """`log_dir`: where envs that keep their own logs (the consensus env's shadow-mode and circuit-breaker
    event files) write them, unless the config names a directory itself. `evaluation`: apply the env class's
    `eval_kwargs` (e.g. the inverter's held-out days, `split=test`) so evaluation never sees training data."""
    target = locate(env_cfg._target_)
    extra: dict[str, Any] = dict(getattr(target, "eval_kwargs", {})) if evaluation else {}
    if log_dir is not None and "log_dir" in parameters(target)[0] and not env_cfg.get("log_dir"):
        log_dir.mkdir(parents=True, exist_ok=True)
        extra["log_dir"] = str(log_dir)
    env = instantiate_node(env_cfg, "env", **extra)
    if not isinstance(env, gym.Env):
        raise ConfigError(f"env._target_ {env_cfg._target_} did not return a gymnasium.Env")
    return env


class EnvFactory:
    """Recipe for env copy i. Copy 0 logs into `log_dir` itself (a single-env run looks as it always did);
    copy i > 0 into `log_dir/copy<i>`, so no two copies ever append to the same event file."""

    def __init__(self, env_cfg: DictConfig, log_dir: Path | None, evaluation: bool) -> None:
        self.env_cfg = OmegaConf.to_container(env_cfg, resolve=True)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.evaluation = evaluation

    def __call__(self, index: int) -> gym.Env:
        log_dir = None if self.log_dir is None else Path(self.log_dir)
        if log_dir is not None and index > 0:
            log_dir = log_dir / f"copy{index}"
        return make_env(OmegaConf.create(self.env_cfg), log_dir, self.evaluation)
