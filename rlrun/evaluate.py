"""Deterministic evaluation: fixed seeds, no exploration, mean +- std return and the env's domain metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlrun.agents.base import Agent
from rlrun.errors import CheckpointError, ConfigError


class InfoAverager:
    """Averages every numeric scalar `info` key over the steps of one episode."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, info: dict[str, Any]) -> None:
        for k, v in info.items():
            if isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool):
                self.sums[k] = self.sums.get(k, 0.0) + float(v)
                self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = dict(state["sums"])
        self.counts = dict(state["counts"])


def evaluate_policy(env: gym.Env, agent: Agent, episodes: int, seed: int) -> dict[str, Any]:
    """Run `episodes` deterministic episodes with seeds seed, seed+1, ...; the same seeds every call, so
    evaluations across training and across agents (trained vs baseline) see the same situations."""
    returns, lengths, per_episode_metrics = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        agent.reset_episode()
        averager = InfoAverager()
        ret, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, explore=False))
            if info.get("agent_reload") and hasattr(agent, "clear"):
                agent.clear()  # circuit breaker tripped: drop the in-memory policy, reload on next act
            ret += float(reward)
            length += 1
            averager.add(info)
            done = terminated or truncated
        returns.append(ret)
        lengths.append(length)
        per_episode_metrics.append(averager.means())
    keys = sorted(set().union(*per_episode_metrics)) if per_episode_metrics else []
    metrics = {k: float(np.mean([m[k] for m in per_episode_metrics if k in m])) for k in keys}
    return {
        "episodes": episodes,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "length_mean": float(np.mean(lengths)),
        "returns": [float(r) for r in returns],
        "metrics": metrics,
    }


def compare(result: dict[str, Any], baseline: dict[str, Any], name: str) -> dict[str, Any]:
    """The trained policy relative to a baseline evaluated on the same seeds."""
    gain = result["return_mean"] - baseline["return_mean"]
    scale = abs(baseline["return_mean"])
    return {
        "agent": name,
        **{k: baseline[k] for k in ("return_mean", "return_std", "metrics")},
        "improvement": gain,
        "improvement_pct": 100.0 * gain / scale if scale > 0 else None,
    }


def format_comparison(comp: dict[str, Any]) -> str:
    pct = f" ({comp['improvement_pct']:+.1f}%)" if comp["improvement_pct"] is not None else ""
    return (f"baseline {comp['agent']}: return {comp['return_mean']:.3f} ± {comp['return_std']:.3f} | "
            f"improvement over baseline {comp['improvement']:+.3f}{pct}")


def key_metrics(env: gym.Env) -> list[str]:
    """The metrics an env shows first: those its TensorBoard layout charts, in layout order."""
    layout = getattr(env.unwrapped, "tensorboard_layout", None) or {}
    keys: list[str] = []
    for charts in layout.values():
        for _, tags in charts.values():
            keys += [t.split("/", 1)[1] for t in tags if t.startswith("env/") and t.split("/", 1)[1] not in keys]
    return keys


def format_result(label: str, result: dict[str, Any], max_metrics: int = 6, first: list[str] | None = None) -> str:
    parts = [f"{label}: return {result['return_mean']:.3f} ± {result['return_std']:.3f} "
             f"over {result['episodes']} episodes"]
    metrics = result["metrics"]
    order = [k for k in (first or []) if k in metrics] + [k for k in metrics if k not in (first or [])]
    for k in order[:max_metrics]:
        parts.append(f"{k}={metrics[k]:.4g}")
    return " | ".join(parts)


# ---- `rlrun eval run=<dir> [episodes=N] [checkpoint=best|last|<path>]` ---------------------------------

def parse_keyvalues(args: list[str], allowed: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(f"unexpected argument {arg!r}; expected key=value with key in: {', '.join(allowed)}")
        out[key] = value
    return out


def load_run_config(run_dir: Path) -> DictConfig:
    path = run_dir / ".hydra" / "config.yaml"
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not an rlrun run directory (no .hydra/config.yaml)")
    return OmegaConf.load(path)


def eval_command(args: list[str]) -> int:
    from rlrun.build import build_agent, build_baseline, build_env
    from rlrun.checkpoint import load_checkpoint, resolve_checkpoint

    env_overrides = [a for a in args if a.startswith("env.")]
    kv = parse_keyvalues([a for a in args if not a.startswith("env.")],
                         {"run": "run directory", "episodes": "N", "checkpoint": "best|last|<path>",
                          "seed": "first evaluation seed", "inference": "float|fixedpoint", "env.<key>": "value"})
    if "run" not in kv:
        raise ConfigError("rlrun eval needs run=<run directory>")
    run_dir = Path(kv["run"])
    cfg = load_run_config(run_dir)
    for override in env_overrides:
        key, _, value = override.partition("=")
        if key.split(".", 1)[1] not in cfg.env:
            raise ConfigError(f"{key} is not a key of this run's env config; allowed: "
                              f"{', '.join(k for k in cfg.env if not k.startswith('_'))}")
        cfg.merge_with_dotlist([override])
    ckpt_path = resolve_checkpoint(run_dir, kv.get("checkpoint", "best"))
    try:
        episodes = int(kv.get("episodes", cfg.eval_episodes))
        seed = int(kv.get("seed", cfg.eval_seed))
    except ValueError:
        raise ConfigError("episodes and seed must be integers") from None
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    ckpt = load_checkpoint(ckpt_path)
    torch.set_num_threads(int(cfg.torch_threads))
    env = build_env(cfg, log_dir=run_dir / "eval_cli", evaluation=True)
    agent = build_agent(cfg, env)
    agent.load_state_dict(ckpt["agent"])
    if kv.get("inference", "float") != "float":
        from rlrun.deploy.export import wrap_for_inference

        agent = wrap_for_inference(agent, kv["inference"])
    result = evaluate_policy(env, agent, episodes, seed)
    result["checkpoint"] = str(ckpt_path)
    result["step"] = int(ckpt["trainer"]["step"])
    print(format_result(f"eval ({ckpt_path.name}, step {result['step']})", result, max_metrics=20,
                        first=key_metrics(env)))
    baseline = build_baseline(cfg, env)
    if baseline is not None:
        result["baseline"] = compare(result, evaluate_policy(env, baseline, episodes, seed), cfg.baseline)
        print(format_comparison(result["baseline"]))
    suffix = "" if kv.get("inference", "float") == "float" else f"_{kv['inference']}"
    out = run_dir / f"eval_{ckpt_path.stem}_seed{seed}_n{episodes}{suffix}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
