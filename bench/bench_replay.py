"""Prioritized replay: one `sample(256)` + `update_priorities` on a full buffer of 1,000,000 transitions.

rlrun's sum-tree buffer next to seed 000's own `PrioritizedReplayBuffer` (np.random.choice(p=...) over the
whole priority array, kept verbatim below) and, when it installs and loads, TorchRL's C++ PrioritizedSampler
behind its TensorDict replay buffer. All in this process, single-threaded, same batch size and data shapes.

TorchRL is optional and skipped with the reason printed. As of torchrl 0.14.1 with torch 2.13.0 (CPU), it
installs under constraints.txt without pulling another torch, but its C++ extension `torchrl._torchrl` fails
to load (undefined symbol: built against another torch ABI), so there is no PrioritizedSampler to time.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from gymnasium import spaces

from rlrun.replay.prioritized import PrioritizedReplayBuffer

CAPACITY = 1_000_000
BATCH = 256
OBS_DIM, ACT_DIM = 8, 2


class SeedPrioritizedReplayBuffer:
    """Seed 000's PER, verbatim (Python lists, np.random.choice over all priorities, a Python update loop)."""

    def __init__(self, capacity=100_000, alpha=0.6, beta0=0.4, beta_inc=1e-4, eps=1e-6):
        self.capacity = capacity
        self.alpha = alpha
        self.beta = beta0
        self.beta_inc = beta_inc
        self.eps = eps
        self.ptr = 0
        self.size = 0
        self.states = []
        self.actions = []
        self.rewards = []
        self.next_states = []
        self.dones = []
        self.priorities = np.zeros((capacity,), dtype=np.float32)

    def sample(self, batch_size):
        assert self.size > 0, "Buffer empty"
        probs = self.priorities[: self.size]
        probs = probs / probs.sum()
        idx = np.random.choice(self.size, size=batch_size, p=probs, replace=False)
        self.beta = min(1.0, self.beta + self.beta_inc)
        weights = (self.size * probs[idx]) ** (-self.beta)
        weights = weights / weights.max()
        batch = dict(
            states=[self.states[i] for i in idx],
            actions=[self.actions[i] for i in idx],
            rewards=[self.rewards[i] for i in idx],
            next_states=[self.next_states[i] for i in idx],
            dones=[self.dones[i] for i in idx],
            idx=idx,
            weights=weights.astype(np.float32),
        )
        return batch

    def update_priorities(self, idx, td_errors):
        for i, e in zip(idx, td_errors, strict=False):
            self.priorities[i] = (abs(e) + self.eps) ** self.alpha

    def sample_indices(self, batch_size):
        """The seed's `sample` up to the IS weights, without gathering the transitions (sampler-only row)."""
        probs = self.priorities[: self.size]
        probs = probs / probs.sum()
        idx = np.random.choice(self.size, size=batch_size, p=probs, replace=False)
        self.beta = min(1.0, self.beta + self.beta_inc)
        weights = (self.size * probs[idx]) ** (-self.beta)
        weights = weights / weights.max()
        return idx, weights.astype(np.float32)


