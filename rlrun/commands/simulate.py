"""`rlrun simulate`: run the blockchain simulator for N blocks at a fixed setting, without training, and write
the chain's statistics with 95 % confidence intervals to simulate.json (what SimBlock or the ns-3 Bitcoin
simulator report).

    rlrun simulate env=blockchain [env.scenario=NAME] [env.<key>=value ...] blocks=N seed=S [out=DIR]
    rlrun simulate run=<trained run dir> blocks=N seed=S [out=DIR]     (replay the run's policy instead)
    rlrun simulate env=<relay|consensus|inverter|...> episodes=N seed=S [out=DIR]   (static policy, per episode)

The static setting is the scenario's block size and interval with flood relay (Bitcoin-like 1 MB / 600 s
without a scenario). With run=<dir> the run's own env config and best checkpoint are used: the policy acts
once per env step, as in training, for as many steps as it takes to settle N blocks. The statistics and their
intervals are defined in `rlrun.envs.chain.summary`. Other envs run their static policy (the env's
`default_action()`, else the centre action) for N episodes and report their own info metrics
(`rlrun.commands.static_episodes`).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.commands.args import Args, parse_args
from rlrun.compose import compose_config
from rlrun.errors import ConfigError
from rlrun.run_dir import RunDir

DEPTH = 6  # heights below the tip at which a block counts as settled
WINDOW_BLOCKS = 10  # simulated block intervals per window (mempool upkeep and transaction generation)
_OWN_KEYS = {"env": "blockchain or another env", "blocks": "N (settled blocks to simulate, env=blockchain)",
             "episodes": "N (episodes, other envs)", "seed": "S",
             "out": "output directory", "run": "trained run directory (replay its policy)",
             "progress": "true|false"}


def usage() -> str:
    from rlrun.envs.chain.scenarios import SCENARIOS

    lines = [
        "usage: rlrun simulate env=blockchain [env.scenario=NAME] [env.<key>=value ...] blocks=N seed=S [out=DIR]",
        "       rlrun simulate run=<run dir> blocks=N seed=S [out=DIR]   (replay a trained policy)",
        "       rlrun simulate env=<other env> episodes=N seed=S [out=DIR]  (its static policy, its own metrics)",
        "",
        "Simulates N settled blocks at the env's static setting (the scenario's block size and interval, flood",
        "relay) and writes simulate.json: blocks, orphan_rate, fork_rate, uncle_rate, propagation_p50_s,",
        "propagation_p90_s, throughput_tps, latency_s, block_fill, with 95 % confidence intervals.",
        "",
        "scenarios (env.scenario=NAME; sources in rlrun/envs/chain/scenarios.py):",
    ]
    for name, sc in SCENARIOS.items():
        lines.append(f"  {name:<14}{sc.description}")
    lines.append("  (null)        the env's own training network: 100 nodes, SimBlock 2019 tables, 1 MB / 600 s")
    return "\n".join(lines)


def parse_simulate_args(argv: list[str]) -> Args:
    """The command's own settings and env.* overrides; blocks/episodes/run must fit the chosen env."""
    args = parse_args("simulate", argv, _OWN_KEYS, overrides="env")
    chain = args.get("env", "blockchain") == "blockchain"
    if chain and "episodes" in args:
        raise ConfigError("episodes applies to envs other than blockchain; for env=blockchain use blocks=N")
    if not chain and "blocks" in args:
        raise ConfigError(f"blocks applies to env=blockchain; for env={args.get('env')} use episodes=N")
    if not chain and "run" in args:
        raise ConfigError("run=<dir> replays env=blockchain runs only")
    args.integer("blocks", 1000, minimum=1)
    args.integer("episodes", 10, minimum=1)
    args.integer("seed", 0)
    args.boolean("progress", True)
    return args


def compose_env_config(overrides: list[str], env: str = "blockchain") -> Any:
    """The env=<env> config with the env.* overrides, composed by Hydra as `rlrun train` would."""
    return compose_config([f"env={env}", *overrides])


def settled_count(sim: Any, warmup_s: float) -> int:
    """Blocks found after warmup_s at least DEPTH heights below the main-chain tip."""
    top = len(sim.canon) - 1 - DEPTH
    height, t_found = sim.height, sim.t_found
    n = len(sim.parent)
    first = next((b for b in range(1, n) if t_found[b] >= warmup_s), n)
    unsettled = 0
    for b in range(n - 1, first - 1, -1):  # only recent blocks can be above the settled height
        if height[b] > top:
            unsettled += 1
        elif height[b] < top - 50:
            break
    return max(0, n - first - unsettled)


def simulate_static(env: Any, blocks: int, seed: int, progress: bool = False) -> dict[str, Any]:
    """Simulate `blocks` settled blocks of env's network at its static setting."""
    from tqdm import tqdm

    from rlrun.envs.chain.summary import run_summary

    sim = env.new_simulation(np.random.default_rng(seed))
    size_mb, interval = env.static_setting
    sim.configure(size_mb * 1e6, interval)
    warmup = 2.0 * interval
    window = WINDOW_BLOCKS * interval
    t0 = time.perf_counter()
    with tqdm(total=blocks, unit="block", disable=not progress, file=sys.stderr) as bar:
        done = 0
        while done < blocks:
            sim.advance(sim.now + window, window)
            done = settled_count(sim, warmup)
            bar.update(min(done, blocks) - bar.n)
    wall = time.perf_counter() - t0
    out = run_summary(sim, depth=DEPTH, warmup_s=warmup)
    out.update(static_setting={"block_size_mb": size_mb, "block_interval_s": interval, "relay": "flood"},
               sim_time_s=sim.now, wall_s=wall, sim_s_per_wall_s=sim.now / wall if wall > 0 else None,
               events=sim.events, nodes=sim.n)
    return out


