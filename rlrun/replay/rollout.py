"""On-policy rollout storage: `num_envs` env copies x `n_steps` steps in preallocated numpy arrays, GAE(lambda).

The trainer fills one row per env step with what the agent's `policy_step` returned plus the env's rewards and
episode ends, calls `compute_advantages` with the critic's value of the observations that follow the last row,
then hands the buffer to the agent's `update`, which draws shuffled minibatches over all `n_steps * num_envs`
rows, and finally `reset`s it.

Episode boundaries: `episode_ends[t, i]` is 1 when copy i's episode terminated *or* was truncated after step t,
and GAE never looks across it. A truncated episode is still bootstrapped, because the trainer has already added
gamma * V(final_obs) to that step's reward (SB3's convention), so here both kinds of end look alike.

    delta_t = r_t + gamma * (1 - end_t) * V(s_{t+1}) - V(s_t)            V(s_T) = last_values
    A_t     = delta_t + gamma * lambda * (1 - end_t) * A_{t+1}            returns_t = A_t + V(s_t)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class PolicyStep:
    """What the agent decided for N env copies at one step (`PPO.policy_step`)."""

    actions: list[Any]  # env-native action per copy: np.ndarray (Box), int (Discrete), (int, np.ndarray) (hybrid)
    raw: np.ndarray  # [N, raw_dim] float32: what log-probs are evaluated on (unclipped / pre-tanh sample; k first)
    log_probs: np.ndarray  # [N] log pi(raw | obs) under the acting policy
    values: np.ndarray  # [N] V(obs)
    obs: np.ndarray  # [N, obs_dim] the (normalised) observations the policy saw: what the rollout stores


@dataclass
class RolloutBatch:
    """A shuffled minibatch of rollout rows, as torch tensors on the buffer's device."""

    obs: torch.Tensor  # [B, obs_dim]
    raw: torch.Tensor  # [B, raw_dim]
    old_log_probs: torch.Tensor  # [B]
    old_values: torch.Tensor  # [B]
    advantages: torch.Tensor  # [B]
    returns: torch.Tensor  # [B]
    masks: torch.Tensor | None  # [B, mask_dim] bool (True = valid action), None without action masks

    def __len__(self) -> int:
        return self.obs.shape[0]


