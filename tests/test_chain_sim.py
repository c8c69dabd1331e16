"""The SimPy chain core reproduces known figures: the stale-rate formula, monotone costs of block size and
interval, no forks without a network, transaction conservation, SimBlock's calibration."""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np
import pytest

from rlrun.envs.blockchain import BlockchainEnv
from rlrun.envs.chain import (
    Network,
    NetworkSpec,
    PowChain,
    Transport,
    TxWorkload,
    TxWorkloadSpec,
    make_hashpower,
    slot_plan,
    strategy_plan,
)
from rlrun.envs.chain.gossip import slot_of_rank
from rlrun.envs.chain.mempool import CONFIRMED, EVICTED, PENDING, Mempool, fee_keys, key_ids
from rlrun.envs.chain.metrics import chain_summary
from rlrun.envs.chain.pow import NORMAL, _Wake
from rlrun.envs.chain.protocol import ProtocolSpec
from rlrun.envs.chain.tables import LATENCY_MS, POOL_HASHPOWER, REGIONS
from rlrun.errors import ConfigError


def make_sim(nodes: int = 40, *, fixed: float | None = None, rate: float = 0.0, size_mean: float = 400.0,
             hashpower: list[float] | None = None, outbound: int = 8, seed: int = 0,
             mempool_mb: float = 300.0, cls: type[PowChain] = PowChain, protocol: ProtocolSpec | None = None,
             **net_kw) -> PowChain:
    rng = np.random.default_rng(seed)
    spec = NetworkSpec.from_config({"nodes": nodes, "outbound": outbound, "fixed_delay_s": fixed, **net_kw})
    net = Network(spec, rng)
    tx = TxWorkloadSpec.from_config({"rate_tps": rate, "size_mean_bytes": size_mean,
                                     "mempool_max_mb": mempool_mb})
    hp = make_hashpower(nodes, hashpower or POOL_HASHPOWER, rng)
    return cls(net, TxWorkload(tx, nodes, rng.spawn(1)[0]), hp, rng, mempool_max_bytes=mempool_mb * 1e6,
               protocol=protocol)


def run_static(sim: PowChain, block_mb: float, interval: float, blocks: int, window_blocks: int = 10) -> dict:
    sim.configure(block_mb * 1e6, interval)
    sim.advance(blocks * interval, window_blocks * interval)
    return chain_summary(sim)


# ---- the textbook stale rate ----------------------------------------------------------------------------
# With every block reaching every node exactly d after it is found and Poisson mining of mean interval T
# spread over many miners, a main-chain block is contested iff another block is found within d of it:
# P = 1 - exp(-d/T) per main-chain height (the "fork rate"). Blocks found within d of a main-chain block are
# stale, so main blocks form a renewal process with gaps d + Exp(T) and the stale share of all blocks is
# exactly d/(T + d), which equals 1 - exp(-d/T) to first order (d/T = 0.02: 0.0196 vs 0.0198) and is
# smaller when d/T is large (0.5: 0.333 vs 0.393). Both are checked; 100 equal miners leave a ~1% bias
# (a miner extends its own block at once) that is inside the tolerances.

def _se(p: float, n: float) -> float:
    return math.sqrt(p * (1.0 - p) / n)


def test_stale_rate_matches_formula_when_delay_is_small():
    d, T = 12.0, 600.0
    s = run_static(make_sim(100, fixed=d, hashpower=[1.0] * 100, seed=1), 1.0, T, blocks=8000)
    expected = 1.0 - math.exp(-d / T)
    assert s["blocks"] > 7000
    assert abs(s["stale_rate"] - expected) < 3.5 * _se(expected, s["blocks"])
    assert abs(s["fork_rate"] - expected) < 3.5 * _se(expected, s["main_chain"])


