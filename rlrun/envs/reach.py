"""Seed 004's goal-reaching task as a Gymnasium environment.

The state is a point in [-1, 1]^dim; an action in [-1, 1]^dim is a displacement scaled by `step_scale`;
the goal is the origin. Reward is -||s - goal||; the episode terminates once the distance falls below
`threshold` and is truncated after `max_steps`. The seed moves the state by the full action (step_scale=1),
which makes the task a one-step jump; a smaller scale makes reaching the goal a multi-step control problem.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlrun.errors import ConfigError


class ReachEnv(gym.Env):
    metadata = {"render_modes": []}
    tensorboard_layout = {
        "reach": {"distance": ["Multiline", ["env/distance", "env/final_distance"]]},
    }

    def __init__(
        self,
        dim: int = 256,
        max_steps: int = 100,
        threshold: float = 0.1,
        step_scale: float = 1.0,
        reward: Any = None,
    ) -> None:
        del reward  # the reach task has no configurable reward terms
        if dim < 1:
            raise ConfigError(f"env.dim must be >= 1, got {dim}")
        if max_steps < 1:
            raise ConfigError(f"env.max_steps must be >= 1, got {max_steps}")
        if not (threshold > 0 and step_scale > 0):
            raise ConfigError("env.threshold and env.step_scale must be > 0")
        self.dim = int(dim)
        self.max_steps = int(max_steps)
        self.threshold = float(threshold)
        self.step_scale = float(step_scale)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(self.dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.dim,), dtype=np.float32)
        self.goal = np.zeros(self.dim, dtype=np.float32)
        self._state = np.zeros(self.dim, dtype=np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.np_random.uniform(-1.0, 1.0, size=self.dim).astype(np.float32)
        self._t = 0
        return self._state.copy(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float32).reshape(self.dim), -1.0, 1.0)
        if not np.all(np.isfinite(a)):
            raise ValueError("ReachEnv.step got a non-finite action")
        self._state = np.clip(self._state + self.step_scale * a, -1.0, 1.0).astype(np.float32)
        self._t += 1
        distance = float(np.linalg.norm(self._state - self.goal))
        terminated = distance < self.threshold
        truncated = (not terminated) and self._t >= self.max_steps
        info = {"distance": distance}
        if terminated or truncated:
            info["final_distance"] = distance
        return self._state.copy(), -distance, terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        return {"state": self._state.tolist(), "t": self._t, "rng": self.np_random.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self._state = np.asarray(state["state"], dtype=np.float32)
        self._t = int(state["t"])
        self.np_random.bit_generator.state = state["rng"]