class RolloutBuffer:
    """Preallocated [n_steps, num_envs, ...] arrays; one `add` per env step for all copies at once."""

    _ARRAYS = ("obs", "raw", "log_probs", "values", "rewards", "episode_ends", "advantages", "returns")

    def __init__(
        self,
        n_steps: int,
        num_envs: int,
        obs_dim: int,
        raw_dim: int,
        mask_dim: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if n_steps < 1 or num_envs < 1:
            raise ValueError(f"a rollout needs n_steps >= 1 and num_envs >= 1, got {n_steps}, {num_envs}")
        self.n_steps, self.num_envs = int(n_steps), int(num_envs)
        self.obs_dim, self.raw_dim, self.mask_dim = int(obs_dim), int(raw_dim), mask_dim
        self.device = torch.device(device)
        shape = (self.n_steps, self.num_envs)
        self.obs = np.zeros((*shape, self.obs_dim), dtype=np.float32)
        self.raw = np.zeros((*shape, self.raw_dim), dtype=np.float32)
        self.log_probs = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.episode_ends = np.zeros(shape, dtype=np.float32)
        self.advantages = np.zeros(shape, dtype=np.float32)
        self.returns = np.zeros(shape, dtype=np.float32)
        self.masks = np.ones((*shape, int(mask_dim)), dtype=bool) if mask_dim is not None else None
        self.pos = 0
        self.computed = False  # advantages match the stored rows

    def __len__(self) -> int:
        return self.pos * self.num_envs

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def reset(self) -> None:
        self.pos = 0
        self.computed = False

    # ---- writing ------------------------------------------------------------------------------------
    def add(
        self,
        step: PolicyStep,
        rewards: np.ndarray,
        episode_ends: np.ndarray,
        masks: np.ndarray | None = None,
    ) -> None:
        """Store one env step of every copy. `rewards` already hold gamma * V(final_obs) for truncated copies."""
        if self.full:
            raise RuntimeError("rollout buffer is full: call update and reset before adding more steps")
        t = self.pos
        self.obs[t] = step.obs
        self.raw[t] = step.raw
        self.log_probs[t] = step.log_probs
        self.values[t] = step.values
        self.rewards[t] = rewards
        self.episode_ends[t] = episode_ends
        if self.masks is not None:
            self.masks[t] = True if masks is None else masks
        self.pos = t + 1
        self.computed = False

    def compute_advantages(self, last_values: np.ndarray, gamma: float, gae_lambda: float) -> None:
        """GAE(lambda) backwards over the full rollout; `last_values` = V(obs after the last row) per copy."""
        if not self.full:
            raise RuntimeError(f"GAE needs a full rollout, have {self.pos} of {self.n_steps} steps")
        not_end = 1.0 - self.episode_ends
        next_values = np.concatenate([self.values[1:], np.asarray(last_values, np.float32).reshape(1, -1)])
        deltas = self.rewards + gamma * not_end * next_values - self.values
        decay = (gamma * gae_lambda) * not_end
        adv = np.zeros(self.num_envs, dtype=np.float32)
        for t in range(self.n_steps - 1, -1, -1):  # a recursion in t; vectorised over the copies
            adv = deltas[t] + decay[t] * adv
            self.advantages[t] = adv
        np.add(self.advantages, self.values, out=self.returns)
        self.computed = True

    # ---- reading ------------------------------------------------------------------------------------
    def explained_variance(self) -> float:
        """1 - Var(returns - V) / Var(returns) over the rollout: how much of the return the critic predicted."""
        var = float(np.var(self.returns))
        return float("nan") if var == 0.0 else 1.0 - float(np.var(self.returns - self.values)) / var

    def minibatches(self, batch_size: int, rng: np.random.Generator) -> Iterator[RolloutBatch]:
        """All n_steps * num_envs rows once, shuffled by `rng`, in batches of `batch_size` (the last may be
        smaller, as SB3). The flat arrays move to the device once per call, each batch is one index_select."""
        if not self.computed:
            raise RuntimeError("call compute_advantages on the full rollout before drawing minibatches")
        n = self.n_steps * self.num_envs

        def flat(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(x.reshape(n, *x.shape[2:]))
            return t if self.device.type == "cpu" else t.to(self.device)

        obs, raw = flat(self.obs), flat(self.raw)
        log_probs, values, advantages, returns = (flat(x) for x in
                                                   (self.log_probs, self.values, self.advantages, self.returns))
        masks = flat(self.masks) if self.masks is not None else None
        order = torch.from_numpy(rng.permutation(n)).to(self.device)
        for start in range(0, n, int(batch_size)):
            idx = order[start : start + int(batch_size)]
            yield RolloutBatch(
                obs=obs[idx], raw=raw[idx], old_log_probs=log_probs[idx], old_values=values[idx],
                advantages=advantages[idx], returns=returns[idx],
                masks=masks[idx] if masks is not None else None,
            )

    # ---- persistence (plain tensors so torch.load(weights_only=True) accepts it) --------------------
    def state_dict(self) -> dict[str, Any]:
        """The filled rows only: a half-full rollout resumes where it stopped."""
        t = self.pos
        state: dict[str, Any] = {name: torch.from_numpy(getattr(self, name)[:t].copy()) for name in self._ARRAYS}
        if self.masks is not None:
            state["masks"] = torch.from_numpy(self.masks[:t].copy())
        state.update(pos=t, computed=self.computed, shape=[self.n_steps, self.num_envs, self.obs_dim,
                                                           self.raw_dim, self.mask_dim])
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shape = [self.n_steps, self.num_envs, self.obs_dim, self.raw_dim, self.mask_dim]
        if list(state["shape"]) != shape:
            raise ValueError(f"rollout checkpoint has shape {list(state['shape'])}, this buffer {shape} "
                             "(n_steps, num_envs, obs_dim, raw_dim, mask_dim)")
        t = int(state["pos"])
        for name in self._ARRAYS:
            getattr(self, name)[:t] = state[name].numpy()
        if self.masks is not None:
            self.masks[:t] = state["masks"].numpy()
        self.pos = t
        self.computed = bool(state["computed"])
