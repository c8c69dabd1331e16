"""Exploration noise for deterministic policies, in the policy's normalised [-1, 1] action units.

Gaussian: independent N(0, sigma^2) per step. Ornstein-Uhlenbeck (seed 004): temporally correlated,
x <- x + theta (mu - x) + sigma N(0, 1), reset at the start of each episode. Both decay sigma by `decay`
per episode down to `sigma_min` (seed 000's decay_exploration_noise).

With several env copies each copy has its own OU state (one row each, reset when that copy's episode ends);
sigma is shared and decays once per finished episode of any copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrun.errors import ConfigError

NOISE_KINDS = ("gaussian", "ou")


class ActionNoise:
    def __init__(
        self,
        kind: str,
        dim: int,
        rng: np.random.Generator,
        sigma: float,
        theta: float = 0.15,
        decay: float = 1.0,
        sigma_min: float = 0.0,
    ) -> None:
        if kind not in NOISE_KINDS:
            raise ConfigError(f"agent.noise must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
        if sigma < 0 or not 0 < decay <= 1:
            raise ConfigError("agent.noise_sigma must be >= 0 and agent.noise_decay in (0, 1]")
        self.kind = kind
        self.dim = dim
        self.rng = rng
        self.sigma = float(sigma)
        self.theta = float(theta)
        self.decay = float(decay)
        self.sigma_min = float(sigma_min)
        self.state = np.zeros((1, dim))  # OU state, one row per env copy

    def sample(self, n: int = 1) -> np.ndarray:
        """Noise for `n` env copies: [n, dim]."""
        if self.kind == "gaussian":
            return self.rng.normal(0.0, self.sigma, size=(n, self.dim))
        if self.state.shape[0] != n:  # first call of a run with n copies
            self.state = np.zeros((n, self.dim))
        self.state = self.state + self.theta * (0.0 - self.state) + self.sigma * self.rng.standard_normal((n, self.dim))
        return self.state

    def end_episode(self, env_index: int = 0) -> None:
        if env_index < self.state.shape[0]:
            self.state[env_index] = 0.0
        self.sigma = max(self.sigma_min, self.sigma * self.decay)

    def state_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "state": self.state.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sigma = float(state["sigma"])
        self.state = np.atleast_2d(np.asarray(state["state"], dtype=np.float64))
