"""Deterministic evaluation: fixed seeds, no exploration, mean +- std return and the env's domain metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlrun.collect import EnvPool
from rlrun.collect.pool import SyncPool
from rlrun.errors import CheckpointError, ConfigError
from rlrun.run_dir import load_run_config


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


def evaluate_policy(envs: gym.Env | EnvPool, policy: Any, episodes: int, seed: int) -> dict[str, Any]:
    """Run `episodes` deterministic episodes with seeds seed, seed+1, ...; the same seeds every call, so
    evaluations across training and across agents (trained vs baseline) see the same situations.

    Given a pool of copies, a policy that acts in batches (`batched_acting`) plays one episode per copy at a
    time, each copy taking the next seed when its episode ends; episode i always has seed `seed + i`, so the
    result does not depend on the number of copies. Any object with `act(obs, explore)` can be evaluated; the
    optional hooks (`act_batch`, `reset_episode`, `clear`) are used when it has them.
    """
    pool = envs if isinstance(envs, EnvPool) else SyncPool.of(envs)
    batched = bool(getattr(policy, "batched_acting", False)) and hasattr(policy, "act_batch")
    width = min(pool.num_envs if batched else 1, episodes)
    reset_episode = getattr(policy, "reset_episode", None)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=int)
    per_episode_metrics: list[dict[str, float]] = [{} for _ in range(episodes)]
    averagers = [InfoAverager() for _ in range(episodes)]
    obs = np.zeros((pool.num_envs, *pool.observation_space.shape), dtype=pool.observation_space.dtype)
    playing: dict[int, int] = {}  # env copy -> episode index
    next_episode = 0

    def start(copies: list[int]) -> None:
        nonlocal next_episode
        first = next_episode
        next_episode += len(copies)
        start_obs, _ = pool.reset([seed + first + j for j in range(len(copies))], indices=copies)
        for j, c in enumerate(copies):
            playing[c] = first + j
            obs[c] = start_obs[j]
        if reset_episode is not None and not batched:
            reset_episode()

    start(list(range(width)))
    while playing:
        copies = sorted(playing)
        if batched:
            actions = policy.act_batch(obs[copies], explore=False)
        else:
            actions = [policy.act(obs[c], explore=False) for c in copies]
        res = pool.step(actions, indices=copies)
        finished = []
        for row, c in enumerate(copies):
            ep, info = playing[c], res.infos[row]
            if info.get("agent_reload") and hasattr(policy, "clear"):
                policy.clear()  # circuit breaker tripped: drop the in-memory policy, reload on next act
            returns[ep] += float(res.rewards[row])
            lengths[ep] += 1
            averagers[ep].add(info)
            obs[c] = res.obs[row]
            if res.terminated[row] or res.truncated[row]:
                per_episode_metrics[ep] = averagers[ep].means()
                finished.append(c)
        for c in finished:
            del playing[c]
        for c in finished:
            if next_episode < episodes:
                start([c])
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


def tensorboard_layout(env: gym.Env | EnvPool) -> dict[str, Any] | None:
    if isinstance(env, EnvPool):
        return env.attr("tensorboard_layout")
    return getattr(env.unwrapped, "tensorboard_layout", None)


def key_metrics(env: gym.Env | EnvPool) -> list[str]:
    """The metrics an env shows first: those its TensorBoard layout charts, in layout order."""
    layout = tensorboard_layout(env) or {}
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
    env = build_env(cfg, log_dir=run_dir / "eval_cli", evaluation="test")
    agent = build_agent(cfg, env)
    load_agent_state(agent, ckpt, ckpt_path)
    if kv.get("inference", "float") != "float":
        from rlrun.deploy.export import wrap_for_inference

        agent = wrap_for_inference(agent, kv["inference"])
    result = evaluate_policy(env, agent, episodes, seed)
    result["split"] = "test"  # the env's test split (eval_kwargs["test"]); training selected on "val"
    result["checkpoint"] = str(ckpt_path)
    result["step"] = int(ckpt["trainer"]["step"])
    print(format_result(f"eval on the test split ({ckpt_path.name}, step {result['step']})", result, max_metrics=20,
                        first=key_metrics(env)))
    baseline = build_baseline(cfg, env)
    if baseline is not None:
        result["baseline"] = {**compare(result, evaluate_policy(env, baseline, episodes, seed), cfg.baseline),
                              "split": "test"}
        print(format_comparison(result["baseline"]))
    suffix = "" if kv.get("inference", "float") == "float" else f"_{kv['inference']}"
    out = run_dir / f"eval_{ckpt_path.stem}_seed{seed}_n{episodes}{suffix}.json"
    try:
        out.write_text(json.dumps(result, indent=2))
    except OSError as e:
        raise CheckpointError(f"cannot write {out} ({e.strerror or e}); the result above was not saved") from None
    print(f"wrote {out}")
    return 0


def load_agent_state(agent: Any, ckpt: dict[str, Any], path: Path) -> None:
    """A checkpoint of another agent or env (other layer names or shapes) is a CheckpointError line."""
    try:
        agent.load_state_dict(ckpt["agent"])
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} does not fit this run's {type(agent).__name__} agent and its "
                              f"env ({reason[:200]})") from None


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
