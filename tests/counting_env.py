"""A tiny env whose observations say where they come from, for checking the trainer's bookkeeping over copies.

obs = [seed of the copy's first reset, episode number within the copy, t]; reward = t + 1 after step t;
episodes end after `max_steps` steps (truncation) or when the action is > `terminate_above` (termination).
`fail_seed`/`fail_at` make the copy first reset with seed `fail_seed` fail at its `fail_at`-th step:
`how` = raise (an exception), kill (SIGKILL its own process) or hang (sleep for an hour).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CountingEnv(gym.Env):
    def __init__(self, max_steps: int = 5, terminate_above: float = 2.0, fail_seed: int = -1, fail_at: int = 0,
                 how: str = "raise", **_: Any) -> None:
        self.observation_space = spaces.Box(-1e6, 1e6, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.max_steps, self.terminate_above = max_steps, terminate_above
        self.fail_seed, self.fail_at, self.how = fail_seed, fail_at, how
        self.first_seed, self.episode, self.t, self.steps = None, -1, 0, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.first_seed, self.episode, self.t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.first_seed is None:
            self.first_seed = -1 if seed is None else seed
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        if self.first_seed == self.fail_seed and self.steps == self.fail_at:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.how == "hang":
                time.sleep(3600)
            raise RuntimeError(f"boom at step {self.steps}")
        self.t += 1
        terminated = float(np.asarray(action).reshape(-1)[0]) > self.terminate_above
        return self._obs(), float(self.t), terminated, self.t >= self.max_steps, {"t": self.t}

    def get_state(self) -> dict[str, Any]:
        return {"first_seed": self.first_seed, "episode": self.episode, "t": self.t, "steps": self.steps}

    def set_state(self, state: dict[str, Any]) -> None:
        self.first_seed, self.episode = state["first_seed"], state["episode"]
        self.t, self.steps = state["t"], state["steps"]


class StatelessCountingEnv(CountingEnv):
    """The same env without get_state/set_state: a resumed run restarts its episodes."""

    get_state = None  # type: ignore[assignment]
    set_state = None  # type: ignore[assignment]
