"""Proportional prioritized experience replay (Schaul et al. 2016; seed 000's PER, on a sum tree).

    p_i  = (|delta_i| + eps) ** alpha                 priority of transition i, from its last TD error
    P(i) = p_i / sum_j p_j                             sampling probability
    w_i  = (N * P(i)) ** -beta / max_{j in batch} w_j  importance-sampling weight

The weights are normalised by the largest weight *in the sampled batch* (as the seed does), so every batch's
weights lie in (0, 1] and only scale updates down. beta is annealed linearly from `beta0` to 1 over
`beta_steps` environment steps (the replay config sets it to the run's `total_steps`), driven by the trainer's
`on_step`. New transitions enter with the largest priority seen so far (a running max that never
decreases), so each is replayed at least about once before its own TD error is known. Sampling is
stratified over equal mass segments (see `SumTree.sample`); everything else, n-step windows included, is the
uniform buffer's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.errors import ConfigError, TrainingDivergedError
from rlrun.replay.buffer import ReplayBuffer
from rlrun.replay.sumtree import SumTree


class PrioritizedReplayBuffer(ReplayBuffer):
    """Replay buffer whose `sample` draws slot i with probability P(i) and returns IS weights."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        capacity: int = 1_000_000,
        n_step: int = 1,
        gamma: float = 0.99,
        device: str | torch.device = "cpu",
        seed: int = 0,
        num_envs: int = 1,
        alpha: float = 0.6,
        beta0: float = 0.4,
        beta_steps: int = 100_000,
        eps: float = 1e-6,
    ) -> None:
        if not alpha >= 0:
            raise ConfigError(f"replay.alpha must be >= 0 (0 = uniform sampling), got {alpha}")
        if not 0.0 <= beta0 <= 1.0:
            raise ConfigError(f"replay.beta0 must be in [0, 1], got {beta0}")
        if int(beta_steps) < 1:
            raise ConfigError(f"replay.beta_steps must be >= 1, got {beta_steps}")
        if not eps > 0:
            raise ConfigError(f"replay.eps must be > 0, got {eps}")
        super().__init__(
            observation_space, action_space, capacity=capacity, n_step=n_step, gamma=gamma, device=device,
            seed=seed, num_envs=num_envs,
        )
        self.alpha = float(alpha)
        self.beta0 = float(beta0)
        self.beta_steps = int(beta_steps)
        self.eps = float(eps)
        self.beta = self.beta0
        self.max_priority = 1.0  # in p = (|delta| + eps)**alpha units
        self.tree = SumTree(self.capacity)
        self._bulk_loading = False

    # ---- priorities ---------------------------------------------------------------------------------
    def _on_store(self, index: int) -> None:
        if not self._bulk_loading:
            self.tree.set_one(index, self.max_priority)

    def add_dataset(self, data: dict[str, np.ndarray]) -> None:
        self._bulk_loading = True  # one vectorised rebuild instead of a tree walk per transition
        try:
            super().add_dataset(data)
        finally:
            self._bulk_loading = False
        self.tree.set_all(np.full(self.size, self.max_priority))

    def priorities_to_probabilities(self, indices: np.ndarray) -> np.ndarray:
        """P(i) for the given slots (tests and diagnostics)."""
        return self.tree.get(indices) / self.tree.total()

    def _sample_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        idx, priorities, total = self.tree.sample_with_priorities(batch_size, self.rng)
        probs = priorities / total
        weights = (self.size * probs) ** (-self.beta)
        weights /= weights.max()
        return idx, weights.astype(np.float32)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set p_i = (|delta_i| + eps)**alpha for the sampled slots from the agent's TD errors."""
        td = np.abs(np.asarray(td_errors, dtype=np.float64).reshape(-1))
        if not np.all(np.isfinite(td)):
            raise TrainingDivergedError("non-finite TD error reached prioritized replay (the critic diverged)")
        p = (td + self.eps) ** self.alpha
        self.tree.set(indices, p)
        self.max_priority = max(self.max_priority, float(p.max()))

    def on_step(self, step: int) -> None:
        """Anneal beta linearly from beta0 (step 0) to 1 (step >= beta_steps)."""
        frac = min(1.0, max(0.0, step / self.beta_steps))
        self.beta = self.beta0 + frac * (1.0 - self.beta0)

    # ---- persistence --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["priorities"] = torch.from_numpy(self.tree.leaves[: self.size].copy())
        state["max_priority"] = self.max_priority
        state["beta"] = self.beta
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "priorities" in state:
            self.tree.set_all(state["priorities"].numpy())
            self.max_priority = float(state["max_priority"])
            self.beta = float(state["beta"])
        else:  # a uniform buffer's checkpoint: start every stored transition at equal priority
            self.tree.set_all(np.full(self.size, self.max_priority))
