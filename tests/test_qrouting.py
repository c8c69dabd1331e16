"""agent=qrouting on env=relay: the seed's update rule, Boyan-Littman's, safety filters, persistence, learning.

The quality bar of the issue is in the slow tests at the end (`make test-slow`): at high load Q-routing
spreads traffic and lowers mean delivery time against shortest path; after a link degrades it recovers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlrun.agents.qrouting import QRouting, Workload
from rlrun.agents.routing_baselines import RandomNeighbourRouter, ShortestPathRouter
from rlrun.envs.relay import RelayEnv
from rlrun.errors import CheckpointError, IncompatibleSpaceError
from rlrun.replay.buffer import Batch


def batch1(obs, action, reward, next_obs) -> Batch:
    """What the trainer hands an online agent: one transition (rlrun.trainer.Trainer._single)."""
    return Batch.single(obs, [action], reward, next_obs, terminated=False, discount=0.8)


def episode(env: RelayEnv, agent, *, seed: int, learn: bool, on_step=None) -> dict:
    """One episode; learning agents get the trainer's per-transition update. Returns the final info."""
    obs, info = env.reset(seed=seed)
    while True:
        action = agent.act(obs, learn)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(obs, action, reward, next_obs, info)
        if learn:
            agent.update(batch1(obs, action, reward, next_obs))
        obs = next_obs
        if terminated or truncated:
            if learn:
                agent.on_episode_end()
            return info


def make(env: RelayEnv, **kwargs) -> QRouting:
    return QRouting(env.observation_space, env.action_space, **kwargs)


# ---- update rules ---------------------------------------------------------------------------------------


def follow_one_message(env: RelayEnv, agent: QRouting, check) -> None:
    """Drive the env with `agent` and call check(first_hop_record, s_prime_obs) when the first message that
    survives its first hop reaches its next decision (before the agent learns from that decision)."""
    spec = agent.spec
    obs, _ = env.reset(seed=5)
    first = None
    for _ in range(5000):
        dec = spec.decode(obs)
        if first is not None and dec.msg == first["msg"] and dec.node == first["hop"]:
            check(first, obs)
            return
        action = agent.act(obs, True)
        next_obs, reward, _, _, info = env.step(action)
        terminal = info["delivered"] or info["dropped"]
        if first is None and not terminal:
            j = int(np.flatnonzero(dec.slots == action)[0])
            first = {
                "msg": dec.msg,
                "node": dec.node,
                "dst": dec.dst,
                "hop": int(dec.cand_ids[j]),
                "reward": reward,
                "hop_ms": info["hop_ms"],
                "prior": float(agent.learner.prior(dec.feats[j : j + 1])[0]),
            }
        agent.update(batch1(obs, action, reward, next_obs))
        obs = next_obs
    raise AssertionError("the message never reached its next relay")


def test_tabular_update_is_the_seeds_rule():
    env = RelayEnv(load=30.0, episode_ms=5000.0)
    agent = make(env, alpha=0.3, gamma=0.8, eps_start=0.0, eps_end=0.0)

    def check(first, s_prime):
        key = (first["node"], first["dst"], 0)
        assert agent.learner.q.get(key, {}).get(first["hop"]) is None  # still pending: s' not seen yet
        nxt = agent.spec.decode(s_prime)
        cands, feats = agent._allowed_of(nxt)
        q_next = agent.learner.scores(nxt.node, nxt.dst, cands, feats, nxt.workload, 0, False).max()
        agent.update(batch1(s_prime, agent.act(s_prime, False), 0.0, s_prime))
        expected = 0.7 * first["prior"] + 0.3 * (first["reward"] + 0.8 * q_next)
        assert agent.learner.q[key][first["hop"]][0] == pytest.approx(expected, rel=1e-6)

    follow_one_message(env, agent, check)


def test_boyan_littman_update_uses_the_next_relays_estimate():
    env = RelayEnv(load=30.0, episode_ms=5000.0)
    agent = make(env, variant="boyan_littman", alpha=0.5, eps_start=0.0, eps_end=0.0)

    def check(first, s_prime):
        idx = (0, first["node"], first["dst"], first["hop"])
        assert np.isnan(agent.learner.T[idx])
        nxt = agent.spec.decode(s_prime)
        cands, feats = agent._allowed_of(nxt)
        t_next = -agent.learner.scores(nxt.node, nxt.dst, cands, feats, nxt.workload, 0, False).max()  # min_z Q_y(d, z)
        assert nxt.prev == first["node"] and first["node"] not in cands  # split horizon
        agent.update(batch1(s_prime, agent.act(s_prime, False), 0.0, s_prime))
        expected = first["prior"] + 0.5 * (first["hop_ms"] + t_next - first["prior"])
        assert agent.learner.T[idx] == pytest.approx(expected, rel=1e-6)
        assert agent.learner.T_prior[idx] == pytest.approx(first["prior"])

    follow_one_message(env, agent, check)


