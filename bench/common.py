"""Helpers shared by the benchmarks: compose an rlrun config in-process and time a training run."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def full() -> bool:
    """BENCH_FULL=1 runs the long variants (full-length training to compare final returns)."""
    return os.environ.get("BENCH_FULL", "0") == "1"


def rlrun_train(overrides: list[str]) -> dict[str, Any]:
    from rlrun.compose import compose as _compose
    from rlrun.trainer import Trainer

    cfg = _compose([*overrides, "progress=false", "plots=false", "eval_every=0", "checkpoint_every=0"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, Path(tmp))
        summary = trainer.run()
        summary["wall_seconds"] = time.perf_counter() - t0
    return summary


def evaluate_sb3(model, env_id: str, episodes: int, seed: int) -> float:
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(action)
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    return float(np.mean(returns))


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def set_threads(n: int = 1) -> None:
    torch.set_num_threads(n)
