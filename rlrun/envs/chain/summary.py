"""Whole-run statistics of a chain simulation with 95 % confidence intervals: what `rlrun simulate` writes to
simulate.json and what the calibration table compares with published measurements.

Only settled blocks count: those at least `depth` heights below the final main-chain tip, whose fate (main
chain or stale) can no longer change in practice; blocks found during the first `warmup_s` seconds are left
out too (empty mempools at the start make them unrepresentative).

  orphan_rate        stale blocks / settled blocks found (Wilson interval)
  fork_rate          main-chain heights with at least one stale sibling / main-chain heights (Wilson)
  uncle_rate         uncles referenced per main-chain block (normal interval on the per-block counts)
  fork_rate_expected mean over main-chain blocks of 1 - exp(-sum_j share_j * t_j / T), t_j the time until
                     pool j had validated the block: the chance that some pool found a competing block before
                     it heard of this one. A low-variance estimate of the fork rate, useful when stale blocks
                     are too rare to count precisely in a feasible run.
  miners_delay_s     hash-weighted mean of those t_j (the "effective propagation delay" of the stale-rate
                     formula)
  propagation_p50_s, propagation_p90_s   median over main-chain blocks of the time until 50 % / 90 % of nodes
                     had the block (distribution-free interval for the median)
  throughput_tps     transactions in main-chain blocks per second of the blocks' time span
  latency_s          mean seconds from a transaction's creation to its main-chain block (batch-means interval
                     over up to 20 consecutive groups of at least 5 blocks)
  block_fill         mean main-chain block size / block size limit; block_kb the mean size in kB
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rlrun.envs.chain.pow import PowChain

Z95 = 1.959963984540054


def wilson(k: float, n: float, z: float = Z95) -> list[float]:
    """Wilson score interval of a binomial proportion k/n."""
    if n <= 0:
        return [math.nan, math.nan]
    p = k / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [0.0 if k <= 0 else max(0.0, mid - half), 1.0 if k >= n else min(1.0, mid + half)]


def mean_ci(x: np.ndarray) -> list[float]:
    """Normal interval of the mean of x (nan when fewer than 2 values)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return [math.nan, math.nan]
    m, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))
    return [m - Z95 * se, m + Z95 * se]


def median_ci(x: np.ndarray) -> list[float]:
    """Distribution-free 95 % interval of the median: order statistics n/2 -+ z sqrt(n)/2."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    if n < 6:
        return [math.nan, math.nan]
    half = Z95 * math.sqrt(n) / 2.0
    lo = max(0, int(math.floor(n / 2.0 - half)))
    hi = min(n - 1, int(math.ceil(n / 2.0 + half)) - 1)
    return [float(x[lo]), float(x[hi])]


def batch_means_ci(values: np.ndarray, weights: np.ndarray, batches: int = 20) -> list[float]:
    """Interval of the weighted mean of `values` from the spread of consecutive batch means (blocks are
    serially correlated through the mempool, so per-transaction samples are not independent)."""
    batches = min(batches, len(values) // 5)  # at least 5 blocks per batch
    if batches < 2 or weights.sum() <= 0:
        return [math.nan, math.nan]
    means = []
    for v, w in zip(np.array_split(values, batches), np.array_split(weights, batches), strict=True):
        if w.sum() > 0:
            means.append(float((v * w).sum() / w.sum()))
    if len(means) < 2:
        return [math.nan, math.nan]
    center = float((values * weights).sum() / weights.sum())
    half = Z95 * float(np.std(means, ddof=1)) / math.sqrt(len(means))
    return [center - half, center + half]


def run_summary(sim: PowChain, *, depth: int = 6, warmup_s: float = 0.0) -> dict[str, Any]:
    """Statistics of the settled blocks of `sim` (module docstring). Each block is judged against the
    interval and size limit in force when it was found, so a run whose settings changed is summarised too."""
    main_h = len(sim.canon) - 1
    top = main_h - depth
    height, t_found = sim.height, sim.t_found
    settled = [b for b in range(1, len(sim.parent)) if height[b] <= top and t_found[b] >= warmup_s]
    stale = [b for b in settled if not sim.on_canon(b)]
    main = [b for b in settled if sim.on_canon(b)]
    n, k = len(settled), len(stale)
    main_heights = {height[b] for b in main}
    forked = {height[b] for b in stale} & main_heights
    out: dict[str, Any] = {
        "blocks": n,
        "blocks_found": sim.n_blocks,
        "main_chain_blocks": len(main),
        "stale_blocks": k,
        "orphan_rate": k / n if n else math.nan,
        "orphan_rate_ci95": wilson(k, n),
        "fork_rate": len(forked) / len(main) if main else math.nan,
        "fork_rate_ci95": wilson(len(forked), len(main)),
    }
    uncles = np.array([len(sim.uncles[b]) for b in main], dtype=float)
    out["uncle_rate"] = float(uncles.mean()) if len(main) else math.nan
    out["uncle_rate_ci95"] = [max(0.0, c) for c in mean_ci(uncles)]  # counts: never below 0

    shares = np.asarray(sim.shares)
    delays = np.array([sim.t_miner[b] for b in main], dtype=float).reshape(len(main), len(shares))
    ok = ~np.isnan(delays).any(axis=1)
    eff = delays[ok] @ shares + sim.proto.pool_switch_s  # shares sum to 1: every pool, finder included, waits it
    intervals = np.array([sim.work[b] - sim.work[sim.parent[b]] for b in main], dtype=float)[ok]
    p_fork = 1.0 - np.exp(-eff / intervals)
    out["fork_rate_expected"] = float(p_fork.mean()) if len(eff) else math.nan
    out["fork_rate_expected_ci95"] = mean_ci(p_fork)
    out["miners_delay_s"] = float(eff.mean()) if len(eff) else math.nan
    out["miners_delay_s_ci95"] = mean_ci(eff)

    for q, series in (("50", sim.t50), ("90", sim.t90)):
        x = np.array([series[b] for b in main], dtype=float)
        x = x[~np.isnan(x)]
        out[f"propagation_p{q}_s"] = float(np.median(x)) if len(x) else math.nan
        out[f"propagation_p{q}_s_ci95"] = median_ci(x)

    mp = sim.mempool
    ntx = np.array([len(sim.txs[b]) for b in main], dtype=float)
    span = (t_found[main[-1]] - t_found[main[0]]) if len(main) > 1 else 0.0
    out["throughput_tps"] = float(ntx[1:].sum() / span) if span > 0 else math.nan
    lat_mean = np.array([float((t_found[b] - mp.t_create[sim.txs[b]]).mean()) if len(sim.txs[b]) else 0.0
                         for b in main])
    out["latency_s"] = float((lat_mean * ntx).sum() / ntx.sum()) if ntx.sum() else math.nan
    out["latency_s_ci95"] = batch_means_ci(lat_mean, ntx)
    sizes = np.array([sim.size[b] for b in main], dtype=float)
    fill = sizes / np.array([sim.limit[b] for b in main], dtype=float)
    out["block_fill"] = float(fill.mean()) if len(main) else math.nan
    out["block_fill_ci95"] = batch_means_ci(fill, np.ones_like(fill))
    out["block_kb"] = float(sizes.mean() / 1e3) if len(main) else math.nan
    out["reorgs"] = sim.reorgs
    return out