def test_stale_rate_matches_formula_when_delay_is_half_the_interval():
    d, T = 300.0, 600.0
    s = run_static(make_sim(100, fixed=d, hashpower=[1.0] * 100, seed=2), 1.0, T, blocks=4000)
    fork = 1.0 - math.exp(-d / T)
    stale = d / (T + d)
    assert abs(s["fork_rate"] - fork) < 3.5 * _se(fork, s["main_chain"])
    assert abs(s["stale_rate"] - stale) < 3.5 * _se(stale, s["blocks"])
    assert s["stale_rate"] < fork - 0.03  # the two quantities really differ in this regime


def test_single_node_never_forks():
    sim = make_sim(1, outbound=0, rate=5.0, hashpower=[1.0], seed=3)
    s = run_static(sim, 0.01, 1.0, blocks=2000)
    assert s["blocks"] > 1800
    assert s["stale"] == 0 and s["main_chain"] == s["blocks"]
    assert sim.height[1:] == list(range(1, sim.n_blocks + 1))
    assert s["prop_time_p90"] == 0.0  # the only node has its block at once


# ---- costs of block size and interval (full protocol) ---------------------------------------------------

def _full_blocks_sim(seed: int) -> PowChain:
    # 20 kB transactions at 10 tx/s = 200 kB/s of demand: every block below is full
    return make_sim(40, rate=10.0, size_mean=20_000.0, seed=seed)


def test_stale_rate_rises_with_block_size():
    rates = [run_static(_full_blocks_sim(4), mb, 20.0, blocks=300)["stale_rate"] for mb in (0.05, 0.5, 2.0)]
    assert rates[0] < rates[1] < rates[2], rates
    assert rates[2] > rates[0] + 0.1, rates


def test_stale_rate_falls_with_longer_intervals():
    rates = [run_static(_full_blocks_sim(5), 1.0, T, blocks=300)["stale_rate"] for T in (5.0, 20.0, 80.0)]
    assert rates[0] > rates[1] > rates[2], rates
    assert rates[0] > rates[2] + 0.1, rates


def test_bitcoin_like_defaults_propagate_in_seconds_with_rare_forks():
    """100 nodes, 1 MB full blocks every 600 s: measured Bitcoin (2019) saw ~0.2-0.5% stale blocks and
    propagation to most nodes within seconds; the simulator must be in that range, not minutes."""
    sim = make_sim(100, rate=10.0, seed=6)
    s = run_static(sim, 1.0, 600.0, blocks=60)
    assert s["reached_p90"] == 1.0
    assert 0.5 < s["prop_time_p50"] < 15.0 and s["prop_time_p50"] < s["prop_time_p90"] < 30.0
    assert s["stale_rate"] < 0.05
    sizes = [sim.size[b] for b in sim.canon[5:]]  # after the mempool has filled up
    assert min(sizes) > 0.95e6 and max(sizes) <= 1e6  # full, never above the limit


# ---- transactions ---------------------------------------------------------------------------------------

def _check_conservation(sim: PowChain) -> dict[str, float]:
    mp = sim.mempool
    now = sim.now
    counts = mp.counts(now)
    assert counts == pytest.approx(mp.recount(now))  # running totals agree with a full scan
    created, confirmed, pending, evicted = (counts[k] for k in ("created", "confirmed", "pending", "evicted"))
    assert created == confirmed + pending + evicted
    in_chain = np.concatenate([sim.txs[b] for b in sim.canon[1:]])
    assert len(np.unique(in_chain)) == len(in_chain), "a transaction was confirmed twice"
    st = mp.status[: mp.n]
    assert set(np.flatnonzero(st == CONFIRMED)) == set(in_chain.tolist())
    for b in sim.canon[1:]:
        assert np.all(mp.t_create[sim.txs[b]] <= sim.t_found[b])  # nothing confirmed before it existed
    assert np.all(st[np.flatnonzero(mp.t_create[: mp.n] > now)] == PENDING)
    return counts


def test_transactions_are_conserved_through_forks_and_reorgs():
    sim = make_sim(30, rate=20.0, seed=7)
    run_static(sim, 0.2, 3.0, blocks=600, window_blocks=20)  # 3 s blocks: many forks
    s = chain_summary(sim)
    assert s["stale"] > 20 and sim.reorgs > 5  # the reorg path was exercised
    counts = _check_conservation(sim)
    assert counts["evicted"] == 0
    assert counts["confirmed"] > 0.8 * counts["created"]


