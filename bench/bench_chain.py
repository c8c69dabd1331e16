"""Blockchain simulator speed: simulated seconds per wall second and SimPy events per second for
(a) 100 nodes at Bitcoin-like settings (1 MB, 600 s, 3 tx/s), (b) 1,000 nodes at a 12 s interval and
(c) 6,000 nodes at 600 s (100 blocks; 1,000 with BENCH_FULL=1), and (a) again with no transactions (at 3 tx/s
(a) creates ~1,800 transactions per block, whose generation, mempool and block templates no message count
includes, so that row shows the event core's own ratio), env=blockchain steps per second at its
defaults, and simulated seconds per wall second of each named scenario (rlrun/envs/chain/scenarios.py) at its
static setting.

Timing: every figure of the first three cases, and the reference, is the best of REPEATS runs in this process
(the 6,000-node case runs once), as timeit reports the best of its repeats: on a shared 2-core machine runs of
the same work spread by 10-20 %, and the best run is the least disturbed one. Each run builds a new simulation.

Reference, measured in the same process: bare SimPy dispatch, a chain of Timeout events with one callback and
a tuple payload (the cheapest event SimPy offers). "ideal" is what bare SimPy would need to deliver every
protocol message of the run (block found, inv, getdata, block transfer) as one event with no simulator work
at all; ratio = rlrun / ideal (1.0 would mean the simulator's own work is free). The core delivers messages
from its own heap, one SimPy wake-up per stretch of traffic, and does not send invs that would be no-ops on
arrival (rlrun/envs/chain/pow.py), so it handles fewer events than messages; the "events per s" rows count
the messages and mining events it does handle, against bare SimPy's event rate. The env is stepped in this
process, which has torch imported as a training run has; the "frozen" row first moves every object that
exists into the cyclic collector's permanent generation, as the trainer does. BENCH_FULL=1 runs
longer and adds a static (size, interval) grid of the env. The first line says which build of the event core
ran (compiled or Python, rlrun/envs/chain/core.py).
"""

from __future__ import annotations

import gc
import time

import numpy as np
import simpy
from simpy.events import Timeout

from bench.common import full, print_table, set_threads
from rlrun.commands.simulate import simulate_static
from rlrun.envs.blockchain import BlockchainEnv
from rlrun.envs.chain import Network, NetworkSpec, PowChain, TxWorkload, TxWorkloadSpec, make_hashpower
from rlrun.envs.chain.core import core_kind
from rlrun.envs.chain.metrics import chain_summary
from rlrun.envs.chain.scenarios import SCENARIOS
from rlrun.envs.chain.tables import POOL_HASHPOWER

REPEATS = 3


def simpy_events_per_second(n: int = 300_000) -> float:
    """Bare SimPy's event rate (best of REPEATS runs), with the cyclic garbage collector paused as it is while
    the chain simulates."""
    gc.disable()
    try:
        return max(_simpy_events_per_second(n) for _ in range(REPEATS))
    finally:
        gc.enable()


def _simpy_events_per_second(n: int) -> float:
    env = simpy.Environment()
    count = [0]

    def cb(ev: simpy.Event) -> None:
        count[0] += 1
        if count[0] < n:
            Timeout(env, 0.5, ev._value).callbacks.append(cb)

    for i in range(10):
        Timeout(env, i * 0.1, (i, 0, 0)).callbacks.append(cb)
    t0 = time.perf_counter()
    env.run()
    return count[0] / (time.perf_counter() - t0)


def run_chain(nodes: int, interval: float, blocks: int, block_mb: float = 1.0,
              rate: float = 3.0) -> tuple[float, float, PowChain, dict]:
    rng = np.random.default_rng(0)
    net = Network(NetworkSpec(nodes=nodes), rng)
    wl = TxWorkload(TxWorkloadSpec(rate_tps=rate), nodes, rng.spawn(1)[0])
    sim = PowChain(net, wl, make_hashpower(nodes, POOL_HASHPOWER, rng), rng)
    sim.configure(block_mb * 1e6, interval)
    t_end = blocks * interval
    t0 = time.perf_counter()
    sim.advance(t_end, 5 * interval)
    wall = time.perf_counter() - t0
    return t_end, wall, sim, chain_summary(sim)


def env_steps(steps: int, action: np.ndarray | None) -> tuple[float, float]:
    env = BlockchainEnv()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n_ev, t_total, done_steps = 0.0, 0.0, 0
    while done_steps < steps:
        a = action if action is not None else rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        t0 = time.perf_counter()
        _, _, _, trunc, info = env.step(a)
        t_total += time.perf_counter() - t0
        n_ev += info["messages"]
        done_steps += 1
        if trunc:
            env.reset(seed=done_steps)
    return done_steps / t_total, n_ev / done_steps


