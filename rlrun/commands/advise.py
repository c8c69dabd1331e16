"""`rlrun advise run=<dir> [steps=N] [seed=S] [checkpoint=best|last|<path>]`: simulate a consensus run's chain
in Shadow mode for a few observation intervals and print the rollup advisory (rlrun.deploy.rollup) and, when
the run has a checkpoint, what its policy would recommend (nothing is applied)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from rlrun.commands.args import parse_args
from rlrun.deploy.export import FixedPointAgent
from rlrun.deploy.rollup import optimize_rollup_gas, suggest_rollup_profile
from rlrun.errors import CheckpointError
from rlrun.run_dir import RunDir

KEYS = {"run": "run directory", "steps": "observation intervals to simulate", "seed": "simulation seed",
        "checkpoint": "best|last|<path>"}



def advise_command(argv: list[str]) -> int:
    args = parse_args("advise", argv, KEYS)
    run = RunDir(args.path("run", "run directory"))
    steps = args.integer("steps", 5, minimum=1)
    seed = args.integer("seed", 0)
    run.require_env("ConsensusEnv", "advise", "consensus")
    run.cfg = OmegaConf.merge(run.cfg, {"env": {"agent_mode": "shadow", "log_dir": None}})  # observe only
    env = run.build_env()
    policy = None
    note = None
    try:
        policy = FixedPointAgent.from_agent(run.build_agent(env, args.get("checkpoint", "best")))
    except CheckpointError as e:
        note = f"no policy recommendation: {e}"
    obs, _ = env.reset(seed=seed)
    info: dict[str, Any] = {}
    for _ in range(steps):
        action = policy.act(obs) if policy is not None else np.zeros(env.action_space.shape, dtype=np.float32)
        obs, _, _, _, info = env.step(action)
    raw = env.raw_observation()
    report: dict[str, Any] = {
        "run": str(run.path),
        "simulated_blocks": int(info.get("block_height", 0)),
        "observation": raw,
        "rollup_profile": suggest_rollup_profile(raw),
        "rollup_gas": optimize_rollup_gas(raw),
    }
    if policy is not None:  # what the policy recommends for this observation (Shadow: nothing is applied)
        decision = env.governance.governor.decide(policy.act(obs))
        report["policy_recommendation"] = decision.recommended
        report["policy_checkpoint"] = str(run.checkpoint_path)
    if note:
        report["note"] = note
    print(json.dumps(report, indent=2))
    return 0