def test_full_mempool_evicts_lowest_fees_and_still_conserves():
    sim = make_sim(20, rate=50.0, seed=8, mempool_mb=0.5)  # 20 kB/s of demand, 10 kB/s of capacity
    run_static(sim, 0.1, 10.0, blocks=200)
    counts = _check_conservation(sim)
    assert counts["evicted"] > 0 and counts["pending_bytes"] <= 0.5e6 + 20 * 10.0 * 50 * 1000
    mp = sim.mempool
    fee = mp.fee[: mp.n]
    created = mp.t_create[: mp.n] <= sim.now
    assert np.median(fee[mp.status[: mp.n] == EVICTED]) < np.median(fee[created])


def test_fee_keys_sort_by_fee_highest_first_then_by_id():
    rng = np.random.default_rng(30)
    for n in (0, 1, 7, 2000):
        fee = rng.lognormal(0.0, 1.0, n).astype(np.float32)
        fee[: n // 3] = 1.5  # ties keep id order
        rng.shuffle(fee)
        keys = np.sort(fee_keys(fee, np.arange(n)))
        assert np.array_equal(key_ids(keys), np.argsort(-fee, kind="stable"))


def _transactions(rng: np.random.Generator, n: int, t_end: float) -> tuple[np.ndarray, ...]:
    """(creation times, sizes, fee rates with many ties, origins among 10 nodes) of n transactions, and a
    miner's delays from those nodes."""
    t = np.sort(rng.uniform(0.0, t_end, n))
    size = rng.integers(100, 1000, n).astype(np.int32)
    fee = rng.lognormal(0.0, 1.0, n).astype(np.float32)
    fee[::7] = 2.0
    origin = rng.integers(0, 10, n).astype(np.int32)
    return t, size, fee, origin, rng.uniform(0.0, 5.0, 10)


def test_templates_are_the_highest_fee_visible_pending_transactions():
    """The pool (sorted keys, filled as transactions are created, confirmed entries dropped lazily) gives
    the same templates as sorting every visible pending transaction by fee rate, ties in id order."""
    n = 6000
    t, size, fee, origin, delay = _transactions(np.random.default_rng(31), n, 1000.0)
    mp = Mempool(1e9)
    half = n // 2  # added in two windows, as the env adds its steps
    mp.add(t[:half], size[:half], fee[:half], origin[:half])
    for now in (100.0, 100.5, 400.0, 450.0, 600.0, 601.0, 900.0, 1000.0):
        if now > t[half - 1] and mp.n == half:
            mp.add(t[half:], size[half:], fee[half:], origin[half:])
        ids = mp.select(delay, now, 60_000)
        visible = np.flatnonzero((mp.status[: mp.n] == PENDING) & (t[: mp.n] + delay[origin[: mp.n]] <= now))
        ranked = visible[np.lexsort((visible, -fee[visible]))]
        expected = ranked[: int(np.searchsorted(np.cumsum(size[ranked]), 60_000, side="right"))]
        assert len(expected) > 20 and ids.tolist() == expected.tolist()
        mp.confirm(ids[: len(ids) // 2])  # the rest stays pending: it must come back next time


def test_templates_of_a_miner_off_the_canonical_chain():
    """A miner whose tip is off the canonical chain: its template leaves out the transactions of its own blocks
    (`exclude`) and may take those of canonical blocks its chain lacks (`extra`) and those a reorg made pending
    again, each once, highest fee rate first, ties in id order."""
    rng = np.random.default_rng(32)
    n = 3000
    t, size, fee, origin, delay = _transactions(rng, n, 500.0)
    mp = Mempool(1e9)
    mp.add(t, size, fee, origin)
    first = mp.select(delay, 200.0, 150_000)
    mp.confirm(first)  # a canonical block
    mp.unconfirm(first[::3])  # a reorg detached the block holding a third of them: pending again
    mp.confirm(first[::3][::2])  # and the new canonical block holds half of those
    extra = first[1::4]  # canonical transactions the miner's chain lacks (some confirmed, some pending again)
    pending = np.flatnonzero(mp.status[:n] == PENDING)
    exclude = rng.choice(pending, 200, replace=False)  # in the miner's own blocks
    for now, max_bytes in ((300.0, 80_000), (300.0, 5e6), (500.0, 120_000)):
        ids = mp.select(delay, now, max_bytes, exclude, extra)
        seen = t + delay[origin] <= now
        cand = np.union1d(np.flatnonzero((mp.status[:n] == PENDING) & seen), extra[seen[extra]])
        cand = np.setdiff1d(cand, exclude)
        ranked = cand[np.lexsort((cand, -fee[cand]))]
        expected = ranked[: int(np.searchsorted(np.cumsum(size[ranked]), max_bytes, side="right"))]
        assert len(expected) > 50 and ids.tolist() == expected.tolist()
        assert np.isin(extra, ids).any() and not np.isin(exclude, ids).any()
    assert len(mp.select(delay, 0.0, 80_000, exclude, extra)) == 0  # nothing visible yet, nothing in the pool


def test_mempool_grows_and_keeps_earlier_views_valid():
    mp = Mempool(1e9, capacity=4)
    t = np.arange(6, dtype=float)
    mp.add(t, np.full(6, 100, np.int32), np.ones(6, np.float32), np.zeros(6, np.int32))
    view = mp.t_create[:6]  # growing copies the arrays: a view of the old ones keeps its values
    mp.add(t + 6.0, np.full(6, 100, np.int32), np.ones(6, np.float32), np.zeros(6, np.int32))
    assert mp.n == 12 and view.tolist() == t.tolist()
    assert mp.t_create[:12].tolist() == list(range(12)) and mp.pending_bytes(100.0) == 1200.0


def test_steady_and_daily_arrivals_have_the_configured_rate():
    rng = np.random.default_rng(9)
    steady = TxWorkload(TxWorkloadSpec.from_config({"rate_tps": 5.0}), 10, rng)
    assert len(steady.times(0.0, 20_000.0)) == pytest.approx(100_000, rel=0.02)
    assert steady.last_expected == pytest.approx(100_000)
    daily_spec = TxWorkloadSpec.from_config({"rate_tps": 5.0, "pattern": "daily", "daily_amplitude": 0.8})
    daily = TxWorkload(daily_spec, 10, rng)
    t = daily.times(0.0, 86_400.0)
    assert len(t) == pytest.approx(5.0 * 86_400, rel=0.02)
    assert daily.last_expected == pytest.approx(5.0 * 86_400)
    assert daily.expected(0.0, 43_200.0) == pytest.approx(5.0 * 43_200 * (1 + 0.8 * 2 / math.pi))
    first_half = np.sum(t < 43_200.0)  # sin > 0 in the first half day
    assert first_half / len(t) == pytest.approx(0.5 + 0.8 / math.pi, abs=0.02)
    bursts = TxWorkload(TxWorkloadSpec.from_config({"rate_tps": 5.0, "pattern": "bursts", "burst_factor": 5.0,
                                                    "burst_every_s": 1000.0, "burst_mean_s": 250.0}), 10, rng)
    # expected share of time in bursts = 250 / 1250 -> mean rate 5 * (0.8 + 0.2 * 5) = 9 tx/s
    n_bursty = len(bursts.times(0.0, 200_000.0))
    assert n_bursty / 200_000.0 == pytest.approx(9.0, rel=0.1)
    assert n_bursty == pytest.approx(bursts.last_expected, rel=0.02)


@pytest.mark.parametrize("pattern", ["steady", "daily", "bursts"])
def test_demand_is_the_same_however_time_is_split_into_windows(pattern):
    spec = TxWorkloadSpec.from_config({"rate_tps": 2.0, "pattern": pattern, "burst_factor": 20.0,
                                       "burst_every_s": 900.0, "burst_mean_s": 300.0})
    one = TxWorkload(spec, 10, np.random.default_rng(3))
    whole = one.generate(0.0, 7_000.0)
    assert one.last_expected == pytest.approx(one.expected(0.0, 7_000.0))
    other = TxWorkload(spec, 10, np.random.default_rng(3))
    edges = np.cumsum(np.random.default_rng(4).uniform(1.0, 400.0, 60))
    edges = [0.0, *edges[edges < 7_000.0], 7_000.0]
    parts = [other.generate(a, b) for a, b in itertools.pairwise(edges)]
    for i in range(4):
        assert np.array_equal(whole[i], np.concatenate([p[i] for p in parts]))
    assert sum(other.expected(a, b) for a, b in itertools.pairwise(edges)) == pytest.approx(one.last_expected)
    with pytest.raises(ValueError, match="starts before"):
        other.generate(6_000.0, 8_000.0)


def test_policies_on_one_seed_face_the_same_transactions():
    """The env's workload has a stream of its own: blocks found (mining draws) and the windows a policy
    chooses do not change which transactions arrive."""
    created = []
    for interval in (-1.0, 1.0):
        env = BlockchainEnv(transactions={"pattern": "bursts", "burst_every_s": 600.0, "burst_factor": 10.0})
        env.reset(seed=7)
        while env.sim.now < 3_000.0:
            env.step(np.array([1.0] * env.relay_slots + [0.0, interval], dtype=np.float32))
        mp = env.sim.mempool
        n = mp.n_created(3_000.0)
        created.append((mp.t_create[:n].copy(), mp.size[:n].copy(), mp.origin[:n].copy()))
    assert len(created[0][0]) > 1_000
    for a, b in zip(*created, strict=True):
        assert np.array_equal(a, b)


# ---- network calibration and message timing -------------------------------------------------------------

def test_link_latency_is_pareto_around_the_simblock_table():
    sim = make_sim(600, outbound=8, seed=10)
    net = sim.net
    eu = REGIONS.index("EU")
    na = REGIONS.index("NA")
    eu_eu = [d for i in range(net.n) for p, d in zip(net.peers[i], net.peer_lat[i], strict=True)
             if net.region[i] == eu and net.region[p] == eu]
    na_eu = [d for i in range(net.n) for p, d in zip(net.peers[i], net.peer_lat[i], strict=True)
             if net.region[i] == na and net.region[p] == eu]
    assert np.mean(eu_eu) * 1000 == pytest.approx(LATENCY_MS[eu][eu], rel=0.1)
    assert np.mean(na_eu) * 1000 == pytest.approx(LATENCY_MS[na][eu], rel=0.1)
    assert min(na_eu) * 1000 >= LATENCY_MS[na][eu] * 0.8 - 1e-9  # Pareto support starts at scale = 0.8 mean
    assert np.max(na_eu) > 1.5 * np.mean(na_eu)  # heavy tail
    shares = np.bincount(net.region, minlength=6) / net.n
    assert shares[eu] == pytest.approx(0.4998, abs=0.06)
    assert all(len(p) >= 8 for p in net.peers) and np.mean(net.degree()) == pytest.approx(16, abs=0.5)
    assert all(net.peer_lat[i] == sorted(net.peer_lat[i]) for i in range(net.n))


def test_uploads_are_serialised_and_cost_size_over_bandwidth_plus_latency():
    net = make_sim(10, seed=11).net
    tp = Transport(net)
    a = 0
    b, c = net.peers[a][0], net.peers[a][1]
    t_ab = tp.send(5.0, a, b, 1_000_000)
    expected_ab = 8e6 / min(net.up_bps[a], net.down_bps[b]) + net.lat[a][b]
    assert t_ab == pytest.approx(expected_ab)
    t_ac = tp.send(5.0, a, c, 1_000_000)  # queued behind the first upload
    assert t_ac == pytest.approx(8e6 / min(net.up_bps[a], net.down_bps[b])
                                 + 8e6 / min(net.up_bps[a], net.down_bps[c]) + net.lat[a][c])
    assert tp.bytes_up == 2_000_000


def test_relay_slots_split_peers_into_latency_bands():
    net = make_sim(60, seed=12).net
    k = 8
    only_nearest = slot_plan(net, [True] + [False] * (k - 1))
    everything = slot_plan(net, [True] * k)
    for i in range(net.n):
        d = len(net.peers[i])
        assert [p for p, _ in everything.targets[i]] == net.peers[i]
        assert [p for p, _ in only_nearest.targets[i]] == net.peers[i][: -(-d // k)]
    assert only_nearest.mean_latency() < everything.mean_latency()
    for mask in np.random.default_rng(0).random((20, k)) < 0.5:  # every band is the definition's rank set
        plan = slot_plan(net, mask.tolist())
        for i in range(net.n):
            d = len(net.peers[i])
            pairs = zip(net.peers[i], net.peer_lat[i], strict=True)
            assert plan.targets[i] == [pl for r, pl in enumerate(pairs) if mask[slot_of_rank(r, d, k)]]
    flood = strategy_plan(net, "flood")
    assert flood.targets == everything.targets
    region = strategy_plan(net, "region", inter_region_k=1)
    for i in range(net.n):
        others = [p for p, _ in region.targets[i] if net.region[p] != net.region[i]]
        assert len(others) <= 1


def test_restricted_relay_fragments_the_network_and_fetches_missing_ancestors():
    """Relaying only to the nearest latency band leaves parts of the network behind (many more stale
    blocks than flooding); nodes that learn of a block from its child fetch the missing parent too, so every
    node that has a block has its whole chain."""
    rates = {}
    for name, mask in (("flood", [True] * 8), ("nearest band", [True] + [False] * 7)):
        sim = make_sim(40, rate=2.0, seed=13)
        sim.configure(0.2e6, 30.0, slot_plan(sim.net, mask))
        sim.advance(150 * 30.0, 300.0)
        for b in range(1, len(sim.parent)):
            holders = [i for i in range(sim.n) if sim.state[b][i] == 2]
            parent_state = sim.state[sim.parent[b]]
            assert all(parent_state[i] == 2 for i in holders)
        rates[name] = chain_summary(sim)["stale_rate"]
    assert rates["flood"] < 0.1 and rates["nearest band"] > rates["flood"] + 0.2, rates


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"nodes": 5, "outbound": 5}, "env.network.outbound"),
        ({"nodes": 0}, "env.network.nodes"),
        ({"latency_ms": [[1, 2], [3, 4]]}, "env.network.latency_ms"),
        ({"latency_ms": [[1] * 6] * 5 + [[1] * 5]}, "env.network.latency_ms"),
        ({"region_shares": [0.5, 0.5, 0.1, 0, 0, 0]}, "env.network.region_shares"),
        ({"upload_mbps": [1, 1, 1, 1, 1, -1]}, "env.network.upload_mbps[5]"),
        ({"latency_pareto_shape": 0.5}, "env.network.latency_pareto_shape"),
        ({"nodse": 3}, "env.network.nodse"),
    ],
)
def test_bad_network_config_names_the_key(cfg, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        NetworkSpec.from_config(cfg)


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"rate_tps": -1.0}, "env.transactions.rate_tps"),
        ({"pattern": "weekly"}, "env.transactions.pattern"),
        ({"mempool_max_mb": 0}, "env.transactions.mempool_max_mb"),
    ],
)
def test_bad_transaction_config_names_the_key(cfg, key):
    with pytest.raises(ConfigError, match=key):
        TxWorkloadSpec.from_config(cfg)