def static_grid() -> None:
    """Mean episode reward of fixed (size, interval) settings at the env defaults (flood relay)."""
    print("\nstatic settings at env defaults (flood relay; 3 episodes of 50 steps, seeds 1000000..):")
    rows = [("size MB", "interval s", "reward per step", "latency s / tx/s / orphan_rate")]
    for size in (0.25, 1.0, 4.0):
        for interval in (5.0, 10.0, 20.0, 60.0, 600.0):
            env = BlockchainEnv()
            lo, hi = env.size_range
            ilo, ihi = env.interval_range
            u_size = 2 * np.log(size / lo) / np.log(hi / lo) - 1
            u_int = 2 * np.log(interval / ilo) / np.log(ihi / ilo) - 1
            a = np.array([1.0] * env.relay_slots + [u_size, u_int], dtype=np.float32)
            rets, infos = [], []
            for ep in range(3):
                env.reset(seed=1_000_000 + ep)
                ret = 0.0
                for _ in range(env.episode_steps):
                    _, r, _, _, info = env.step(a)
                    ret += r
                    infos.append(info)
                rets.append(ret / env.episode_steps)
            m = {k: np.mean([i[k] for i in infos]) for k in ("latency", "throughput", "orphan_rate")}
            rows.append((f"{size:g}", f"{interval:g}", f"{np.mean(rets):.3f}",
                         f"{m['latency']:.1f} / {m['throughput']:.2f} / {m['orphan_rate']:.3f}"))
    print_table(rows)


def main() -> None:
    set_threads(1)
    print(f"event core: the {core_kind()} build (rlrun/envs/chain/core.py; RLRUN_CHAIN_CORE=python runs pow.py "
          "as Python)")
    raw = simpy_events_per_second()
    rows = [("case", "rlrun", "ideal (bare SimPy)", "ratio")]
    summaries = []
    for label, nodes, interval, blocks, rate in (
        ("100 nodes, 1 MB / 600 s", 100, 600.0, 1000 if full() else 300, 3.0),
        ("same, no transactions", 100, 600.0, 1000 if full() else 300, 0.0),
        ("1000 nodes, 1 MB / 12 s", 1000, 12.0, 300 if full() else 60, 3.0),
        ("6000 nodes, 1 MB / 600 s", 6000, 600.0, 1000 if full() else 100, 3.0),
    ):
        runs = [run_chain(nodes, interval, blocks, rate=rate) for _ in range(1 if nodes > 1000 else REPEATS)]
        sim_s, wall, sim, summary = min(runs, key=lambda run: run[1])  # the same simulation each time
        summaries.append((label, summary))
        ideal = sim_s / (sim.messages / raw)
        rows.append((f"{label}: sim s per wall s", f"{sim_s / wall:,.0f}", f"{ideal:,.0f}",
                     f"{(sim_s / wall) / ideal:.2f}"))
        rows.append((f"{label}: events per s", f"{sim.events / wall:,.0f}", f"{raw:,.0f}",
                     f"{sim.events / wall / raw:.2f}"))
        rows.append((f"{label}: wall s for {blocks} blocks", f"{wall:,.2f}", "", ""))
    for label, action, frozen in (
        ("random actions", None, False),
        ("random actions, process frozen as the trainer does", None, True),
        ("flood, ~0.9 MB / ~18 s", np.array([1.0] * 8 + [0.0, -0.1], dtype=np.float32), False),
    ):
        if frozen:  # what rlrun.trainer.Trainer does before it builds a run
            gc.collect()
            gc.freeze()
        try:
            sps, ev_per_step = env_steps(400 if full() else 150, action)
        finally:
            gc.unfreeze()
        ideal = raw / ev_per_step
        rows.append((f"env=blockchain steps per s ({label})", f"{sps:,.1f}", f"{ideal:,.0f}",
                     f"{sps / ideal:.3f}"))
    for name in SCENARIOS:
        blocks = 100 if full() else 20
        r = simulate_static(BlockchainEnv(scenario=name), blocks, seed=0)
        rows.append((f"scenario {name} ({r['nodes']} nodes): sim s per wall s", f"{r['sim_s_per_wall_s']:,.0f}",
                     "", f"{r['wall_s']:.1f} s for {r['blocks_found']} blocks"))
    print_table(rows)
    print("\nchain figures (median propagation of main-chain blocks):")
    for label, s in summaries:
        print(f"  {label}: {int(s['blocks'])} blocks, orphan_rate {s['stale_rate']:.4f}, "
              f"propagation to 50% {s['prop_time_p50']:.2f} s, to 90% {s['prop_time_p90']:.2f} s")
    if full():
        static_grid()


if __name__ == "__main__":
    main()
