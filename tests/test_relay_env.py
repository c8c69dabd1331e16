"""env=relay: Gymnasium contract, queueing physics against M/D/1, workload, reward terms, drift and failures."""

from __future__ import annotations

import gymnasium as gym
import networkx as nx
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlrun.envs  # noqa: F401  (registers rlrun/Relay-v0)
from rlrun.agents.routing_baselines import ShortestPathRouter
from rlrun.envs.relay import RelayEnv
from rlrun.envs.relay import obs as O
from rlrun.envs.relay.obs import RelayObs
from rlrun.errors import ConfigError

LONG_TTL = {"best-effort": [1e6, 1e6], "regional": [1e6, 1e6], "backbone": [1e6, 1e6]}


def run_episode(env: RelayEnv, policy, seed: int = 0) -> tuple[list[float], list[dict], dict]:
    obs, info = env.reset(seed=seed)
    rewards, infos = [], []
    while True:
        obs, r, terminated, truncated, info = env.step(policy(obs, info))
        rewards.append(r)
        infos.append(info)
        if terminated or truncated:
            return rewards, infos, info


def first_valid(obs, info) -> int:
    return int(np.flatnonzero(info["action_mask"])[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"topology": "grid"},
        {"topology": "geometric", "num_nodes": 16, "num_regions": 2, "max_degree": 14},
        {"topology": "geometric"},  # max_degree=0: sized to the graph
        {"topology": "backbone", "num_nodes": 12, "num_regions": 3, "max_degree": 8},
        {"topology": "edges", "edges": [[0, 1], [1, 2, 20.0], [2, 0, 5.0, 1.0, 0.01, 2.0]], "max_degree": 3},
    ],
)
def test_check_env_every_topology(kwargs):
    env = RelayEnv(episode_ms=500.0, **kwargs)
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (env.layout.size,)
    assert env.action_space == gym.spaces.Discrete(env.max_degree)


def test_registered_id_and_yaml_target():
    env = gym.make("rlrun/Relay-v0", episode_ms=200.0)
    assert isinstance(env.unwrapped, RelayEnv)


def test_same_seed_same_trajectory():
    a, b = (
        RelayEnv(episode_ms=1500.0, drift_sigma=0.1, failure_rate=0.05),
        RelayEnv(episode_ms=1500.0, drift_sigma=0.1, failure_rate=0.05),
    )
    ra, ia, _ = run_episode(a, first_valid, seed=7)
    rb, ib, _ = run_episode(b, first_valid, seed=7)
    assert ra == rb and len(ra) > 100
    assert [i["hop_ms"] for i in ia] == [i["hop_ms"] for i in ib]
    rc, _, _ = run_episode(a, first_valid, seed=8)
    assert rc != ra


def test_mdl_queue_matches_pollaczek_khinchine():
    """Two relays, one link, fixed-size messages: each relay is an M/D/1 queue, so the mean delivery time is
    W + D + RTT/2 with W = rho D / (2 (1 - rho)) (Pollaczek-Khinchine), a known figure the sim must hit."""
    lam = 300.0  # messages/s over both relays; each relay sources half of them
    env = RelayEnv(
        topology="edges",
        edges=[[0, 1, 10.0, 0.0, 0.0, 1.0]],
        max_degree=2,
        load=lam,
        size_bytes=[1000.0, 1000.0],
        episode_ms=40000.0,
        relay_drop_scale=0.0,
        ttl_ms=LONG_TTL,
    )
    _, _, last = run_episode(env, first_valid, seed=3)
    service = 5.0 + 1000.0 / 20000.0  # ms: overhead + size / (20 MB/s)
    rho = (lam / 2) / 1000.0 * service
    expected = rho * service / (2 * (1 - rho)) + service + 5.0
    assert rho > 0.7  # a loaded queue, not an idle one
    assert last["delivery_ratio"] == 1.0
    assert last["delivery_ms_mean"] == pytest.approx(expected, rel=0.05)


def test_load_builds_queues_under_shortest_path():
    means = []
    for load in (50.0, 450.0):
        env = RelayEnv(load=load, episode_ms=4000.0)
        router = ShortestPathRouter(env.observation_space, env.action_space)
        _, infos, last = run_episode(env, lambda o, i, r=router: r.act(o, False), seed=1)
        means.append((last["delivery_ms_mean"], float(np.mean([i["queue_ms"] for i in infos]))))
    (low_delay, low_queue), (high_delay, high_queue) = means
    assert low_queue < 1.0 < 10 * low_queue + 1.0 < high_queue
    assert high_delay > 2 * low_delay