def simulate_policy(run_dir: Path, overrides: list[str], blocks: int, seed: int,
                    progress: bool = False) -> dict[str, Any]:
    """Replay a trained run's policy (best checkpoint) on its env until `blocks` blocks are settled."""
    import torch
    from tqdm import tqdm

    from rlrun.envs.blockchain import BlockchainEnv
    from rlrun.envs.chain.summary import run_summary

    run = RunDir(run_dir)
    run.require_env("BlockchainEnv", "simulate run=<dir>", "blockchain")
    run.override_env(overrides)
    torch.set_num_threads(int(run.cfg.torch_threads))
    env = run.build_env(evaluation=True)
    agent = run.build_agent(env, "best")
    ckpt_path = run.checkpoint_path
    inner = env.unwrapped
    assert isinstance(inner, BlockchainEnv)
    obs, _ = env.reset(seed=seed)
    agent.reset_episode()
    warmup = inner.sim.now
    steps = 0
    t0 = time.perf_counter()
    with tqdm(total=blocks, unit="block", disable=not progress, file=sys.stderr) as bar:
        done = 0
        while done < blocks:
            obs, _, _, _, _ = env.step(agent.act(obs, explore=False))  # one long episode: truncation ignored
            steps += 1
            done = settled_count(inner.sim, warmup)
            bar.update(min(done, blocks) - bar.n)
    wall = time.perf_counter() - t0
    out = run_summary(inner.sim, depth=DEPTH, warmup_s=warmup)
    out.update(policy={"run": str(run_dir), "checkpoint": str(ckpt_path), "env_steps": steps},
               sim_time_s=inner.sim.now, wall_s=wall, events=inner.sim.events, nodes=inner.sim.n)
    return out


def _default_out(scenario: str | None) -> Path:
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return Path("outputs") / "simulate" / f"blockchain-{scenario or 'default'}" / stamp


def _line(name: str, result: dict[str, Any], fmt: str) -> str:
    ci = result.get(f"{name}_ci95")
    text = f"  {name:<20}{format(result[name], fmt)}"
    if ci and all(c == c for c in ci):
        text += f"  [{format(ci[0], fmt)}, {format(ci[1], fmt)}]"
    return text


def simulate_command(args: list[str]) -> int:
    if any(a in ("-h", "--help", "help") for a in args):
        print(usage())
        return 0
    own = parse_simulate_args(args)
    overrides = own.overrides
    if own.get("env", "blockchain") != "blockchain":
        return _simulate_episodes(own)
    blocks = own.integer("blocks", 1000)
    seed = own.integer("seed", 0)
    progress = own.boolean("progress", True)
    if "run" in own:
        run_dir = own.path("run", "run directory")
        result = simulate_policy(run_dir, overrides, blocks, seed, progress)
        scenario = None
        out_dir = Path(own.values["out"]) if "out" in own else run_dir / "simulate"
    else:
        from omegaconf import OmegaConf

        from rlrun.envs.blockchain import BlockchainEnv

        cfg = compose_env_config(overrides)
        env_cfg = OmegaConf.to_container(cfg.env, resolve=True)
        # built directly, not through hydra's instantiate, so a bad value's ConfigError reaches the CLI as is
        env = BlockchainEnv(**{k: v for k, v in env_cfg.items() if not k.startswith("_")})
        scenario = env.scenario
        result = simulate_static(env, blocks, seed, progress)
        result["config"] = {k: v for k, v in env_cfg.items() if k in ("scenario", "network", "transactions",
                                                                       "protocol", "hashpower")}
        out_dir = Path(own.values["out"]) if "out" in own else _default_out(scenario)
    result = {"env": "blockchain", "scenario": scenario, "seed": seed, "blocks_requested": blocks, **result}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "simulate.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    print(f"simulated {result['blocks']} settled blocks ({result['blocks_found']} found) on {result['nodes']} "
          f"nodes, scenario {scenario or 'none'}, seed {seed}; {result['wall_s']:.1f} s wall")
    for name, fmt in (("orphan_rate", ".4f"), ("fork_rate", ".4f"), ("fork_rate_expected", ".4f"),
                      ("uncle_rate", ".4f"), ("propagation_p50_s", ".2f"), ("propagation_p90_s", ".2f"),
                      ("throughput_tps", ".2f"), ("latency_s", ".1f"), ("block_fill", ".3f")):
        print(_line(name, result, fmt))
    print(f"wrote {path}")
    return 0


def _simulate_episodes(own: Args) -> int:
    """Envs other than blockchain: their static policy for N episodes (rlrun.commands.static_episodes)."""
    from rlrun.commands.static_episodes import static_episodes

    name, episodes, seed = own.values["env"], own.integer("episodes", 10), own.integer("seed", 0)
    cfg = compose_env_config(own.overrides, env=name)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = Path(own.values["out"]) if "out" in own else Path("outputs") / "simulate" / name / stamp
    result = {"env": name, "seed": seed, **static_episodes(cfg, episodes, seed, log_dir=out_dir / "env_logs")}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "simulate.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    ci = result["return_ci95"]
    print(f"env={name}, {result['policy']} policy, {episodes} episodes from seed {seed}: return "
          f"{result['return_mean']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")
    for key, m in list(result["metrics"].items())[:12]:
        lo, hi = m["ci95"]
        print(f"  {key:<28}{m['mean']:.4g}  [{lo:.4g}, {hi:.4g}]")
    print(f"wrote {path}")
    return 0
