"""Baseline agents that do not learn: the reference points every trained policy is compared with.

- `agent=random`: uniformly random actions from the action space (drawn from the agent's own seeded RNG, so
  a run is reproducible and resumable).
- `agent=static`: one fixed action, every step. The action comes from config (`action`, in rlrun's flat
  encoding: a Box vector, [k] for Discrete, [k, x_1, ..., x_P] for Tuple(Discrete, Box)) or, when `action` is
  null, from the environment's default configuration: an env that has a natural default (the blockchain's
  Bitcoin-like block size and interval, say) exposes `default_action()`, and the trainer/evaluator passes it
  in with `use_env_default`. Without either, the static agent uses the centre of the action space (k = 0
  for discrete parts) and says so in `source`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.errors import ConfigError
from rlrun.spaces import describe, flat_action_dim, flatten_action, is_hybrid, sample_action, unflatten_action


class _NoLearning(Agent):
    """Shared plumbing: no replay, nothing to learn, nothing to persist but the RNG."""

    uses_replay = False
    batched_acting = True  # stateless: act_batch acts row by row
    supported_action_spaces = ("box", "discrete", "hybrid")

    def update(self, batch: Any) -> dict[str, Any]:
        return {}


class RandomAgent(_NoLearning):
    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 1,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma,
                         batch_size=batch_size)
        box = action_space if isinstance(action_space, spaces.Box) else (
            action_space.spaces[1] if is_hybrid(action_space) else None)
        if box is not None and not (np.all(np.isfinite(box.low)) and np.all(np.isfinite(box.high))):
            raise ConfigError(f"agent=random needs bounded Box actions, got {describe(box)}")

    def act(self, obs: np.ndarray, explore: bool) -> Any:
        return sample_action(self.action_space, self.rng)


def centre_action(space: spaces.Space) -> np.ndarray:
    """Flat encoding of the middle of a space: Box midpoint (0 where unbounded), first discrete choice."""
    if isinstance(space, spaces.Box):
        low, high = space.low.astype(np.float64), space.high.astype(np.float64)
        mid = np.where(np.isfinite(low) & np.isfinite(high), (low + high) / 2.0,
                       np.where(np.isfinite(low), low, np.where(np.isfinite(high), high, 0.0)))
        return mid.reshape(-1).astype(np.float32)
    if isinstance(space, spaces.Discrete):
        return np.array([space.start], dtype=np.float32)
    if is_hybrid(space):
        return np.concatenate([centre_action(space.spaces[0]), centre_action(space.spaces[1])])
    raise TypeError(f"unsupported action space {space}")


class StaticAgent(_NoLearning):
    """Always the same action: the 'default configuration' a trained policy must beat."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        gamma: float = 0.99,
        batch_size: int = 1,
        action: list[float] | float | None = None,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma,
                         batch_size=batch_size)
        if action is None:
            self._set(centre_action(action_space), "centre")
        else:
            flat = np.atleast_1d(np.asarray(action, dtype=np.float64)).reshape(-1)
            self._set(flat, "config", key="agent.action")

    def _set(self, flat: np.ndarray, source: str, key: str = "default action") -> None:
        dim = flat_action_dim(self.action_space)
        if flat.shape != (dim,) or not np.all(np.isfinite(flat)):
            raise ConfigError(
                f"{key} must be {dim} finite numbers for {describe(self.action_space)} "
                f"(flat encoding: Box vector, [k] for Discrete, [k, x...] for hybrid), got {flat.tolist()}"
            )
        action = unflatten_action(self.action_space, flat.astype(np.float32))
        if not self.action_space.contains(action):
            raise ConfigError(f"{key}={flat.tolist()} lies outside the action space "
                              f"{describe(self.action_space)}")
        self.action = action
        self.source = source

    def use_env_default(self, default_action: Any) -> None:
        """Adopt the environment's default configuration (only when config left `action` null)."""
        if self.source == "config":
            return
        self._set(flatten_action(self.action_space, default_action).astype(np.float64), "env_default",
                  key="env.default_action()")

    def act(self, obs: np.ndarray, explore: bool) -> Any:
        a = self.action
        if isinstance(a, tuple):
            return a[0], a[1].copy()
        return a.copy() if isinstance(a, np.ndarray) else a

    def extra_state(self) -> dict[str, Any]:
        return {"action": flatten_action(self.action_space, self.action).tolist(), "source": self.source}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "action" in state:
            self._set(np.asarray(state["action"], dtype=np.float64), str(state["source"]))


def static_baseline(env: gym.Env, action: list[float] | None = None, seed: int = 0) -> StaticAgent:
    """The static agent for `env`: the given flat action, else the env's `default_action()`, else the centre.

    `rlrun.evaluate` uses this to report a trained policy next to the default configuration.
    """
    agent = StaticAgent(env.observation_space, env.action_space, seed=seed, action=action)
    default = getattr(env.unwrapped, "default_action", None)
    if action is None and callable(default):
        agent.use_env_default(default())
    return agent
