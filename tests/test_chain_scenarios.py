"""Named scenarios, relay mechanisms, uncles, run statistics and `rlrun simulate` (fast: small networks)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from rlrun.envs.blockchain import BlockchainEnv
from rlrun.envs.chain import Network, NetworkSpec, PowChain, TxWorkload, TxWorkloadSpec, make_hashpower, tables
from rlrun.envs.chain.metrics import chain_summary
from rlrun.envs.chain.pow import HEADER_BYTES
from rlrun.envs.chain.protocol import ProtocolSpec
from rlrun.envs.chain.scenarios import SCENARIOS
from rlrun.envs.chain.summary import median_ci, run_summary, wilson
from rlrun.envs.chain.uncles import pick_uncles, uncle_rate
from rlrun.errors import ConfigError


def make(protocol: dict | None = None, *, nodes: int = 120, rate: float = 20.0, seed: int = 0,
         hashpower: list[float] | None = None) -> PowChain:
    rng = np.random.default_rng(seed)
    net = Network(NetworkSpec.from_config({"nodes": nodes}), rng)
    wl = TxWorkload(TxWorkloadSpec.from_config({"rate_tps": rate, "size_mean_bytes": 500.0}), nodes, rng.spawn(1)[0])
    hp = make_hashpower(nodes, hashpower or tables.POOL_HASHPOWER, rng)
    return PowChain(net, wl, hp, rng, protocol=ProtocolSpec.from_config(protocol))


def run(sim: PowChain, block_mb: float, interval: float, blocks: int) -> PowChain:
    sim.configure(block_mb * 1e6, interval)
    sim.advance(blocks * interval, 10 * interval)
    return sim


# ---- scenarios --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_composes_and_runs(name):
    sc = SCENARIOS[name]
    env = BlockchainEnv(scenario=name, network={"nodes": 60}, episode_steps=2, step_blocks=2.0)
    assert env.net_spec.nodes == 60  # an explicit key beats the scenario
    assert env.net_spec.outbound == sc.network["outbound"]
    assert env.net_spec.latency_ms == [list(map(float, r)) for r in sc.network.get("latency_ms", tables.LATENCY_MS)]
    assert env.tx_spec.rate_tps == sc.transactions["rate_tps"]
    assert env.static_setting == (sc.block_size_mb, sc.block_interval_s)
    obs, _ = env.reset(seed=0)
    obs, r, _, _, info = env.step(env.default_action())
    assert env.observation_space.contains(obs) and math.isfinite(r)
    assert info["block_interval_s"] == pytest.approx(min(sc.block_interval_s, env.interval_range[1]))
    assert all(p.source for p in sc.published.values())


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_composes_through_hydra(name):
    """`env=blockchain env.scenario=NAME` composes, and the yaml's null keys leave the scenario's values."""
    from omegaconf import OmegaConf

    from rlrun.commands.simulate import compose_env_config

    cfg = compose_env_config([f"env.scenario={name}"])
    env_cfg = OmegaConf.to_container(cfg.env, resolve=True)
    env = BlockchainEnv(**{k: v for k, v in env_cfg.items() if not k.startswith("_")})
    sc = SCENARIOS[name]
    assert env.net_spec.nodes == sc.network["nodes"] and env.tx_spec.rate_tps == sc.transactions["rate_tps"]
    assert env.protocol.block_relay == sc.protocol["block_relay"]
    assert env.hashpower == sc.hashpower


def test_scenario_demand_fills_blocks_as_published():
    """header + rate x mean size x interval is the published mean block size (within 5 %) wherever published."""
    for name, sc in SCENARIOS.items():
        if "block_kb" in sc.published:
            tx = sc.transactions
            kb = (HEADER_BYTES + tx["rate_tps"] * tx["size_mean_bytes"] * sc.block_interval_s) / 1e3
            assert kb == pytest.approx(sc.published["block_kb"].value, rel=0.05), name


def test_unknown_scenario_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"env.scenario='nope' is not a known scenario; choose one of: bitcoin_2015"):
        BlockchainEnv(scenario="nope")


# ---- relay mechanisms ---------------------------------------------------------------------------------------

def test_compact_blocks_cut_bytes_and_propagation_time():
    full = run(make(), 1.0, 60.0, 40)
    compact = run(make({"block_relay": "compact"}), 1.0, 60.0, 40)
    assert compact.parent == full.parent[: len(compact.parent)] or compact.n_blocks == full.n_blocks
    per_block = [s.transport.bytes_up / s.n_blocks for s in (full, compact)]
    assert per_block[1] < per_block[0] / 20  # ~6 B per ~500 B transaction, plus the few missing ones
    p50 = [chain_summary(s)["prop_time_p50"] for s in (full, compact)]
    assert p50[1] < 0.7 * p50[0], p50
    high = run(make({"block_relay": "compact", "push_peers": 3}), 1.0, 60.0, 40)
    assert chain_summary(high)["prop_time_p50"] < p50[1]  # high-bandwidth mode skips inv/getdata and waits


def test_missing_transactions_are_those_younger_than_the_relay_delay():
    sim = run(make({"block_relay": "compact"}), 1.0, 60.0, 10)
    b = sim.canon[-1]
    tc = sim.mempool.t_create[sim.txs[b]]
    sizes = sim.mempool.size[sim.txs[b]]
    t = sim.t_found[b] + 0.5
    expected = float(sizes[tc > t - sim.tx_spread_s].sum())
    assert sim._missing_bytes(b, t) == pytest.approx(expected)
    assert sim._missing_bytes(b, t + 1e6) == 0.0 and sim._missing_bytes(b, -1e6) == pytest.approx(sizes.sum())


def test_miners_relay_network_cuts_the_stale_rate():
    kw = {"nodes": 100, "rate": 200.0}
    plain = run(make(**kw, seed=3), 2.0, 12.0, 250)
    relay = run(make({"miners_network": True}, **kw, seed=3), 2.0, 12.0, 250)
    s_plain, s_relay = run_summary(plain), run_summary(relay)
    assert s_plain["orphan_rate"] > 0.05
    assert s_relay["orphan_rate"] < 0.5 * s_plain["orphan_rate"], (s_relay["orphan_rate"], s_plain["orphan_rate"])
    assert s_relay["miners_delay_s"] < 0.3 * s_plain["miners_delay_s"]


def test_pool_switch_delay_raises_forks_by_the_formula():
    """Hashers that keep working on the old tip for s seconds add s to every pool's delay."""
    kw = {"nodes": 60, "rate": 5.0, "hashpower": [1.0] * 10}
    base = run_summary(run(make(**kw, seed=4), 0.1, 10.0, 1500))
    slow = run_summary(run(make({"pool_switch_s": 1.0}, **kw, seed=4), 0.1, 10.0, 1500))
    # + 1 s, and a little more: more forks mean more competing uploads
    assert 1.0 <= slow["miners_delay_s"] - base["miners_delay_s"] < 1.25
    assert slow["orphan_rate"] > base["orphan_rate"] + 0.04
    assert slow["orphan_rate"] == pytest.approx(slow["fork_rate_expected"], abs=0.03)


