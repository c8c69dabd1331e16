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

EVAL_SPLITS = ("val", "test")


def eval_split(evaluation: bool | str) -> str | None:
    """None for a training env; "val" or "test" for an evaluation env (True means "test")."""
    if evaluation is True:
        return "test"
    if not evaluation:
        return None
    if evaluation not in EVAL_SPLITS:
        raise ValueError(f"evaluation must be False, True or one of {EVAL_SPLITS}, got {evaluation!r}")
    return str(evaluation)


def split_kwargs(target: Any, evaluation: bool | str) -> dict[str, Any]:
    """The constructor overrides an env class declares for an evaluation split in its `eval_kwargs` hook,
    `{"val": {...}, "test": {...}}` (the inverter: `split=val` / `split=test`, its held-out weeks)."""
    split = eval_split(evaluation)
    return dict(dict(getattr(target, "eval_kwargs", {})).get(split, {})) if split else {}


def make_env(env_cfg: DictConfig, log_dir: Path | None = None, evaluation: bool | str = False) -> gym.Env:
    """`log_dir`: where envs that keep their own logs (the consensus env's shadow-mode and circuit-breaker
    event files) write them, unless the config names a directory itself. `evaluation`: False for a training
    env, "val" for in-training evaluation and best-checkpoint selection, "test" (or True) for the final
    report and `rlrun eval`; the env class's `eval_kwargs` for that split are applied (the inverter's
    validation or test weeks), so neither evaluation sees training data and model selection never sees the
    test split. Envs without days keep them apart by seed (val_seed for validation, eval_seed for test)."""
    target = locate(env_cfg._target_)
    extra: dict[str, Any] = split_kwargs(target, evaluation)
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

    def __init__(self, env_cfg: DictConfig, log_dir: Path | None, evaluation: bool | str) -> None:
        self.env_cfg = OmegaConf.to_container(env_cfg, resolve=True)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.evaluation = evaluation

    def __call__(self, index: int) -> gym.Env:
        log_dir = None if self.log_dir is None else Path(self.log_dir)
        if log_dir is not None and index > 0:
            log_dir = log_dir / f"copy{index}"
        return make_env(OmegaConf.create(self.env_cfg), log_dir, self.evaluation)
