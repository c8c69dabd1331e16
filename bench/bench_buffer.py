"""Uniform replay: time to sample a batch of 256 from a full 1,000,000-transition buffer (Pendulum shapes),
next to a Python list of transition tuples sampled with random.sample (the seed's deque approach)."""

from __future__ import annotations

import random
import time

import numpy as np
from gymnasium import spaces

from bench.common import print_table
from rlrun.replay.buffer import ReplayBuffer


def main() -> None:
    obs_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
    act_space = spaces.Box(-2, 2, shape=(1,), dtype=np.float32)
    n = 1_000_000
    buf = ReplayBuffer(obs_space, act_space, capacity=n, seed=0)
    rng = np.random.default_rng(0)
    buf.obs[:] = rng.standard_normal((n, 3))
    buf.next_obs[:] = rng.standard_normal((n, 3))
    buf.size = n
    reps = 2000
    for _ in range(50):
        buf.sample(256)
    t0 = time.perf_counter()
    for _ in range(reps):
        buf.sample(256)
    ours = (time.perf_counter() - t0) / reps

    transitions = [(buf.obs[i], buf.actions[i], 0.0, buf.next_obs[i], False) for i in range(n)]
    t0 = time.perf_counter()
    for _ in range(200):
        s = random.sample(transitions, 256)
        np.stack([t[0] for t in s]), np.stack([t[3] for t in s])
    ref = (time.perf_counter() - t0) / 200
    print_table([
        ("batch 256 from 1M", "us per sample", "", ""),
        ("rlrun ReplayBuffer (preallocated arrays)", f"{ours * 1e6:.1f}", "", ""),
        ("list of tuples + random.sample + np.stack", f"{ref * 1e6:.1f}", "", ""),
        ("ratio", f"{ref / ours:.1f}x", "", ""),
    ])
