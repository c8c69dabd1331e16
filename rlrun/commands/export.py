"""`rlrun export run=<dir> [format=fixedpoint] [checkpoint=best|last|<path>] [out=<dir>] [tanh=pade|...]
[--verify [n=N] [seed=S] [obs=env|uniform] [tolerance=T]]`: the run's actor as an int64 fixed-point network
(see rlrun.deploy.export), optionally verified against the float actor; exit 1 when verification fails."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlrun.commands.args import parse_args
from rlrun.deploy.export import fixedpoint_from_agent, float_actor
from rlrun.deploy.fixedpoint import SCALE, TANH_MODES, FixedPointMLP, from_fixed, to_fixed
from rlrun.run_dir import RunDir

KEYS = {"run": "run directory", "format": "fixedpoint", "checkpoint": "best|last|<path>", "out": "directory",
        "tanh": "|".join(TANH_MODES), "verify": "true|false", "n": "observations", "seed": "S",
        "obs": "env|uniform", "tolerance": "max |float - fixed|"}



def verification_observations(env: Any, agent: Any, n: int, seed: int, source: str) -> np.ndarray:
    """N observations: those the float policy meets in the env (source=env) or uniform over the box."""
    space = env.observation_space
    if source == "uniform":
        rng = np.random.default_rng(seed)
        low = np.maximum(np.asarray(space.low, dtype=np.float64), -10.0)
        high = np.minimum(np.asarray(space.high, dtype=np.float64), 10.0)
        return rng.uniform(low, high, size=(n, *space.shape))
    out: list[np.ndarray] = []
    episode = 0
    while len(out) < n:
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done and len(out) < n:
            out.append(np.asarray(obs, dtype=np.float64))
            obs, _, terminated, truncated, _ = env.step(agent.act(obs, explore=False))
            done = terminated or truncated
        episode += 1
    return np.stack(out)


def verify(
    engine: FixedPointMLP, float_fn: Callable[[np.ndarray], np.ndarray], obs: np.ndarray
) -> dict[str, Any]:
    t0 = time.perf_counter()
    y_fixed = from_fixed(engine.forward(to_fixed(obs)))
    t_fixed = time.perf_counter() - t0
    y_float = float_fn(obs)
    diff = np.abs(y_fixed - y_float)
    return {
        "observations": int(obs.shape[0]),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "per_output_max_abs_diff": diff.max(axis=0).tolist(),
        "fixedpoint_obs_per_s": float(obs.shape[0] / max(t_fixed, 1e-9)),
    }



def export_command(argv: list[str]) -> int:
    args = parse_args("export", argv, KEYS, flags=["--verify"])
    run = RunDir(args.path("run", "run directory"))
    args.choice("format", "fixedpoint", ["fixedpoint"])
    tanh = args.choice("tanh", "pade", TANH_MODES)
    do_verify = "--verify" in args.flags or args.boolean("verify", False)
    source = args.choice("obs", "env", ["env", "uniform"])
    n = args.integer("n", 1000, minimum=1)
    seed = args.integer("seed", 0)
    tolerance = args.number("tolerance", 1e-4)
    torch.set_num_threads(1)
    env = run.build_env()
    agent = run.build_agent(env, args.get("checkpoint", "best"))
    meta = {"source": {"run": str(run.path), "checkpoint": str(run.checkpoint_path), "step": run.step,
                       "agent": str(run.cfg.agent.get("_target_")), "env": run.env_target}}
    engine = fixedpoint_from_agent(agent, tanh, meta)
    out = Path(args.values["out"]) if "out" in args else run.path / "export" / "fixedpoint"
    bin_path, json_path = engine.save(out)
    header = engine.header()
    print(
        f"exported {'-'.join(map(str, engine.layer_sizes))} actor "
        f"({header['num_params']:,} int64 parameters, "
        f"scale {SCALE:.0e}, tanh={tanh}) to {bin_path} + {json_path.name}; {header['checksum']}"
    )
    if not do_verify:
        return 0
    obs = verification_observations(env, agent, n, seed, source)
    report = verify(FixedPointMLP.load(out), float_actor(agent), obs)
    report.update({"tolerance": tolerance, "obs_source": source, "tanh": tanh})
    (out / "verify.json").write_text(json.dumps(report, indent=2) + "\n")
    ok = report["max_abs_diff"] <= tolerance
    print(
        f"verify: {report['observations']} observations ({source}): max |float - fixed| = "
        f"{report['max_abs_diff']:.3g}, mean = {report['mean_abs_diff']:.3g} "
        f"({'within' if ok else 'EXCEEDS'} tolerance {tolerance:g}); wrote {out / 'verify.json'}"
    )
    return 0 if ok else 1