def test_terminal_hops_use_the_reward_alone():
    env = RelayEnv(load=30.0, episode_ms=3000.0)
    agent = make(env, alpha=1.0, eps_start=0.0, eps_end=0.0)
    delivered = []

    def record(obs, action, reward, next_obs, info):
        if info["delivered"]:
            dec = agent.spec.decode(obs)
            hop = int(dec.cand_ids[np.flatnonzero(dec.slots == action)[0]])
            delivered.append(((dec.node, dec.dst, 0), hop, reward))

    episode(env, agent, seed=0, learn=True, on_step=record)
    assert len(delivered) > 20
    key, hop, reward = delivered[-1]
    assert hop == key[1] and agent.learner.q[key][hop][0] == pytest.approx(reward)  # alpha = 1: Q = r exactly


# ---- the seed's API and safety ---------------------------------------------------------------------------


def test_select_next_hop_api():
    env = RelayEnv()
    agent = make(env, deny=[3])
    feats = np.zeros((3, 11))
    feats[:, 4] = [0.9, 0.5, 0.9]  # reputation
    feats[:, 5] = [1, 1, 0]  # regionMatch
    wl = Workload("best-effort", 5000.0, 0.2, region_hint=0)
    hop, scores = agent.select_next_hop(0, 5, [1, 3, 6], wl, feats, explore=False)
    assert set(scores) == {1, 6} and hop == 1  # 3 is denied; 1 has the best cold-start prior
    assert scores[1] > scores[6]
    regional = Workload("regional", 5000.0, 0.2, region_hint=0)
    hop, scores = agent.select_next_hop(0, 5, [6], regional, feats[2:], explore=True)
    assert hop is None and scores == {}  # the only candidate leaves the region: refuse, never violate


def test_allow_deny_and_regions_are_never_violated_even_when_exploring():
    env = RelayEnv(load=150.0, episode_ms=3000.0)
    deny = [14, 21]
    agent = make(env, eps_start=1.0, eps_end=1.0, deny=deny)  # every decision is a random one
    chosen, violations, refused = [], [], []

    def record(obs, action, reward, next_obs, info):
        dec = agent.spec.decode(obs)
        hit = np.flatnonzero(dec.slots == action)
        chosen.append(int(dec.cand_ids[hit[0]]) if len(hit) else -1)
        violations.append(info["violation"])
        refused.append(info["refused"])

    episode(env, agent, seed=1, learn=True, on_step=record)
    assert len(chosen) > 1000
    assert not set(chosen) & set(deny)
    assert sum(violations) == 0
    # the random-neighbour floor does break the region rule on the same traffic
    base = RandomNeighbourRouter(env.observation_space, env.action_space)
    base_violations = []
    episode(env, base, seed=1, learn=False, on_step=lambda *a: base_violations.append(a[-1]["violation"]))
    assert sum(base_violations) > 10
    # deny every neighbour of relay 0: messages there are refused, never forwarded
    agent = make(env, deny=[int(n) for n in env.net.nbrs[0, : env.net.deg[0]]])
    at_zero = []
    episode(
        env,
        agent,
        seed=2,
        learn=False,
        on_step=lambda o, a, r, n, i: at_zero.append(i["refused"]) if agent.spec.decode(o).node == 0 else None,
    )
    assert at_zero and all(at_zero)
    allow = [int(n) for n in range(env.net.n) if n % 2 == 0]
    agent = make(env, allow=allow, eps_start=1.0, eps_end=1.0)
    picks = []
    episode(env, agent, seed=3, learn=False, on_step=lambda o, a, r, n, i: picks.append((agent.spec.decode(o), a)))
    forwarded = [int(d.cand_ids[np.flatnonzero(d.slots == a)[0]]) for d, a in picks if a in d.slots]
    assert forwarded and set(forwarded) <= set(allow)


def test_pooled_state_encoding_keys_and_learning():
    """The seed's pooled (mean/min) state, quantised, behind the relay and destination."""
    env = RelayEnv(load=50.0, episode_ms=5000.0)
    agent = make(env, state_encoding="pooled", eps_start=0.05, eps_decay=0.9999)
    for ep in range(2):
        episode(env, agent, seed=ep, learn=True)
    assert agent.learner.q and all(len(k) == 3 + 12 for k in agent.learner.q)
    result = episode(env, agent, seed=100, learn=False)
    assert result["delivery_ratio"] > 0.95