@pytest.mark.slow
def test_stale_rate_formula_on_a_long_run():
    """The same check with ~10x the blocks (tighter statistics)."""
    d, T = 60.0, 600.0
    s = run_static(make_sim(200, fixed=d, hashpower=[1.0] * 200, seed=14), 1.0, T, blocks=60_000)
    assert abs(s["fork_rate"] - (1 - math.exp(-d / T))) < 3.5 * _se(1 - math.exp(-d / T), s["main_chain"])
    assert abs(s["stale_rate"] - d / (T + d)) < 3.5 * _se(d / (T + d), s["blocks"]) + 0.002


# ---- the event core's shortcuts change nothing ------------------------------------------------------------

def _assert_same_chains(fast: PowChain, ref: PowChain) -> None:
    """The optimised core and a reference core produced the same blocks, propagation and bytes, exactly."""
    for name in ("parent", "t_found", "canon", "size", "n_have", "t50", "t90"):
        assert getattr(fast, name) == pytest.approx(getattr(ref, name), nan_ok=True, abs=0.0), name
    assert fast.transport.bytes_up == ref.transport.bytes_up


class _EveryInvChain(PowChain):
    """Reference core: schedules every inv the protocol sends, including those that will be no-ops."""

    def _announce(self, node: int, b: int, now: float) -> None:
        targets = self.plan.targets[node]
        if self.plan.fanout and len(targets) > self.plan.fanout:
            targets = self._pyrng.sample(targets, self.plan.fanout)
        st, wb = self.state[b], self.work[b]
        for p, d in targets:
            if not st[p] and self.work[self.tip[p]] < wb:
                self._send(now + d, self._on_inv, b, node, p, d)