def test_request_delay_waits_per_hop_and_lets_pushes_replace_requests():
    """geth's fetcher: a node waits request_delay_s after an announcement before requesting the block."""
    p50 = [chain_summary(run(make(proto), 0.05, 30.0, 30))["prop_time_p50"]
           for proto in (None, {"request_delay_s": 0.5})]
    assert p50[1] > p50[0] + 0.5, p50  # at least one waiting hop to the median node
    # with pushes, a block usually arrives before the wait is over, so fewer blocks are also requested
    push = [run(make({"push_peers": 3, **extra}), 0.05, 30.0, 30) for extra in ({}, {"request_delay_s": 0.5})]
    per_block = [sim.transport.bytes_up / sim.n_blocks for sim in push]
    assert per_block[1] < 0.8 * per_block[0], per_block


def test_validation_cost_per_gas_slows_propagation():
    base = chain_summary(run(make(), 0.2, 30.0, 40))["prop_time_p50"]
    gas = chain_summary(run(make({"validation_s_per_mgas": 0.1, "gas_per_tx": 100_000.0}), 0.2, 30.0, 40))
    # ~ (0.2 MB / 500 B) = 400 tx x 0.1 Mgas x 0.1 s per Mgas = 4 s per hop
    assert gas["prop_time_p50"] > base + 4.0


# ---- uncles -----------------------------------------------------------------------------------------------