def test_agent_decoder_agrees_with_env():
    env = RelayEnv(episode_ms=300.0, failure_rate=0.5, failure_ms=500.0)
    spec = RelayObs(env.observation_space)
    assert (spec.n, spec.d, spec.f) == (env.net.n, env.max_degree, len(O.CANDIDATE_FEATURES))
    obs, info = env.reset(seed=0)
    seen_down = False
    for _ in range(400):
        msg, x = env.net.decision
        dec = spec.decode(obs)
        k = env.net.deg[x]
        up = env.net.link_up[env.net.nbr_link[x, :k]]
        seen_down |= not up.all()
        assert (dec.node, dec.dst, dec.msg, dec.prev) == (x, msg.dst, msg.id % O.MSG_ID_MOD, msg.prev)
        assert dec.region == env.net.region[x] and dec.dst_region == env.net.region[msg.dst]
        assert list(dec.cand_ids) == list(env.net.nbrs[x, :k][up])
        assert np.array_equal(obs[-env.max_degree :], info["action_mask"])
        assert dec.workload.qclass == O.QCLASSES[msg.qclass]
        assert dec.workload.size_bytes == pytest.approx(msg.size, rel=1e-4)
        rtt = env.net.base_rtt[env.net.nbr_link[x, :k][up]] * env.net.rtt_mult[env.net.nbr_link[x, :k][up]]
        assert np.allclose(dec.feats[:, 0] * O.RTT_NORM_MS, rtt, rtol=1e-5)
        obs, _, _, truncated, info = env.step(first_valid(obs, info))
        if truncated:
            obs, info = env.reset()
    assert seen_down, "failures should have taken some link down"


def test_feedback_reports_the_previous_hop():
    env = RelayEnv(episode_ms=2000.0)
    spec = RelayObs(env.observation_space)
    obs, info = env.reset(seed=0)
    assert spec.feedback(obs) == (False, False, 0.0)
    for _ in range(300):
        obs, _, _, truncated, info = env.step(first_valid(obs, info))
        terminal, delivered, hop_ms = spec.feedback(obs)
        assert hop_ms == pytest.approx(info["hop_ms"], abs=1e-3)
        assert delivered == bool(info["delivered"])
        assert terminal == bool(info["delivered"] or info["dropped"])


def test_workload_classes_respect_regions():
    env = RelayEnv(load=400.0, episode_ms=1000.0)
    env.reset(seed=0)
    counts = np.zeros(3)
    for _ in range(2000):
        msg, _ = env.net.decision
        if msg.hops == 0:
            counts[msg.qclass] += 1
            same = env.net.region[msg.src] == env.net.region[msg.dst]
            assert msg.src != msg.dst
            if msg.qclass == 1:
                assert same
            if msg.qclass == 2:
                assert not same
        _, _, _, truncated, _ = env.step(first_valid(None, {"action_mask": env.net.mask()}))
        if truncated:
            env.reset()
    assert np.allclose(counts / counts.sum(), [0.6, 0.25, 0.15], atol=0.06)


def test_reward_terms_and_weights():
    weights = {
        "latency_weight": 2.0,
        "loss_penalty": 5.0,
        "price_weight": 0.5,
        "success_bonus": 7.0,
        "sla_penalty": 0.0,
        "cross_region_penalty": 0.0,
    }
    env = RelayEnv(episode_ms=3000.0, reward=weights)
    router = ShortestPathRouter(env.observation_space, env.action_space)
    obs, info = env.reset(seed=0)
    n_delivered = n_dropped = 0
    for _ in range(1500):
        obs, r, _, truncated, info = env.step(router.act(obs, False))
        expected = -2.0 * info["hop_ms"] / 1000.0 - 0.5 * info["cost"] + 7.0 * info["delivered"] - 5.0 * info["dropped"]
        assert r == pytest.approx(expected, abs=1e-9)
        n_delivered += info["delivered"]
        n_dropped += info["dropped"]
        if truncated:
            obs, info = env.reset()
    assert n_delivered > 50 and n_dropped > 0


def test_cross_region_violation_is_penalised():
    env = RelayEnv(episode_ms=4000.0, class_mix=[0.0, 1.0, 0.0], reward={"cross_region_penalty": 4.0})
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    violations = 0
    for _ in range(1500):
        msg, x = env.net.decision
        a = int(rng.choice(np.flatnonzero(info["action_mask"])))
        leaves = env.net.region[env.net.nbrs[x, a]] != msg.home_region
        obs, r, _, truncated, info = env.step(a)
        assert info["violation"] == float(leaves)
        assert info["r_region"] == -4.0 * leaves
        violations += leaves
        if truncated:
            obs, info = env.reset()
    assert violations > 20


def test_masked_slot_refuses_the_message():
    env = RelayEnv(episode_ms=1000.0)
    obs, info = env.reset(seed=0)
    empty = int(np.flatnonzero(info["action_mask"] == 0)[0])
    _, r, _, _, info = env.step(empty)
    assert info["refused"] == 1.0 and info["dropped"] == 1.0 and r == -3.0
    with pytest.raises(ValueError):
        env.step(env.max_degree)


