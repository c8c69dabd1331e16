from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

RLRUN = [sys.executable, "-m", "rlrun.cli"]


def compose(overrides: list[str]):
    from rlrun.compose import compose as _compose

    return _compose(overrides)


def run_cli(args: list[str], cwd: Path, timeout: float = 300, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([*RLRUN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlrun {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def small_reach() -> list[str]:
    """A reach task small enough to learn in seconds."""
    return ["env=reach", "env.dim=3", "env.max_steps=25", "env.step_scale=0.25", "agent=ddpg",
            "agent.actor_hidden=[64,64]", "agent.critic_hidden=[64,64]", "agent.critic_arch=concat",
            "agent.noise=gaussian", "agent.noise_sigma=0.2", "replay.capacity=20000", "progress=false",
            "plots=false"]