def test_uncles_on_a_hand_built_fork():
    #        0 - 1 - 2 - 4 - 6 - 7          main chain (heights 0..5)
    #             \    \
    #              3    5                    stale: 3 (child of 1, height 2), 5 (child of 2, height 3)
    parent = [-1, 0, 1, 1, 2, 2, 4, 6]
    height = [0, 1, 2, 2, 3, 3, 4, 5]
    by_height: dict[int, list[int]] = {}
    for b, h in enumerate(height):
        by_height.setdefault(h, []).append(b)
    uncles: list[list[int]] = [[] for _ in parent]
    everyone = lambda u: True  # noqa: E731
    # block 6 (parent 4, height 4) may take 3 and 5: both are children of its ancestors 1 and 2
    assert pick_uncles(4, parent, height, uncles, by_height, everyone, depth=6, max_uncles=2) == [3, 5]
    assert pick_uncles(4, parent, height, uncles, by_height, everyone, depth=6, max_uncles=1) == [3]
    assert pick_uncles(4, parent, height, uncles, by_height, lambda u: u != 3, depth=6, max_uncles=2) == [5]
    # depth 1: only children of the parent (4) qualify -> none
    assert pick_uncles(4, parent, height, uncles, by_height, everyone, depth=1, max_uncles=2) == []
    # depth 2: children of 4 or 2 -> 5 only (3's parent 1 is 3 generations back)
    assert pick_uncles(4, parent, height, uncles, by_height, everyone, depth=2, max_uncles=2) == [5]
    uncles[6] = [3, 5]
    # block 7 builds on 6, which already referenced both: nothing left
    assert pick_uncles(6, parent, height, uncles, by_height, everyone, depth=6, max_uncles=2) == []
    assert uncle_rate([0, 1, 2, 4, 6, 7], uncles) == pytest.approx(2 / 5)


def test_uncle_rate_tracks_the_stale_rate_when_everyone_hears_of_stale_blocks():
    sim = run(make({"max_uncles": 2}, nodes=60, rate=5.0, seed=5), 0.1, 4.0, 800)
    s = run_summary(sim)
    assert s["orphan_rate"] > 0.05
    # most stale blocks are referenced once (not those the next miners had not seen yet, nor a third sibling)
    per_main = s["stale_blocks"] / s["main_chain_blocks"]
    assert 0.6 * per_main < s["uncle_rate"] <= per_main
    referenced = [u for c in sim.canon for u in sim.uncles[c]]
    assert len(referenced) == len(set(referenced))  # never twice on one chain
    assert all(not sim.on_canon(u) for u in referenced)


# ---- statistics -------------------------------------------------------------------------------------------

def test_confidence_intervals_have_the_textbook_values():
    lo, hi = wilson(10, 100)
    assert (lo, hi) == pytest.approx((0.0552, 0.1744), abs=1e-4)  # Wilson score interval, z = 1.96
    assert wilson(0, 50)[0] == 0.0 and wilson(0, 50)[1] == pytest.approx(0.0713, abs=1e-4)
    x = np.arange(100.0)
    lo, hi = median_ci(x)
    assert lo < 49.5 < hi and hi - lo == pytest.approx(2 * 1.96 * 5, abs=2.0)


# ---- rlrun simulate -------------------------------------------------------------------------------------

def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "rlrun.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_simulate_end_to_end(tmp_path):
    proc = _cli(["simulate", "env=blockchain", "env.scenario=dogecoin", "env.network.nodes=80", "blocks=60",
                 "seed=3", f"out={tmp_path / 'sim'}", "progress=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "sim" / "simulate.json").read_text())
    for key in ("blocks", "orphan_rate", "fork_rate", "propagation_p50_s", "propagation_p90_s", "throughput_tps",
                "latency_s", "block_fill", "uncle_rate", "orphan_rate_ci95", "fork_rate_ci95", "latency_s_ci95"):
        assert key in result, key
    assert result["scenario"] == "dogecoin" and result["nodes"] == 80 and result["blocks"] >= 60
    assert result["static_setting"]["block_interval_s"] == 60.0
    assert 0.0 < result["propagation_p50_s"] < result["propagation_p90_s"] < 5.0
    assert result["throughput_tps"] == pytest.approx(0.3125, rel=0.25)  # demand-limited: what arrives is confirmed
    assert result["block_fill"] < 0.05
    lo, hi = result["orphan_rate_ci95"]
    assert lo <= result["orphan_rate"] <= hi
    again = _cli(["simulate", "env=blockchain", "env.scenario=dogecoin", "env.network.nodes=80", "blocks=60",
                  "seed=3", f"out={tmp_path / 'sim2'}", "progress=false"], tmp_path)
    assert again.returncode == 0, again.stderr
    twin = json.loads((tmp_path / "sim2" / "simulate.json").read_text())
    assert {k: v for k, v in twin.items() if "wall" not in k} == {k: v for k, v in result.items() if "wall" not in k}


def test_simulate_help_lists_scenarios(tmp_path):
    proc = _cli(["simulate", "--help"], tmp_path)
    assert proc.returncode == 0
    for name in SCENARIOS:
        assert name in proc.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["env.scenario=bitcoin_2077"], "env.scenario='bitcoin_2077' is not a known scenario; choose one of:"),
        (["blocks=0"], "blocks must be >= 1, got 0"),
        (["env.network.upload_mbps=[1,1,1,1,1,-1]"], "env.network.upload_mbps[5] must be > 0"),
        (["env.network.latency_ms=[[1,2],[3,4]]"], "env.network.latency_ms must be a square 6x6 table"),
        (["env.protocol.block_relay=fast"], "env.protocol.block_relay='fast' is not allowed; choose one of: full"),
        (["env.network.nodez=3"], "env.network.nodez is not a config key; allowed keys: download_mbps"),
        (["steps=3"], "steps is not a simulate setting; allowed: env, blocks"),
    ],
)
def test_simulate_bad_input_is_one_line_exit_2(tmp_path, args, expected):
    proc = _cli(["simulate", "env=blockchain", *args], tmp_path)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr


def test_relaying_side_blocks_lets_miners_reference_them_as_uncles():
    """With Bitcoin's rule (announce new tips only) a losing sibling dies where it lost, so few miners ever
    see it; Ethereum's clients relay every valid block, and nearly every stale block becomes an uncle."""
    rates = {}
    for relay_all in (False, True):
        sim = run(make({"max_uncles": 2, "relay_side_blocks": relay_all}, nodes=80, rate=5.0, seed=6), 0.1, 3.0,
                  800)
        s = run_summary(sim)
        rates[relay_all] = s["uncle_rate"] / (s["stale_blocks"] / s["main_chain_blocks"])
    assert rates[True] > 0.9 and rates[True] > rates[False] + 0.1, rates


def test_simulate_replays_a_trained_policy(tmp_path):
    train = _cli(["train", "env=blockchain", "agent=ddpg", "env.network.nodes=20", "env.network.outbound=4",
                  "env.episode_steps=10", "total_steps=40", "learning_starts=20", "eval_every=0", "eval_episodes=1",
                  "checkpoint_every=0", "plots=false", "progress=false", "baseline=null"], tmp_path)
    assert train.returncode == 0, train.stderr
    run_dir = next((tmp_path / "outputs" / "train" / "blockchain-ddpg").iterdir())
    proc = _cli(["simulate", f"run={run_dir}", "blocks=30", "seed=2", "progress=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run_dir / "simulate" / "simulate.json").read_text())
    assert result["blocks"] >= 30 and result["nodes"] == 20
    assert result["policy"]["checkpoint"].endswith("best.pt") and result["policy"]["env_steps"] >= 1
    lo, hi = result["latency_s_ci95"]
    assert lo <= result["latency_s"] <= hi


def test_pool_outbound_connects_pools_to_more_peers():
    plain, pools = make(seed=7), make({"pool_outbound": 30}, seed=7)
    deg_plain, deg_pools = plain.net.degree(), pools.net.degree()
    miners = pools.miners
    assert miners == plain.miners
    assert all(deg_pools[m] >= deg_plain[m] + 30 for m in miners)
    others = [i for i in range(pools.n) if i not in set(miners)]
    # the others gain only the links pools opened to them: 30 per pool, the share that lands on non-pools
    extra = deg_pools[others].sum() - deg_plain[others].sum()
    assert extra == pytest.approx(30 * len(miners) * len(others) / (pools.n - 1), rel=0.1)
    assert all(pools.net.peer_lat[i] == sorted(pools.net.peer_lat[i]) for i in range(pools.n))


def test_simulate_other_envs_runs_their_static_policy(tmp_path):
    proc = _cli(["simulate", "env=consensus", "episodes=2", "seed=1", f"out={tmp_path / 'c'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "c" / "simulate.json").read_text())
    assert result["env"] == "consensus" and result["episodes"] == 2 and len(result["returns"]) == 2
    assert result["policy"].startswith("static")
    lo, hi = result["return_ci95"]
    assert lo <= result["return_mean"] <= hi
    assert all("mean" in m and len(m["ci95"]) == 2 for m in result["metrics"].values())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["env=nope", "episodes=2"], "env=nope is not a known option; available: blockchain, consensus"),
        (["env=relay", "blocks=2"], "blocks applies to env=blockchain; for env=relay use episodes=N"),
        (["env=blockchain", "episodes=2"], "episodes applies to envs other than blockchain"),
        (["env=relay", "episodes=0"], "episodes must be >= 1, got 0"),
    ],
)
def test_simulate_env_choice_errors(tmp_path, args, expected):
    proc = _cli(["simulate", *args], tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
