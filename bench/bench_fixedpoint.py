"""Fixed-point policy inference (int64, scale 10^8) of the seed's 25-256-256-5 actor: observations per second
next to float32 torch inference of the same network, both single-threaded in this process. Batched (many
observations per call, what `rlrun export --verify` does) and one observation per call (what the chain does:
one inference every observation_interval blocks)."""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import print_table, set_threads
from rlrun.agents.nets import mlp
from rlrun.deploy.export import sequential_layers
from rlrun.deploy.fixedpoint import FixedPointMLP, to_fixed


def rate(fn, n_obs: int, min_s: float = 1.0) -> float:
    """Observations per second of fn() (which processes n_obs observations), repeated for >= min_s."""
    fn()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s:
            return calls * n_obs / elapsed


def main() -> None:
    set_threads(1)
    torch.manual_seed(0)
    net = mlp(25, [256, 256], 5, output_activation="tanh").eval()
    w, b, a = sequential_layers(net)
    engine = FixedPointMLP.from_float(w, b, a)
    obs = np.random.default_rng(0).uniform(-3, 3, (1024, 25))
    obs_fixed = to_fixed(obs)
    obs_t = torch.as_tensor(obs, dtype=torch.float32)
    one_fixed, one_t = obs_fixed[0], obs_t[:1]

    with torch.no_grad():
        float_batch = rate(lambda: net(obs_t), len(obs))
        float_one = rate(lambda: net(one_t), 1)
    fixed_batch = rate(lambda: engine.forward(obs_fixed), len(obs))
    fixed_one = rate(lambda: engine.forward(one_fixed), 1)
    with torch.no_grad():
        diff = np.abs(engine.act(obs) - net(obs_t).double().numpy()).max()
    print_table([
        ("25-256-256-5 actor (73,733 params)", "batch 1024 obs/s", "1 obs per call obs/s", ""),
        ("rlrun fixed point (int64 numpy)", f"{fixed_batch:,.0f}", f"{fixed_one:,.0f}", ""),
        ("torch float32 (reference)", f"{float_batch:,.0f}", f"{float_one:,.0f}", ""),
        ("ratio fixed / float", f"{fixed_batch / float_batch:.4f}", f"{fixed_one / float_one:.3f}", ""),
        ("max |float - fixed| over the batch", f"{diff:.2e}", "", ""),
    ])