def test_ttl_expiry_and_sla_penalty():
    tiny = {"best-effort": [30.0, 30.0], "regional": [30.0, 30.0], "backbone": [30.0, 30.0]}
    env = RelayEnv(episode_ms=2000.0, ttl_ms=tiny)
    _, infos, last = run_episode(env, first_valid, seed=0)
    assert sum(i["expired"] for i in infos) > 20
    assert last["delivery_ms_p95"] <= 30.0 + 1e-6
    env = RelayEnv(
        episode_ms=2000.0, reward={"sla_target_ms": {"best-effort": 10.0, "regional": 10.0, "backbone": 10.0}}
    )
    _, infos, _ = run_episode(env, first_valid, seed=0)
    sla = [i["r_sla"] for i in infos if i["delivered"]]
    assert sla and max(sla) < 0 and all(i["r_sla"] == 0 for i in infos if not i["delivered"])


def test_degradation_and_drift_change_link_features():
    env = RelayEnv(episode_ms=3000.0, degrade_at_ms=1000.0, degrade_rtt_factor=10.0, degrade_loss=0.3)
    env.reset(seed=0)
    i = env.net.degrade_index
    assert env.net.rtt_mult[i] == 1.0
    while env.now_ms < 1200.0:
        env.step(int(np.flatnonzero(env.net.mask())[0]))
    assert env.net.rtt_mult[i] == 10.0 and env.net.loss_add[i] == 0.3
    bc = nx.edge_betweenness_centrality(env.graph, weight="rtt_ms")
    assert tuple(env.net.edges[i]) == max(((min(e), max(e)) for e in bc), key=lambda e: bc.get(e, bc.get(e[::-1])))
    spec = RelayObs(env.observation_space)
    u = int(env.net.edges[i][0])
    while env.net.decision[1] != u:  # a decision at one end of the degraded link shows it in its features
        env.step(int(np.flatnonzero(env.net.mask())[0]))
    dec = spec.decode(env._observe())
    j = int(np.flatnonzero(dec.cand_ids == env.net.edges[i][1])[0])
    assert dec.feats[j, 0] * O.RTT_NORM_MS == pytest.approx(10.0 * env.net.base_rtt[i], rel=1e-5)
    assert dec.feats[j, 1] == pytest.approx(0.3 + env.net.base_loss[i], rel=1e-5)
    env = RelayEnv(episode_ms=3000.0, drift_sigma=0.2, drift_interval_ms=100.0)
    env.reset(seed=0)
    while env.now_ms < 2000.0:
        env.step(int(np.flatnonzero(env.net.mask())[0]))
    assert np.std(np.log(env.net.rtt_mult)) > 0.1


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"max_degree": 4}, "max_degree"),
        ({"load": 0.0}, "load"),
        ({"topology": "torus"}, "topology"),
        ({"reward": {"latency_weigth": 1.0}}, "latency_weigth"),
        ({"reward": {"loss_penalty": -1.0}}, "loss_penalty"),
        ({"class_mix": [1.0, 0.0]}, "class_mix"),
        ({"topology": "edges", "edges": [[0, 1], [2, 3]]}, "not connected"),
        ({"degrade_link": [0, 35]}, "degrade_link"),
    ],
)
def test_bad_config_is_a_one_line_error(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        RelayEnv(**kwargs)


def test_hydra_overrides_reach_the_env():
    import rlrun.config  # noqa: F401
    from conftest import compose
    from rlrun.build import build_env

    cfg = compose(
        [
            "env=relay",
            "agent=qrouting",
            "env.ttl_ms.best-effort=[100.0,200.0]",
            "env.load=77",
            "reward.success_bonus=5.0",
            "agent.deny=[3,4]",
            "agent.variant=boyan_littman",
        ]
    )
    env = build_env(cfg).unwrapped
    assert env.net.load == 77.0 and list(env.net.ttl_range[0]) == [100.0, 200.0]
    assert env.reward.success_bonus == 5.0
    assert list(cfg.agent.deny) == [3, 4]


def test_hydra_env_relay_selects_reward_relay():
    import rlrun.config  # noqa: F401  (registers the run schema the config tree names)
    from conftest import compose

    cfg = compose(["env=relay", "agent=qrouting"])
    assert cfg.reward.success_bonus == 2.0 and cfg.reward.loss_penalty == 3.0
    assert cfg.reward.latency_weight == 1.0 and cfg.reward.price_weight == 0.2
    from rlrun.build import build_agent, build_env

    env = build_env(cfg)
    assert env.unwrapped.reward.success_bonus == 2.0
    build_agent(cfg, env)