def test_epsilon_decays_per_region():
    env = RelayEnv(load=100.0, episode_ms=2000.0)
    agent = make(env, eps_decay=0.999)
    episode(env, agent, seed=0, learn=True)
    assert set(agent.epsilon) == set(np.unique(env.net.region).tolist())
    assert all(0.02 <= e < 0.2 for e in agent.epsilon.values())
    assert len(set(round(e, 6) for e in agent.epsilon.values())) > 1  # each region keeps its own count
    obs, _ = env.reset(seed=1)
    out = agent.update(batch1(obs, agent.act(obs, True), 0.0, obs))
    assert 0.02 <= out["train/epsilon"] < 0.2 and "loss/q_td" in out  # logged to TensorBoard by the trainer


def test_needs_the_relay_observation():
    with pytest.raises(IncompatibleSpaceError, match="relay"):
        QRouting(spaces.Box(-1, 1, (10,)), spaces.Discrete(3))


# ---- persistence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["tabular", "boyan_littman", "linear", "bandit"])
def test_state_dict_round_trip_and_tables_per_region(tmp_path, variant):
    env = RelayEnv(load=100.0, episode_ms=2000.0)
    agent = make(env, variant=variant, per_class_heads=variant == "tabular")
    episode(env, agent, seed=0, learn=True)
    state = agent.state_dict()
    torch.save(state, tmp_path / "agent.pt")
    clone = make(env, variant=variant, per_class_heads=variant == "tabular")
    clone.load_state_dict(torch.load(tmp_path / "agent.pt", weights_only=True))
    obs, _ = env.reset(seed=9)
    for _ in range(200):
        assert clone.act(obs, False) == agent.act(obs, False)
        obs, *_ = env.step(agent.act(obs, False))
    if variant == "tabular":
        assert clone.learner.q.keys() == agent.learner.q.keys() and len(agent.learner.q) > 100
        assert {k[2] for k in agent.learner.q} == {0, 1, 2}  # per-qClass heads
    tables = agent.q_tables()
    if variant in ("tabular", "boyan_littman"):
        assert set(tables["regions"]) == set(np.unique(env.net.region).tolist())


def test_tables_load_into_a_new_run_by_region(tmp_path):
    env = RelayEnv(load=100.0, episode_ms=2000.0)
    agent = make(env)
    episode(env, agent, seed=0, learn=True)
    agent.save_tables(tmp_path / "tables.pt")
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    torch.save({"agent": agent.state_dict(), "trainer": {}}, run / "last.pt")
    full = make(env, init_from=str(tmp_path / "run"))
    assert full.learner.q.keys() == agent.learner.q.keys()
    only0 = make(env, init_from=str(tmp_path / "tables.pt"), init_regions=[0])
    assert only0.learner.q and all(env.net.region[k[0]] == 0 for k in only0.learner.q)
    assert len(only0.learner.q) < len(agent.learner.q)
    with pytest.raises(CheckpointError, match="variant"):
        make(env, variant="boyan_littman", init_from=str(tmp_path / "tables.pt"))
    with pytest.raises(CheckpointError):
        make(env, init_from=str(tmp_path / "missing.pt"))


def test_table_decay_pulls_stale_entries_to_their_prior():
    env = RelayEnv(load=100.0, episode_ms=2000.0)
    agent = make(env, table_decay=0.5)
    episode(env, agent, seed=0, learn=True)  # on_episode_end: nothing is stale yet (all from this episode)
    before = {(k, h): list(v) for k, row in agent.learner.q.items() for h, v in row.items()}
    agent.on_episode_end()  # a second boundary without updates: every entry is stale once
    for (k, h), (q, prior, _) in before.items():
        assert agent.learner.q[k][h][0] == pytest.approx(q + 0.5 * (prior - q))


# ---- learning --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["tabular", "boyan_littman"])
def test_low_load_delivers_like_shortest_path(variant):
    """(a) of the quality bar: with no congestion there is nothing to gain; Q-routing must not lose either."""
    env = RelayEnv(load=50.0, episode_ms=5000.0)
    sp = episode(env, ShortestPathRouter(env.observation_space, env.action_space), seed=100, learn=False)
    agent = make(env, variant=variant, eps_start=0.05, eps_decay=0.9999)
    for ep in range(3):
        episode(env, agent, seed=ep, learn=True)
    tables = agent.learner
    learned = np.isfinite(tables.T).sum() if variant == "boyan_littman" else sum(len(r) for r in tables.q.values())
    assert learned > 100  # it learned: the cold-start priors alone already route like shortest path
    q = episode(env, agent, seed=100, learn=False)
    assert q["delivery_ratio"] >= sp["delivery_ratio"] - 0.02
    assert q["delivery_ms_mean"] == pytest.approx(sp["delivery_ms_mean"], rel=0.12)


