"""env=relay: admission cap, decide_at=dequeue, message-id bookkeeping without wrap, shortest-path ties and
the Boyan-Littman grid, each checked against a count done by hand."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from rlrun.agents.qrouting import QRouting
from rlrun.agents.routing_baselines import ShortestPathRouter
from rlrun.envs.relay import RelayEnv
from rlrun.envs.relay import obs as O
from rlrun.envs.relay.network import Message, RelayNetwork
from rlrun.envs.relay.topology import BOYAN_LITTMAN_REMOVED
from rlrun.errors import ConfigError, SimulationLimitError
from rlrun.replay.buffer import Batch

LONG_TTL = {"best-effort": [1e6, 1e6], "regional": [1e6, 1e6], "backbone": [1e6, 1e6]}


class ScriptedNetwork(RelayNetwork):
    """A relay network whose messages arrive as scripted: (time ms, src, dst), then one far-off message that
    only serves to end the episode."""

    script: list[tuple[float, int, int]] = []

    def _arrivals(self, rng):
        t = 0.0
        for at, src, dst in [*self.script, (1e6, 0, 1)]:
            yield self.sim.timeout(at - t)
            t = at
            msg = Message(self._next_id, src, dst, 1.0, 0, 1e6, self.sim.now, 0)
            self._next_id += 1
            self._stats["offered"] += 1
            if self.max_in_flight is None or self._in_flight < self.max_in_flight:
                self._admit(msg)
            elif self.admission == "wait":
                self._backlog.append(msg)
            else:
                self._stats["rejected"] += 1


def line(**kwargs) -> RelayEnv:
    """Relays 0 - 1 - 2; each link takes 1 ms one way and each relay serves a message in 1 ms."""
    env = RelayEnv(
        topology="edges",
        edges=[[0, 1, 2.0, 0.0, 0.0, 1.0], [1, 2, 2.0, 0.0, 0.0, 1.0]],
        max_degree=3,
        service_overhead_ms=1.0,
        service_mbps=1e9,
        size_bytes=[1.0, 1.0],
        relay_drop_scale=0.0,
        ttl_ms=LONG_TTL,
        episode_ms=50.0,
        **kwargs,
    )
    env.net.__class__ = ScriptedNetwork  # the same network, its arrivals scripted
    env.net.script = [(0.0, 0, 2), (0.0, 0, 2), (0.0, 0, 2)]
    return env


def run_sp(env: RelayEnv) -> tuple[list[tuple[float, int]], list[dict], dict]:
    """Shortest-path routing through one episode: (decision time, relay) per step, infos, final info."""
    router = ShortestPathRouter(env.observation_space, env.action_space)
    obs, _ = env.reset(seed=0)
    decisions, infos = [], []
    while True:
        decisions.append((round(env.now_ms, 6), env.net.decision[1]))
        obs, _, _, truncated, info = env.step(router.act(obs, False))
        infos.append(info)
        if truncated:
            return decisions, infos, info


@pytest.mark.parametrize("decide_at", ["arrival", "dequeue"])
def test_admission_cap_rejects_on_a_line_by_hand(decide_at):
    """Three messages 0 -> 2 at t = 0, cap 2: the third is refused. A leaves 0 at 1, reaches 1 at 2, 2 at 4;
    B is served at 0 after A (1 to 2), reaches 1 at 3 and 2 at 5. Delivery times 4 and 5 in both modes;
    only the moment B's first hop is chosen differs: on arrival (t = 0) or at the queue head (t = 1)."""
    env = line(max_in_flight=2, decide_at=decide_at)
    decisions, infos, last = run_sp(env)
    first_b = 0.0 if decide_at == "arrival" else 1.0
    assert decisions == [(0.0, 0), (first_b, 0), (2.0, 1), (3.0, 1)]
    assert [i["hop_ms"] for i in infos] == pytest.approx([2.0, 3.0, 2.0, 2.0], abs=1e-4)
    assert last["messages"] == 2 and last["delivery_ratio"] == 1.0
    assert last["delivery_ms_mean"] == pytest.approx(4.5, abs=1e-4)
    assert last["rejected"] == 1 and last["rejected_ratio"] == 0.25  # of 4 offered (+ the episode-ender)
    assert max(i["in_flight"] for i in infos) <= 2


