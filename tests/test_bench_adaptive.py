"""bench/bench_adaptive.py's scenario pieces (fast): demand that does not depend on the policy, the rule
baseline's switching, the paired interval, and overrides that compose into a valid run config."""

from __future__ import annotations

import numpy as np
import pytest

from bench import bench_adaptive as ba


def _created(setting, seed: int, steps: int = 6) -> list[float]:
    env = ba.make_env()
    a = ba.action(env, setting)
    env.reset(seed=seed)
    return [env.step(a)[4]["tx_created"] for _ in range(steps)]


def test_demand_is_the_same_whatever_the_policy():
    fast, slow = ("flood", 1.0, 5.0), ("nearest", 0.25, 60.0)
    assert _created(fast, 1_000_000) == _created(slow, 1_000_000)
    assert _created(fast, 1_000_000) != _created(fast, 1_000_001)


def test_rule_switches_on_backlog_and_holds_while_busy():
    env = ba.make_env()
    calm, burst = ("flood", 0.25, 40.0), ("flood", 0.5, 5.0)
    act = ba.rule_policy(env, calm, burst)
    mb = np.log1p(env.tx_spec.mempool_max_mb)
    obs = np.zeros(len(env.obs_names), dtype=np.float32)
    obs[9] = env._to_unit(40.0, *env.interval_range)
    obs[1] = np.log1p(0.1) / mb  # calm backlog
    assert act(obs)[0] == env.strategies.index("flood") and np.allclose(act(obs)[1], ba.action(env, calm)[1])
    obs[1] = np.log1p(5.0) / mb  # a burst's backlog
    assert np.allclose(act(obs)[1], ba.action(env, burst)[1])
    obs[1], obs[4] = np.log1p(0.2) / mb, 1.0  # backlog cleared, blocks still busy, burst setting in force
    obs[9] = env._to_unit(5.0, *env.interval_range)
    assert np.allclose(act(obs)[1], ba.action(env, burst)[1])
    obs[4] = 0.5  # back to the calm rate
    assert np.allclose(act(obs)[1], ba.action(env, calm)[1])


def test_paired_interval():
    d, half = ba.paired([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])
    assert d == pytest.approx(2.0)
    assert half == pytest.approx(4.303 * 1.0 / np.sqrt(3), rel=1e-3)


def test_overrides_compose():
    from rlrun.compose import compose

    cfg = compose(["env=blockchain", "agent=td3", *ba.overrides()])
    assert cfg.env.step_seconds == 60.0
    assert cfg.env.transactions.burst_mean_s == ba.TX["burst_mean_s"]
    assert cfg.reward.latency_weight == ba.REWARD["latency_weight"]
