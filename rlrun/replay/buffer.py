"""Uniform replay buffer over preallocated numpy arrays, with n-step returns.

n-step (seed 004's STEPS_FORWARD, done correctly): each stored transition is
    (s_t, a_t, R_t = sum_{i<k} gamma^i r_{t+i}, s_{t+k}, done, discount = gamma^k)
with k = n, or fewer when the episode ends first. `done` is 1 only when the episode *terminated* inside the
window; a time-limit truncation still bootstraps from s_{t+k}. Agents form targets as
    y = R + discount * (1 - done) * Q'(s_{t+k}, .)
so they never need to know n. With several env copies (`num_envs`), each copy has its own open window, so a
window only ever holds consecutive steps of one copy's episode.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.errors import ConfigError
from rlrun.spaces import flat_action_dim, flatten_action


@dataclass
class Batch:
    obs: torch.Tensor  # [B, obs_dim]
    actions: torch.Tensor  # [B, act_dim] flat encoding, see rlrun.spaces
    rewards: torch.Tensor  # [B]   n-step discounted reward sum
    next_obs: torch.Tensor  # [B, obs_dim]  state k steps later
    dones: torch.Tensor  # [B]   1.0 if the episode terminated within the window
    discounts: torch.Tensor  # [B]   gamma^k
    weights: torch.Tensor | None = None  # [B] importance-sampling weights (prioritized replay)
    indices: np.ndarray | None = None  # [B] buffer slots, for priority updates

    def __len__(self) -> int:
        return self.obs.shape[0]

    @classmethod
    def single(cls, obs: Any, flat_action: Any, reward: float, next_obs: Any, terminated: bool, discount: float,
               device: str | torch.device = "cpu") -> Batch:
        """A batch of one transition: what an online agent without replay gets after each env step."""

        def row(x: Any) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(1, -1), device=device)

        return cls(obs=row(obs), actions=row(flat_action), rewards=torch.tensor([float(reward)], device=device),
                   next_obs=row(next_obs), dones=torch.tensor([float(terminated)], device=device),
                   discounts=torch.tensor([float(discount)], device=device))


def _to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(x)
    return t if device.type == "cpu" else t.to(device, non_blocking=True)


class ReplayBuffer:
    """Ring buffer of transitions with uniform sampling. Subclasses change `_sample_indices`."""

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
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"replay.capacity must be >= 1, got {capacity}")
        if n_step < 1:
            raise ConfigError(f"replay.n_step must be >= 1, got {n_step}")
        self.capacity = int(capacity)
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.device = torch.device(device)
        self.action_space = action_space
        obs_dim = int(np.prod(observation_space.shape))
        act_dim = flat_action_dim(action_space)
        self.obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((self.capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((self.capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.discounts = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)
        # one open n-step window per env copy: (obs, flat action, reward) of the steps not yet stored
        self._pending: list[deque[tuple[np.ndarray, np.ndarray, float]]] = [deque() for _ in range(int(num_envs))]

    def __len__(self) -> int:
        return self.size

    # ---- writing ------------------------------------------------------------------------------------
    def add(
        self,
        obs: np.ndarray,
        action: Any,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
        env_index: int = 0,
    ) -> None:
        """Add one step of env copy `env_index`; its n-step window is assembled here."""
        flat_a = flatten_action(self.action_space, action)
        if self.n_step == 1:
            self._store(obs, flat_a, reward, next_obs, float(terminated), self.gamma)
            return
        window = self._pending[env_index]
        window.append((np.asarray(obs, dtype=np.float32).reshape(-1), flat_a, float(reward)))
        if len(window) == self.n_step:
            self._emit_oldest(window, next_obs, terminated)
        if terminated or truncated:
            while window:
                self._emit_oldest(window, next_obs, terminated)

    def drop_open_windows(self) -> None:
        """Forget the steps of unfinished n-step windows (their episodes were abandoned, e.g. on a resume
        that restarts the episodes)."""
        for window in self._pending:
            window.clear()

    @property
    def pending(self) -> int:
        """Steps waiting in open n-step windows (all copies)."""
        return sum(len(w) for w in self._pending)

    def _emit_oldest(self, window: deque, next_obs: np.ndarray, terminated: bool) -> None:
        ret, disc = 0.0, 1.0
        for _, _, r in window:
            ret += disc * r
            disc *= self.gamma
        obs0, act0, _ = window.popleft()
        self._store(obs0, act0, ret, next_obs, float(terminated), disc)

    def _store(self, obs, flat_action, reward, next_obs, done, discount) -> None:
        i = self.pos
        self.obs[i] = np.asarray(obs, dtype=np.float32).reshape(-1)
        self.next_obs[i] = np.asarray(next_obs, dtype=np.float32).reshape(-1)
        self.actions[i] = flat_action
        self.rewards[i] = reward
        self.dones[i] = done
        self.discounts[i] = discount
        self._on_store(i)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _on_store(self, index: int) -> None:
        """Hook for subclasses (prioritized replay sets the new slot's priority)."""

    def add_dataset(self, data: dict[str, np.ndarray]) -> None:
        """Bulk-load transitions (offline RL): keys obs, actions, rewards, next_obs, terminated; with
        `n_step` > 1 also truncated and episode, and the rows in time order (what `rlrun collect` writes), so
        the n-step returns are assembled from consecutive rows of the same episode."""
        n = len(data["rewards"])
        if n > self.capacity:
            raise ConfigError(f"dataset has {n} transitions but replay.capacity is {self.capacity}")
        for key in ("obs", "actions", "rewards", "next_obs", "terminated"):
            if key not in data:
                raise ConfigError(f"dataset lacks the key {key!r}")
        rewards, next_obs, dones, discounts = self._n_step_rows(data, n)
        self.obs[:n] = data["obs"].reshape(n, -1)
        self.next_obs[:n] = next_obs
        self.actions[:n] = data["actions"].reshape(n, -1)
        self.rewards[:n] = rewards
        self.dones[:n] = dones
        self.discounts[:n] = discounts
        for i in range(n):
            self._on_store(i)
        self.pos = n % self.capacity
        self.size = n

    def _n_step_rows(self, data: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, ...]:
        """(R, s_{t+k}, done, gamma^k) for every row, k = n_step or fewer at the end of an episode."""
        rewards = data["rewards"].astype(np.float64).reshape(n)
        terminated = data["terminated"].astype(bool).reshape(n)
        next_obs = data["next_obs"].reshape(n, -1)
        if self.n_step == 1:
            return rewards, next_obs, terminated.astype(np.float32), np.full(n, self.gamma)
        for key in ("truncated", "episode"):
            if key not in data:
                raise ConfigError(f"replay.n_step={self.n_step} needs the dataset's {key!r} column (time-ordered "
                                  f"episodes, as `rlrun collect` writes them)")
        ends = terminated | data["truncated"].astype(bool).reshape(n)
        episode = data["episode"].reshape(n)
        ret, disc = rewards.copy(), np.full(n, self.gamma)
        last = np.arange(n)  # the row whose next_obs / terminated the window ends on
        open_ = ~ends
        for _ in range(1, self.n_step):
            nxt = np.minimum(last + 1, n - 1)
            open_ &= (last + 1 < n) & (episode[nxt] == episode[last])
            ret = np.where(open_, ret + disc * rewards[nxt], ret)
            disc = np.where(open_, disc * self.gamma, disc)
            last = np.where(open_, nxt, last)
            open_ &= ~ends[last]
        return ret, next_obs[last], terminated[last].astype(np.float32), disc

    # ---- reading ------------------------------------------------------------------------------------
    def _sample_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self.rng.integers(0, self.size, size=batch_size), None

    def sample(self, batch_size: int) -> Batch:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx, weights = self._sample_indices(batch_size)
        d = self.device
        return Batch(
            obs=_to_tensor(self.obs[idx], d),
            actions=_to_tensor(self.actions[idx], d),
            rewards=_to_tensor(self.rewards[idx], d),
            next_obs=_to_tensor(self.next_obs[idx], d),
            dones=_to_tensor(self.dones[idx], d),
            discounts=_to_tensor(self.discounts[idx], d),
            weights=None if weights is None else _to_tensor(weights.astype(np.float32), d),
            indices=idx,
        )

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Uniform replay ignores priorities."""

    def on_step(self, step: int) -> None:
        """Schedules (prioritized replay anneals beta here)."""

    # ---- persistence (plain tensors/dicts so torch.load(weights_only=True) accepts it) --------------
    _ARRAYS = ("obs", "next_obs", "actions", "rewards", "dones", "discounts")

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        state: dict[str, Any] = {name: torch.from_numpy(getattr(self, name)[:n].copy()) for name in self._ARRAYS}
        state.update(
            pos=self.pos,
            size=self.size,
            rng=self.rng.bit_generator.state,
            pending=[[(torch.from_numpy(o), torch.from_numpy(a), r) for o, a, r in w] for w in self._pending],
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["size"])
        if n > self.capacity:
            raise ConfigError(f"checkpoint holds {n} transitions but replay.capacity is {self.capacity}")
        for name in self._ARRAYS:
            getattr(self, name)[:n] = state[name].numpy()
        self.pos = int(state["pos"])
        self.size = n
        self.rng.bit_generator.state = state["rng"]
        if len(state["pending"]) != len(self._pending):
            raise ConfigError(f"checkpoint holds n-step windows of {len(state['pending'])} env copies, "
                              f"this run has num_envs={len(self._pending)}")
        self._pending = [deque((o.numpy(), a.numpy(), float(r)) for o, a, r in w) for w in state["pending"]]
