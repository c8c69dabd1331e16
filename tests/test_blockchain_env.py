"""env=blockchain: Gymnasium contract, both action views, determinism, errors, reward and action semantics."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlrun.envs  # noqa: F401  (registers the ids)
from rlrun.envs.blockchain import OBS_BASIC, OBS_EXTENDED, BlockchainEnv
from rlrun.errors import ConfigError

SMALL = {"nodes": 20, "outbound": 4}


def small_env(**kw) -> BlockchainEnv:
    kw.setdefault("network", SMALL)
    kw.setdefault("episode_steps", 6)
    return BlockchainEnv(**kw)


@pytest.mark.parametrize("mode", ["continuous", "hybrid"])
def test_check_env_passes_in_both_action_modes(mode):
    env = small_env(action_mode=mode, observation="extended" if mode == "hybrid" else "basic")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env's warnings count as failures here
        check_env(env, skip_render_check=True)


def test_spaces_follow_the_seed():
    env = small_env(relay_slots=6)
    assert env.action_space.shape == (6 + 2,)
    assert env.observation_space.shape == (len(OBS_BASIC),) == (5,)
    hybrid = small_env(action_mode="hybrid", observation="extended")
    assert isinstance(hybrid.action_space, gym.spaces.Tuple)
    assert hybrid.action_space.spaces[0].n == 4 and hybrid.action_space.spaces[1].shape == (2,)
    assert hybrid.observation_space.shape == (len(OBS_EXTENDED),)


def _rollout(env: BlockchainEnv, seed: int, steps: int = 6):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    out = [obs]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        out.append((obs, r, info))
    return out


def test_same_seed_same_trajectory_and_other_seed_differs():
    a = _rollout(small_env(), seed=5)
    b = _rollout(small_env(), seed=5)
    c = _rollout(small_env(), seed=6)
    assert np.array_equal(a[0], b[0])
    for (oa, ra, ia), (ob, rb, ib) in zip(a[1:], b[1:], strict=True):
        assert np.array_equal(oa, ob) and ra == rb and ia == ib
    assert any(ra != rc for (_, ra, _), (_, rc, _) in zip(a[1:], c[1:], strict=True))


def test_hybrid_same_seed_same_trajectory():
    def run():
        env = small_env(action_mode="hybrid")
        env.reset(seed=3)
        return [env.step((k % 4, np.array([0.2, -0.3], dtype=np.float32)))[1] for k in range(5)]

    assert run() == run()


def test_episode_truncates_after_episode_steps_and_info_is_complete():
    env = small_env(episode_steps=3)
    env.reset(seed=0)
    keys = None
    for t in range(3):
        obs, r, term, trunc, info = env.step(np.zeros(10, dtype=np.float32))
        assert not term and trunc == (t == 2)
        assert env.observation_space.contains(obs)
        assert all(isinstance(v, float) and math.isfinite(v) for v in info.values())
        keys = keys or set(info)
        assert set(info) == keys
    for k in ("latency", "latency_p95", "throughput", "orphan_rate", "prop_time_p50", "prop_time_p90",
              "mempool_depth", "bandwidth_utilisation", "reward_latency", "reward_throughput",
              "reward_orphan"):
        assert k in keys


def test_reward_is_the_map_formula_with_configured_weights():
    w = {"latency_weight": 0.5, "throughput_weight": 0.004, "orphan_weight": 15.0}
    env = small_env(reward=w)
    env.reset(seed=1)
    for _ in range(3):
        _, r, _, _, info = env.step(np.full(10, 0.3, dtype=np.float32))
        served = min(info["throughput"], info["offered_load"])
        expected = -0.5 * info["latency"] / 60 + 0.004 * served * 60 - 15.0 * info["orphan_rate"]
        assert r == pytest.approx(expected)
        assert r == pytest.approx(info["reward_latency"] + info["reward_throughput"] + info["reward_orphan"])


def test_size_and_interval_actions_map_onto_configured_ranges():
    env = small_env(block_size_mb=[0.5, 2.0], block_interval_s=[10.0, 40.0])
    env.reset(seed=0)
    lo = env.step(np.array([1] * 8 + [-1, -1], dtype=np.float32))[4]
    hi = env.step(np.array([1] * 8 + [1, 1], dtype=np.float32))[4]
    mid = env.step(np.array([1] * 8 + [0, 0], dtype=np.float32))[4]
    assert (lo["block_size_mb"], lo["block_interval_s"]) == pytest.approx((0.5, 10.0))
    assert (hi["block_size_mb"], hi["block_interval_s"]) == pytest.approx((2.0, 40.0))
    assert (mid["block_size_mb"], mid["block_interval_s"]) == pytest.approx((1.0, 20.0))  # log scale midpoint
    over = env.step(np.array([1] * 8 + [5, -7], dtype=np.float32))[4]  # clipped to the range
    assert (over["block_size_mb"], over["block_interval_s"]) == pytest.approx((2.0, 10.0))
    linear = small_env(block_interval_s=[10.0, 40.0], action_scale="linear")
    linear.reset(seed=0)
    assert linear.step(np.zeros(10, dtype=np.float32))[4]["block_interval_s"] == pytest.approx(25.0)


@pytest.mark.parametrize("mode", ["continuous", "hybrid"])
def test_default_action_is_bitcoin_like(mode):
    env = small_env(action_mode=mode)
    a = env.default_action()
    assert env.action_space.contains(a)
    env.reset(seed=0)
    info = env.step(a)[4]
    assert info["block_size_mb"] == pytest.approx(1.0, rel=1e-5)
    assert info["block_interval_s"] == pytest.approx(600.0, rel=1e-5)
    flood = small_env(action_mode="continuous")
    flood.reset(seed=0)
    assert info["relay_fanout"] == flood.step(np.ones(10, dtype=np.float32))[4]["relay_fanout"]


def test_neighbour_mask_relays_to_at_least_one_slot():
    env = small_env()
    env.reset(seed=0)
    flood = env.step(np.ones(10, dtype=np.float32))[4]
    nearest = env.step(np.array([1] + [-1] * 7 + [0, 0], dtype=np.float32))[4]
    none = env.step(np.array([-0.1] + [-0.9] * 7 + [0, 0], dtype=np.float32))[4]  # argmax slot 0 relays
    far = env.step(np.array([-0.9] * 7 + [-0.1] + [0, 0], dtype=np.float32))[4]
    assert nearest["relay_fanout"] < flood["relay_fanout"]
    assert none["relay_fanout"] == nearest["relay_fanout"] > 0
    assert none["latency_to_peers_ms"] == nearest["latency_to_peers_ms"] < far["latency_to_peers_ms"]


def test_hybrid_strategies_change_the_relay_plan():
    env = small_env(action_mode="hybrid", nearest_k=2, random_fanout=3)
    env.reset(seed=0)
    infos = {k: env.step((k, np.zeros(2, dtype=np.float32)))[4] for k in range(4)}
    assert infos[1]["relay_fanout"] <= 2 < infos[0]["relay_fanout"]
    assert infos[2]["relay_fanout"] <= 3
    assert [infos[k]["strategy"] for k in range(4)] == [0.0, 1.0, 2.0, 3.0]


def test_moderate_settings_beat_both_extremes():
    """The reward has an interior optimum: 10-minute blocks pay in latency, 1-second 8 MB blocks in orphans.
    (The first steps after a change clear the transactions that waited for the previous, slower blocks, a
    one-off throughput bonus, so they are left out.)"""
    def mean_reward(size_u: float, interval_u: float) -> float:
        env = small_env(network={"nodes": 30}, episode_steps=20)
        env.reset(seed=0)
        rewards = [env.step(np.array([1] * 8 + [size_u, interval_u], dtype=np.float32))[1] for _ in range(20)]
        return float(np.mean(rewards[4:]))

    bitcoin_like = mean_reward(0.0, 1.0)  # ~0.9 MB, 600 s
    fast_big = mean_reward(1.0, -1.0)  # 8 MB, 1 s
    moderate = mean_reward(0.0, -0.1)  # ~0.9 MB, ~18 s
    assert moderate > bitcoin_like + 1.0 and moderate > fast_big + 0.5, (moderate, bitcoin_like, fast_big)


def test_alternating_slow_and_fast_blocks_does_not_pay():
    """Steps last step_blocks intervals, so a slow step (transactions pile up) followed by a 1-second step
    (they all confirm within seconds) would show a huge throughput on the fast step; the reward counts
    throughput only up to the offered load, so alternating must lose to a steady moderate setting."""
    def rewards(actions: list[list[float]]) -> tuple[float, float]:
        env = small_env(network={"nodes": 30}, episode_steps=12)
        env.reset(seed=0)
        rs, peak = [], 0.0
        for t in range(12):
            _, r, _, _, info = env.step(np.array([1] * 8 + actions[t % len(actions)], dtype=np.float32))
            rs.append(r)
            peak = max(peak, info["throughput"] / info["offered_load"])
        return float(np.mean(rs[2:])), peak

    alternating, peak = rewards([[1.0, 1.0], [1.0, -1.0]])
    steady, _ = rewards([[0.0, -0.2]])
    assert peak > 20  # the fast steps really do confirm a pile-up at many times the arrival rate
    assert steady > alternating + 1.0, (steady, alternating)


def test_non_finite_actions_raise_a_clear_error():
    env = small_env()
    env.reset(seed=0)
    bad = np.zeros(10, dtype=np.float32)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="non-finite action"):
        env.step(bad)
    with pytest.raises(ValueError, match="expects an action of 10"):
        env.step(np.zeros(3, dtype=np.float32))
    hybrid = small_env(action_mode="hybrid")
    hybrid.reset(seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        hybrid.step((0, np.array([np.inf, 0.0], dtype=np.float32)))
    with pytest.raises(ValueError, match="strategy id 7"):
        hybrid.step((7, np.zeros(2, dtype=np.float32)))
    with pytest.raises(RuntimeError, match="before reset"):
        small_env().step(np.zeros(10, dtype=np.float32))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"action_mode": "discrete"}, "env.action_mode"),
        ({"block_interval_s": [0.0, 10.0]}, r"env.block_interval_s\[0\]"),
        ({"block_interval_s": [10.0, 1.0]}, "env.block_interval_s"),
        ({"block_size_mb": [-1.0, 1.0]}, r"env.block_size_mb\[0\]"),
        ({"initial_block_interval_s": 0.0}, "env.initial_block_interval_s"),
        ({"episode_steps": 0}, "env.episode_steps"),
        ({"strategies": ["flood", "teleport"]}, r"env.strategies\[1\]"),
        ({"hashpower": [0.5, -0.1]}, r"env.hashpower\[1\]"),
        ({"network": {"nodes": 4, "outbound": 8}}, "env.network.outbound"),
        ({"network": {"region_shares": [0.2] * 6}}, "env.network.region_shares"),
        ({"network": {"latency_ms": [[10.0, 20.0]]}}, "env.network.latency_ms"),
        ({"transactions": {"rate_tps": -3.0}}, "env.transactions.rate_tps"),
        ({"reward": {"latency_weight": -1.0}}, "reward.latency_weight"),
        ({"reward": {"latency_weight": 1.0, "delta": 2.0}}, "reward.delta"),
    ],
)
def test_bad_config_raises_config_error_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        BlockchainEnv(**kwargs)


def test_registered_id_and_hydra_config_select_the_blockchain_reward():
    env = gym.make("rlrun/Blockchain-v0", network=SMALL, episode_steps=2)
    assert isinstance(env.unwrapped, BlockchainEnv)
    import rlrun.config  # noqa: F401  (registers the structured-config schema)
    from conftest import compose
    from rlrun.build import build_env

    cfg = compose(["env=blockchain", "agent=ddpg", "env.network.nodes=20"])
    assert dict(cfg.reward) == {"_target_": "rlrun.envs.rewards.BlockchainReward", "latency_weight": 1.0,
                                "throughput_weight": 0.003, "orphan_weight": 10.0}
    built = build_env(cfg)
    assert isinstance(built, BlockchainEnv) and built.net_spec.nodes == 20
    cfg = compose(["env=blockchain", "agent=ddpg", "reward.orphan_weight=3.0"])
    assert build_env(cfg).unwrapped.reward.orphan_weight == 3.0


def test_fixed_topology_is_shared_across_episodes():
    env = small_env(topology_seed=7)
    env.reset(seed=0)
    first = env.sim.net
    env.reset(seed=1)
    assert env.sim.net is first
    env2 = small_env()
    env2.reset(seed=0)
    peers0 = env2.sim.net.peers
    env2.reset(seed=1)
    assert env2.sim.net.peers != peers0