def test_admission_wait_holds_the_message_at_its_source():
    """As above with admission=wait: C waits at 0 until A is delivered at t = 4, then takes 4 ms more,
    so its delivery time (from its arrival at 0) is 8 and nothing is rejected."""
    env = line(max_in_flight=2, admission="wait", decide_at="dequeue")
    decisions, infos, last = run_sp(env)
    assert decisions == [(0.0, 0), (1.0, 0), (2.0, 1), (3.0, 1), (4.0, 0), (6.0, 1)]
    assert last["messages"] == 3 and last["rejected"] == 0
    assert last["delivery_ms_mean"] == pytest.approx((4 + 5 + 8) / 3, abs=1e-4)
    assert infos[0]["waiting"] == 1.0 and infos[-1]["waiting"] == 0.0


def test_dequeue_decides_with_the_queue_as_it_is_at_the_head():
    """Two messages 1 -> 0 and 1 -> 2 behind three 1 -> 0 ones: with decide_at=dequeue a relay serves one
    message at a time, so its decisions are at least one service time apart."""
    env = line(decide_at="dequeue")
    env.net.script = [(0.0, 1, 0)] * 3 + [(0.0, 1, 2)] * 2
    decisions, _, last = run_sp(env)
    assert [t for t, _ in decisions] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert last["delivery_ms_mean"] == pytest.approx(np.mean([2, 3, 4, 5, 6]), abs=1e-4)


def test_five_thousand_messages_in_flight_lose_no_update():
    """A line of 4 relays, links of 3 s one way and 4,000 messages/s: over 5,000 multi-hop messages are
    between relays at once. Every message that reaches its second relay must find its first hop's pending
    record and complete it."""
    env = RelayEnv(
        topology="edges",
        edges=[[0, 1, 6000.0, 0.0, 0.0, 1.0], [1, 2, 6000.0, 0.0, 0.0, 1.0], [2, 3, 6000.0, 0.0, 0.0, 1.0]],
        max_degree=3,
        load=4000.0,
        size_bytes=[1000.0, 1000.0],
        service_overhead_ms=0.0,
        service_mbps=1e6,
        relay_drop_scale=0.0,
        ttl_ms=LONG_TTL,
        episode_ms=3600.0,
    )
    agent = QRouting(env.observation_space, env.action_space, eps_start=0.0, eps_end=0.0)
    completed = []
    original = agent.learner.moved_on  # one call per hop whose message reached its next decision
    agent.learner.moved_on = lambda p, nxt, cands, feats: completed.append(True) or original(p, nxt, cands, feats)
    obs, _ = env.reset(seed=0)
    second_hops = most_pending = 0
    while True:
        dec = agent.spec.decode(obs)
        second_hops += dec.prev >= 0
        a = agent.act(obs, True)
        nxt, r, _, truncated, info = env.step(a)
        agent.update(Batch.single(obs, [a], r, nxt, terminated=False, discount=0.8))
        most_pending = max(most_pending, len(agent.pending))
        obs = nxt
        if truncated:
            break
    assert info["in_flight"] > 5000 and most_pending > 5000
    assert second_hops > 1000 and sum(completed) == second_hops


def test_in_flight_ids_never_wrap_silently(monkeypatch):
    monkeypatch.setattr(O, "MSG_ID_MOD", 200)
    env = RelayEnv(
        load=400.0, episode_ms=3000.0, ttl_ms=LONG_TTL, topology="edges", max_degree=2, edges=[[0, 1, 2000.0]]
    )
    env.reset(seed=0)
    with pytest.raises(SimulationLimitError, match="in flight"):
        for _ in range(2000):
            env.step(0)