def test_trainer_drives_qrouting_end_to_end(tmp_path):
    import rlrun.config  # noqa: F401  (registers the run schema)
    from conftest import compose
    from rlrun.trainer import Trainer

    cfg = compose(
        [
            "env=relay",
            "agent=qrouting",
            "env.load=60",
            "env.episode_ms=2000",
            "total_steps=1500",
            "eval_every=0",
            "eval_episodes=1",
            "checkpoint_every=0",
            "progress=false",
            "plots=false",
            "baseline=shortest_path",
        ]
    )
    summary = Trainer(cfg, tmp_path).run()
    final = summary["final"]
    assert final["metrics"]["delivery_ratio"] > 0.9
    assert final["baseline"]["agent"] == "shortest_path"
    resumed = make(RelayEnv(load=60.0), init_from=str(tmp_path))
    assert len(resumed.learner.q) > 50


# ---- the quality bar (slow) ------------------------------------------------------------------------------


def train_then_eval(env: RelayEnv, agent, episodes: int, eval_seed: int = 100) -> dict:
    for ep in range(episodes):
        episode(env, agent, seed=ep, learn=True)
    return episode(env, agent, seed=eval_seed, learn=False)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["tabular", "boyan_littman"])
def test_high_load_q_routing_beats_shortest_path(variant):
    """(b): at 380 msg/s shortest paths funnel cross traffic over the short bridge and queue there;
    Q-routing learns to use the long bridge as well and cuts mean delivery time by more than half."""
    env = RelayEnv(load=380.0, episode_ms=10000.0)
    sp = episode(env, ShortestPathRouter(env.observation_space, env.action_space), seed=100, learn=False)
    q = train_then_eval(env, make(env, variant=variant, eps_start=0.05, eps_decay=0.9999), episodes=5)
    assert q["delivery_ms_mean"] < 0.5 * sp["delivery_ms_mean"]
    assert q["delivery_ms_p95"] < 0.5 * sp["delivery_ms_p95"]
    assert q["delivery_ratio"] >= sp["delivery_ratio"] - 0.02


def windowed_ratio(env: RelayEnv, agent, learn: bool, seed: int, edges: list[float]) -> list[float]:
    """Delivery ratio of the decisions taken in each window of simulated time."""
    rec = []
    obs, _ = env.reset(seed=seed)
    while True:
        t = env.now_ms
        action = agent.act(obs, learn)
        next_obs, reward, _, truncated, info = env.step(action)
        if learn:
            agent.update(batch1(obs, action, reward, next_obs))
        rec.append((t, info["delivered"], info["dropped"]))
        obs = next_obs
        if truncated:
            break
    rec = np.array(rec)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (rec[:, 0] >= lo) & (rec[:, 0] < hi)
        out.append(rec[m, 1].sum() / (rec[m, 1].sum() + rec[m, 2].sum()))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["tabular", "boyan_littman", "bandit"])
def test_recovers_after_a_link_degrades(variant):
    """(c): link 15-21 (on many shortest paths) gets 10x RTT and 30% loss at t = 5 s. Static shortest path
    keeps losing messages on it; online Q-routing reroutes and its delivery ratio over the last 10 s is back
    near its pre-degradation level and clearly above shortest path's."""
    healthy = RelayEnv(load=150.0, episode_ms=10000.0)
    degraded = RelayEnv(
        load=150.0,
        episode_ms=25000.0,
        degrade_at_ms=5000.0,
        degrade_link=[15, 21],
        degrade_rtt_factor=10.0,
        degrade_loss=0.3,
    )
    edges = [0.0, 5000.0, 7000.0, 15000.0, 25000.0]
    sp = windowed_ratio(
        degraded, ShortestPathRouter(degraded.observation_space, degraded.action_space), False, 100, edges
    )
    agent = make(healthy, variant=variant, eps_start=0.05)
    for ep in range(3):
        episode(healthy, agent, seed=ep, learn=True)
    q = windowed_ratio(degraded, agent, True, 100, edges)
    assert sp[0] - sp[-1] > 0.04  # the degradation hurts static routing for good
    assert q[-1] > sp[-1] + 0.025
    assert q[-1] > q[0] - 0.03
