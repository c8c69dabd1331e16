"""Window metrics of a chain simulation: what happened between two instants, measured at the window's end.

Names are the ones used everywhere in rlrun (info keys, TensorBoard `env/<name>`, metrics.csv columns):

  orphan_rate            stale blocks / blocks found in the window (a block is stale when it is not on the
                         canonical, most-work chain at the end of the window); 0 when no block was found
  latency, latency_p95   seconds from a transaction's creation to its inclusion in a canonical block, mean and
                         95th percentile over the transactions confirmed by blocks found in the window. When
                         the window confirmed nothing, both are the mean age of the pending transactions (a
                         lower bound of their eventual latency), so an empty window is never free.
  throughput             confirmed transactions per second of window
  prop_time_p50, _p90    seconds from a block being found until 50% / 90% of nodes have it, median over
                         the blocks that crossed that mark during the window (the previous window's value
                         if none did).
                         The median, because a block that lost a tie reaches most nodes only when a child
                         makes them fetch it, possibly a whole interval later: one such block would dominate
                         a mean.
  mempool_depth          pending (created, unconfirmed, not evicted) transactions at the window's end
  mempool_mb             their size in MB
  bandwidth_utilisation  block bytes uploaded / total upload capacity of all nodes over the window
  blocks_found, stale_blocks, tx_created, tx_confirmed, tx_evicted   counts in the window
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlrun.envs.chain.pow import PowChain


@dataclass
class WindowMarks:
    """Where a window starts: the clock, the first block id, counters."""

    t0: float
    b0: int
    bytes0: float
    evicted0: float
    created0: float
    last_p50: float = 0.0
    last_p90: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)


def mark(sim: PowChain, prev: dict[str, float] | None = None) -> WindowMarks:
    c = sim.mempool.counts(sim.now)
    prev = prev or {}
    return WindowMarks(
        t0=sim.now, b0=len(sim.parent), bytes0=sim.transport.bytes_up, evicted0=c["evicted"],
        created0=c["created"], last_p50=prev.get("prop_time_p50", 0.0),
        last_p90=prev.get("prop_time_p90", 0.0),
    )


def measure(sim: PowChain, w: WindowMarks) -> dict[str, float]:
    t1 = sim.now
    dt = max(t1 - w.t0, 1e-9)
    b1 = len(sim.parent)
    found = range(w.b0, b1)
    stale = sum(1 for b in found if not sim.on_canon(b))
    n_found = len(found)

    confirmed_blocks = [b for b in found if sim.on_canon(b)]
    mp = sim.mempool
    if confirmed_blocks:
        ids = np.concatenate([sim.txs[b] for b in confirmed_blocks])
        when = np.concatenate([np.full(len(sim.txs[b]), sim.t_found[b]) for b in confirmed_blocks])
    else:
        ids = np.empty(0, dtype=np.int64)
        when = np.empty(0)
    if len(ids):
        lat = when - mp.t_create[ids]
        latency, latency_p95 = float(lat.mean()), float(np.percentile(lat, 95))
    else:
        latency = latency_p95 = mp.pending_age_mean(t1)

    # propagation marks crossed during [t0, t1): scan back from the newest block while marks can fall in
    p50, p90 = [], []
    for b in range(b1 - 1, 0, -1):
        tf = sim.t_found[b]
        x50, x90 = sim.t50[b], sim.t90[b]
        if x50 == x50 and w.t0 <= tf + x50 < t1:
            p50.append(x50)
        if x90 == x90 and w.t0 <= tf + x90 < t1:
            p90.append(x90)
        if tf < w.t0 - 3600.0:  # no block takes an hour to reach 90% of the nodes it ever reaches
            break
    c = mp.counts(t1)
    return {
        "latency": latency,
        "latency_p95": latency_p95,
        "throughput": len(ids) / dt,
        "orphan_rate": stale / n_found if n_found else 0.0,
        "prop_time_p50": float(np.median(p50)) if p50 else w.last_p50,
        "prop_time_p90": float(np.median(p90)) if p90 else w.last_p90,
        "mempool_depth": c["pending"],
        "mempool_mb": c["pending_bytes"] / 1e6,
        "bandwidth_utilisation": min(1.0, (sim.transport.bytes_up - w.bytes0) * 8.0
                                     / (sim.transport.total_up_bps * dt)),
        "blocks_found": float(n_found),
        "stale_blocks": float(stale),
        "tx_created": c["created"] - w.created0,
        "tx_confirmed": float(len(ids)),
        "tx_evicted": c["evicted"] - w.evicted0,
    }


def chain_summary(sim: PowChain) -> dict[str, float]:
    """Whole-run figures (for validation and the README): stale rate over all blocks, fork rate per
    canonical height, median propagation times of canonical blocks (see module docstring)."""
    n = sim.n_blocks
    stale = sum(1 for b in range(1, n + 1) if not sim.on_canon(b))
    forked = set()
    for b in range(1, n + 1):
        if not sim.on_canon(b):
            forked.add(sim.height[b])
    main = len(sim.canon) - 1
    canon = sim.canon[1:]
    t50 = np.array([sim.t50[b] for b in canon], dtype=float)
    t90 = np.array([sim.t90[b] for b in canon], dtype=float)
    return {
        "blocks": float(n),
        "stale": float(stale),
        "stale_rate": stale / n if n else 0.0,
        "main_chain": float(main),
        "fork_rate": len([h for h in forked if h <= main]) / main if main else 0.0,
        "prop_time_p50": float(np.nanmedian(t50)) if len(t50) and not np.all(np.isnan(t50)) else float("nan"),
        "prop_time_p90": float(np.nanmedian(t90)) if len(t90) and not np.all(np.isnan(t90)) else float("nan"),
        "reached_p90": float(np.mean(~np.isnan(t90))) if len(t90) else float("nan"),
    }