@pytest.mark.parametrize("plan", ["flood", "random", "nearest band"])
def test_suppressed_invs_are_no_ops(plan):
    """The core skips invs that arrive after an earlier inv for the same block and node; a core that delivers
    them all must produce the same chain, propagation times and bytes, with more events."""
    runs = []
    for cls in (PowChain, _EveryInvChain):
        sim = make_sim(80, rate=20.0, seed=21, cls=cls)
        relay = (strategy_plan(sim.net, plan) if plan != "nearest band"
                 else slot_plan(sim.net, [True, True] + [False] * 6))
        sim.configure(0.3e6, 8.0, relay)
        sim.advance(150 * 8.0, 40.0)
        runs.append(sim)
    fast, ref = runs
    assert fast.n_blocks > 100 and chain_summary(fast)["stale"] > 3
    _assert_same_chains(fast, ref)
    assert fast.invs_suppressed > 0.02 * fast.events  # the shortcut was exercised
    assert fast.messages == ref.events  # what a deliver-everything core handles


class _EventPerMessageChain(PowChain):
    """Reference core: every message is its own SimPy event, queued with the sequence number it drew when
    sent (what the core did before it kept messages in its own heap)."""

    def _arm(self) -> None:
        while self._msgs:
            t, seq, handler, a, b, c, d = heapq.heappop(self._msgs)
            heapq.heappush(self.env._queue, (t, NORMAL, seq, _Wake((self._fire,), (handler, t, a, b, c, d))))

    def _fire(self, ev: _Wake) -> None:
        handler, t, a, b, c, d = ev._value
        self.events += 1
        handler(t, a, b, c, d)
        self._arm()