def _time_per_call(fn, calls: int) -> float:
    """Median over individually timed calls: robust to the scheduler pausing this process on a busy host."""
    fn()  # warm-up
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _rlrun(rng: np.random.Generator):
    obs_space = spaces.Box(-1.0, 1.0, (OBS_DIM,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
    buf = PrioritizedReplayBuffer(obs_space, act_space, capacity=CAPACITY, seed=0)
    obs = rng.standard_normal((CAPACITY, OBS_DIM), dtype=np.float32)
    buf.add_dataset({"obs": obs, "next_obs": obs, "actions": rng.standard_normal((CAPACITY, ACT_DIM)),
                     "rewards": rng.standard_normal(CAPACITY), "terminated": np.zeros(CAPACITY)})
    buf.update_priorities(np.arange(CAPACITY), rng.exponential(size=CAPACITY))
    td = rng.exponential(size=BATCH)

    def call():
        batch = buf.sample(BATCH)
        buf.update_priorities(batch.indices, td)

    def sampler_only():
        idx, _ = buf._sample_indices(BATCH)
        buf.update_priorities(idx, td)

    return call, sampler_only


def _seed(rng: np.random.Generator):
    seed = SeedPrioritizedReplayBuffer(capacity=CAPACITY)
    obs = rng.standard_normal((CAPACITY, OBS_DIM), dtype=np.float32)
    seed.states.extend(obs)  # one object per transition, as the seed's add() stores them
    seed.next_states.extend(obs.copy())
    seed.actions.extend(rng.standard_normal((CAPACITY, ACT_DIM), dtype=np.float32))
    seed.rewards.extend(rng.standard_normal(CAPACITY).tolist())
    seed.dones.extend([0.0] * CAPACITY)
    seed.size = CAPACITY
    seed.priorities[:] = (rng.exponential(size=CAPACITY) + seed.eps) ** seed.alpha
    td = rng.exponential(size=BATCH)

    def call():
        batch = seed.sample(BATCH)
        seed.update_priorities(batch["idx"], td)

    def sampler_only():
        idx, _ = seed.sample_indices(BATCH)
        seed.update_priorities(idx, td)

    return call, sampler_only


def _torchrl(rng: np.random.Generator):
    """TorchRL's PrioritizedReplayBuffer (C++ sum tree), or the reason it cannot run here."""
    try:
        import torchrl
        from tensordict import TensorDict
        from torchrl.data import LazyTensorStorage
        from torchrl.data import PrioritizedReplayBuffer as TorchRLPER
    except ImportError as e:
        return None, (f"torchrl not installed ({e.name}); `.venv/bin/pip install -c constraints.txt torchrl` "
                      "adds it when a build for this torch exists")
    try:
        buf = TorchRLPER(alpha=0.6, beta=0.4, storage=LazyTensorStorage(CAPACITY), batch_size=BATCH)
    except RuntimeError as e:
        return None, (f"torchrl {torchrl.__version__} installed but its C++ extension does not load "
                      f"with torch {torch.__version__} ({str(e).splitlines()[0]})")
    data = TensorDict({
        "obs": torch.randn(CAPACITY, OBS_DIM), "next_obs": torch.randn(CAPACITY, OBS_DIM),
        "action": torch.randn(CAPACITY, ACT_DIM), "reward": torch.randn(CAPACITY),
        "done": torch.zeros(CAPACITY),
    }, batch_size=[CAPACITY])
    buf.extend(data)
    buf.update_priority(torch.arange(CAPACITY), torch.as_tensor(rng.exponential(size=CAPACITY)))
    td = torch.as_tensor(rng.exponential(size=BATCH))

    def call():
        sample = buf.sample()
        buf.update_priority(sample["index"], td)

    return call, ""


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    ours_full, ours_sampler = (_time_per_call(f, calls=300) for f in _rlrun(rng))
    seed_full, seed_sampler = (_time_per_call(f, calls=15) for f in _seed(rng))
    torchrl_call, why = _torchrl(rng)
    print(f"priority update + sample({BATCH}) on a full buffer of {CAPACITY:,} transitions, one thread, "
          "median time per call")
    print(f"{'implementation':<44}{'sampler only':>14}{'ratio':>8}{'with batch':>13}{'ratio':>8}")
    print(f"{'rlrun PrioritizedReplayBuffer (sum tree)':<44}{ours_sampler * 1e6:>12.0f}us{'1':>8}"
          f"{ours_full * 1e6:>11.0f}us{'1':>8}")
    print(f"{'seed 000 PER (np.random.choice(p=...))':<44}{seed_sampler * 1e6:>12.0f}us"
          f"{seed_sampler / ours_sampler:>7.0f}x{seed_full * 1e6:>11.0f}us{seed_full / ours_full:>7.0f}x")
    if torchrl_call is not None:
        torchrl_t = _time_per_call(torchrl_call, calls=300)
        print(f"{'TorchRL PrioritizedReplayBuffer (C++ tree)':<44}{'':>22}{torchrl_t * 1e6:>11.0f}us"
              f"{torchrl_t / ours_full:>7.2f}x")
    else:
        print(f"TorchRL: skipped: {why}")
    print("sampler only: indices + IS weights + priority update; with batch: also gathers the transitions.")
    print("ratio = other's time / rlrun's. Targets: >= 100x vs the seed; TorchRL within 2x (ratio >= 0.5).")


if __name__ == "__main__":
    main()