def test_boyan_littman_grid_and_its_shortest_paths_by_hand():
    env = RelayEnv(topology="boyan_littman", sp_ties="first")
    assert env.net.n == 36 and len(env.net.edges) == 50 and len(BOYAN_LITTMAN_REMOVED) == 10
    g = env.graph
    assert all(g.nodes[i]["service_ms"] == 1.0 for i in g.nodes)
    left = [18, 19, 20, 24, 25, 26, 30, 31, 32]
    right = [21, 22, 23, 27, 28, 29, 33, 34, 35]

    def path(s: int, d: int) -> list[int]:
        out = [s]
        while out[-1] != d:
            out.append(int(np.flatnonzero(env.net.on_sp[out[-1], d])[0]))
        return out

    through = {}
    for s in range(36):
        for d in range(36):
            if s != d:
                p = path(s, d)
                for u, v in zip(p[:-1], p[1:], strict=True):
                    through[(min(u, v), max(u, v))] = through.get((min(u, v), max(u, v)), 0) + 1
    # by hand: the lower blocks meet only through row 2, and the ring over the top is 4 hops longer, so all
    # 9 x 9 x 2 = 162 ordered pairs between them cross 14-15; 24 -> 29 is 9 hops; 0 -> 5 runs along row 0
    assert all(14 in path(s, d) and 15 in path(s, d) for s in left for d in right)
    assert all(14 in path(d, s) and 15 in path(d, s) for s in left for d in right)
    assert through[(14, 15)] >= 162 and through[(14, 15)] == max(through.values())
    assert len(path(24, 29)) - 1 == 9 and path(0, 5) == [0, 1, 2, 3, 4, 5]
    assert nx.shortest_path_length(g, 24, 29) == 9
    # zero-load delay feature at 24 towards 29: 1 tick of service + 1 of link, then 2 ticks per hop
    obs_feats = env._static[0, 24, 29, : env.net.deg[24]]
    assert list(env.net.nbrs[24, :3]) == [18, 25, 30]  # 18 and 25 are 8 hops from 29, 30 is 10
    assert obs_feats[:, O.CANDIDATE_FEATURES.index("delay")] * O.RTT_NORM_MS == pytest.approx([18.0, 18.0, 22.0])


def test_sp_ties_all_marks_every_equal_cost_next_hop():
    first = RelayEnv(topology="boyan_littman", sp_ties="first")
    every = RelayEnv(topology="boyan_littman", sp_ties="all")
    rand = RelayEnv(topology="boyan_littman", sp_ties="random")
    # 24 -> 14: via 18 or 25, both 4 hops more
    every, first, rand = every.net.on_sp, first.net.on_sp, rand.net.on_sp
    assert every[24, 14].sum() == 2 and first[24, 14].sum() == 1 and rand[24, 14].sum() == 1
    assert (every >= first).all() and (every >= rand).all()
    assert (first != rand).any()  # the draw does not just repeat networkx's choice


def test_reputations_for_an_edge_list():
    env = RelayEnv(topology="edges", edges=[[0, 1], [1, 2]], reputations=[1.0, 0.5, 0.9], max_degree=3)
    assert list(env.net.reputation) == [1.0, 0.5, 0.9]
    assert env.net.relay_drop[1] == pytest.approx(0.5 * env.net.relay_drop_scale)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"decide_at": "departure"}, "decide_at"),
        ({"admission": "queue"}, "admission"),
        ({"sp_ties": "lowest"}, "sp_ties"),
        ({"topology": "edges", "edges": [[0, 1]], "reputations": [1.0]}, "reputations"),
        ({"topology": "edges", "edges": [[0, 1]], "reputations": [1.0, 1.5]}, "reputations"),
        ({"reputations": [1.0] * 36}, "reputations"),
    ],
)
def test_bad_relay_admission_config_is_one_line(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        RelayEnv(**kwargs)