@pytest.mark.parametrize("case", ["flood", "random", "fixed delay", "compact+push+miners' network+uncles"])
def test_message_heap_keeps_simpys_event_order(case):
    """The core delivers messages from its own heap between SimPy events; a core that makes every message a
    SimPy event must produce the same chain, propagation times, bytes and event count."""
    protocol = None
    if case == "compact+push+miners' network+uncles":
        protocol = ProtocolSpec.from_config({"block_relay": "compact", "push_peers": 3, "miners_network": True,
                                             "max_uncles": 2, "uncle_depth": 6, "relay_side_blocks": True,
                                             "pool_switch_s": 0.3})
    runs = []
    for cls in (PowChain, _EventPerMessageChain):
        sim = make_sim(60, rate=20.0, seed=5, fixed=1.5 if case == "fixed delay" else None, cls=cls,
                       protocol=protocol)
        sim.configure(0.3e6, 6.0, strategy_plan(sim.net, "random") if case == "random" else None)
        sim.advance(120 * 6.0, 30.0)
        runs.append(sim)
    fast, ref = runs
    assert fast.n_blocks > 80 and chain_summary(fast)["stale"] > 2
    _assert_same_chains(fast, ref)
    assert repr(fast.uncles) == repr(ref.uncles) and repr(fast.t_miner) == repr(ref.t_miner)  # nested, nan
    assert fast.events == ref.events
