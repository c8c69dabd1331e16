"""rlrun/HybridTargets-v0: a small hybrid-action task with a closed-form optimum, for P-DQN-style agents.

Each step shows a context s in [-1, 1]^2 (plus the elapsed fraction of the episode). The agent picks one of K
targets (discrete k) and aims at it with continuous parameters x_k in [-1, 1]^P:

    value_k(s)  = 0.5 + w_k . s,            w_k = (cos phi_k, sin phi_k), phi_k = 2 pi k / K
    target_k(s) = 0.4 (s_0 cos psi_kj + s_1 sin psi_kj) + c_k      (per parameter dimension j)
    reward      = value_k(s) - aim_penalty * mean_j (x_kj - target_kj(s))^2

Contexts are drawn independently of the actions, so the optimal policy is greedy per step: choose
k* = argmax_k value_k(s) and aim exactly (targets lie inside [-1, 1]), for an optimal reward of
max_k value_k(s) = 0.5 + max_k w_k . s, reported as `info["optimal_reward"]`. An episode's optimal return is
the sum of those, so an agent's fraction of the optimum is exact per episode. Which k is best depends on the
direction of s and where to aim depends on both s and k: the agent must learn the discrete and the continuous
part together. (For K = 3, the expected optimal reward per step is about 1.13; a random choice of k with
perfect aim gets 0.5, so 90% of the optimum needs the right k nearly always.)

Layouts of the parameter Box (the two P-DQN cases):
- `per_action` (Platform-style): Box(K * P), slice k (x[k P:(k+1) P]) is target k's aim, the rest is ignored.
- `shared` (seed 000's blockchain case): Box(P), one parameter vector used with whichever k is chosen.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlrun.errors import ConfigError

LAYOUTS = ("per_action", "shared")


class HybridTargetsEnv(gym.Env):
    metadata = {"render_modes": []}
    tensorboard_layout = {
        "hybrid_targets": {
            "reward vs optimum": ["Multiline", ["env/reward", "env/optimal_reward"]],
            "choice and aim": ["Multiline", ["env/best_choice", "env/aim_error"]],
        },
    }

    def __init__(
        self,
        num_targets: int = 3,
        param_dim: int = 1,
        layout: str = "per_action",
        episode_length: int = 5,
        aim_penalty: float = 2.0,
        reward: Any = None,
    ) -> None:
        del reward  # no configurable reward terms beyond aim_penalty
        if num_targets < 2:
            raise ConfigError(f"env.num_targets must be >= 2, got {num_targets}")
        if param_dim < 1:
            raise ConfigError(f"env.param_dim must be >= 1, got {param_dim}")
        if layout not in LAYOUTS:
            raise ConfigError(f"env.layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if episode_length < 1:
            raise ConfigError(f"env.episode_length must be >= 1, got {episode_length}")
        if not aim_penalty >= 0:
            raise ConfigError(f"env.aim_penalty must be >= 0, got {aim_penalty}")
        self.K, self.P = int(num_targets), int(param_dim)
        self.layout = layout
        self.episode_length = int(episode_length)
        self.aim_penalty = float(aim_penalty)
        phi = 2.0 * math.pi * np.arange(self.K) / self.K
        self.w = np.stack([np.cos(phi), np.sin(phi)], axis=1)  # [K, 2]
        psi = phi[:, None] + np.pi / 4 + np.pi / 2 * np.arange(self.P)[None, :]  # [K, P]
        self.aim_w = 0.4 * np.stack([np.cos(psi), np.sin(psi)], axis=-1)  # [K, P, 2]
        self.aim_c = np.linspace(-0.4, 0.4, self.K)  # [K]
        box_dim = self.K * self.P if layout == "per_action" else self.P
        self.action_space = spaces.Tuple(
            (spaces.Discrete(self.K), spaces.Box(-1.0, 1.0, shape=(box_dim,), dtype=np.float32))
        )
        self.observation_space = spaces.Box(
            np.array([-1.0, -1.0, 0.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32), dtype=np.float32
        )
        self._s = np.zeros(2)
        self._t = 0

    # ---- the closed-form parts ----------------------------------------------------------------------
    def values(self, s: np.ndarray) -> np.ndarray:
        return 0.5 + self.w @ s

    def targets(self, s: np.ndarray) -> np.ndarray:
        """[K, P] aim point of each target."""
        return self.aim_w @ s + self.aim_c[:, None]

    def optimal_reward(self, s: np.ndarray) -> float:
        return float(self.values(s).max())

    def optimal_action(self, s: np.ndarray) -> tuple[int, np.ndarray]:
        k = int(np.argmax(self.values(s)))
        t = self.targets(s)
        x = t.reshape(-1) if self.layout == "per_action" else t[k]
        return k, x.astype(np.float32)

    # ---- gymnasium API ------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        return np.array([self._s[0], self._s[1], self._t / self.episode_length], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._s = self.np_random.uniform(-1.0, 1.0, size=2)
        return self._obs(), {}

    def step(self, action):
        k, x = action
        k = int(k)
        if not 0 <= k < self.K:
            raise ValueError(f"HybridTargetsEnv: target index {k} outside 0..{self.K - 1}")
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape[0] != self.action_space.spaces[1].shape[0] or not np.all(np.isfinite(x)):
            raise ValueError(f"HybridTargetsEnv: parameters must be {self.action_space.spaces[1]} and finite")
        x = np.clip(x, -1.0, 1.0)
        aim = x[k * self.P : (k + 1) * self.P] if self.layout == "per_action" else x
        s = self._s
        values = self.values(s)
        aim_error = float(np.mean((aim - self.targets(s)[k]) ** 2))
        reward = float(values[k] - self.aim_penalty * aim_error)
        info = {
            "optimal_reward": float(values.max()),
            "best_choice": float(k == int(np.argmax(values))),
            "aim_error": aim_error,
        }
        self._t += 1
        terminated = self._t >= self.episode_length
        self._s = self.np_random.uniform(-1.0, 1.0, size=2)
        return self._obs(), reward, terminated, False, info

    def get_state(self) -> dict[str, Any]:
        return {"s": self._s.tolist(), "t": self._t, "rng": self.np_random.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self._s = np.asarray(state["s"], dtype=np.float64)
        self._t = int(state["t"])
        self.np_random.bit_generator.state = state["rng"]
