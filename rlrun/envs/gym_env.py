"""`env=gym`: any installed Gymnasium environment by id, so rlrun agents can be checked on standard tasks."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from rlrun.errors import ConfigError


def make_gym(id: str, kwargs: dict[str, Any] | None = None, reward: Any = None, **extra: Any) -> gym.Env:
    del reward
    try:
        return gym.make(id, **dict(kwargs or {}), **extra)
    except gym.error.Error as e:
        raise ConfigError(f"env.id={id!r} is not a usable Gymnasium environment: {e}") from None
