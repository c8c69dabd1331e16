"""Rollup advisory (seed 001, "Rollup Advisory Functions"): informational, changes nothing.

Both functions take the chain's raw observation (a mapping of the 25 OBSERVATION_NAMES, or the 25 raw values
in that order; not the network-scaled vector) and return plain dicts.

suggest_rollup_profile(observation) -> block_time_ms, gas_limit, settlement_interval_blocks/_s:
- block_time_ms: a tenth of the L1 block time, rounded to 50 ms, within [200, 2000] ms, so soft
  confirmations stay an order of magnitude faster than L1 blocks.
- gas_limit: what the L2 needs to carry the whole current demand with 2x headroom: demand (gas/s) = L1
  throughput / (1 - failed_tx_ratio) (served plus turned away) + the mempool backlog drained over 60 s (the
  backlog: mempool_size, counted when a block is built, minus that block's tx_count); times
  the L2 block time; rounded up to a million gas, within [1M, 100M].
- settlement_interval_blocks: every 10 L1 blocks in calm conditions, stretched when settling is expensive:
  x (1 + 2 * utilisation above 80% / 20%) x (1 + backlog in blocks / 5, at most 2)
  x sqrt(p95 / p50 gas price);
  within [1, 600] L1 blocks. Batching more per settlement amortises its fixed cost when blockspace is scarce.

optimize_rollup_gas(observation) -> congestion level and fee advice for settlement transactions:
- congestion "high" when utilisation >= 0.9 or the backlog is at least one block, "low" when utilisation
  < 0.5 and the backlog is under half a block, else "medium";
- tip: 0 (low), half the p50-p95 spread (medium), the whole spread (high: the tip of the top 5%);
- max_fee_per_gas: p50 x 1.125 (low), p95 x 1.125 (medium), p95 x 1.25 (high), never below p50 + tip;
- defer_settlement: congestion high and more than 10% of transactions failing: non-urgent settlements wait.

`rlrun advise run=<dir>` simulates a few observation intervals of the run's consensus environment in Shadow
mode (nothing applied), reads the last raw observation and prints both advisories plus the run's policy
recommendation for that observation (computed with the fixed-point engine). It writes no file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

L2_BLOCK_TIME_FRACTION = 0.1
L2_BLOCK_TIME_RANGE_MS = (200, 2000)
GAS_HEADROOM = 2.0
BACKLOG_DRAIN_S = 60.0
GAS_LIMIT_RANGE = (1_000_000, 100_000_000)
BASE_SETTLEMENT_BLOCKS = 10
SETTLEMENT_RANGE = (1, 600)


def _obs(observation: Mapping[str, float] | Sequence[float] | np.ndarray) -> dict[str, float]:
    from rlrun.envs.consensus import OBSERVATION_NAMES

    if isinstance(observation, Mapping):
        missing = [k for k in OBSERVATION_NAMES if k not in observation]
        if missing:
            raise ValueError(f"observation lacks {', '.join(missing)}")
        return {k: float(observation[k]) for k in OBSERVATION_NAMES}
    values = np.asarray(observation, dtype=np.float64).reshape(-1)
    if values.size != len(OBSERVATION_NAMES):
        raise ValueError(f"expected {len(OBSERVATION_NAMES)} raw observation values, got {values.size}")
    return dict(zip(OBSERVATION_NAMES, values.tolist(), strict=True))


def _backlog_tx(o: dict[str, float]) -> float:
    """Transactions left waiting: the observation's mempool_size counts the pool when the proposer builds a
    block (that block's transactions plus the backlog), so the backlog is what exceeds a block's tx_count."""
    return max(0.0, o["mempool_size"] - o["tx_count"])


def _backlog_blocks(o: dict[str, float]) -> float:
    per_block = max(o["tx_count"], 1.0)
    return _backlog_tx(o) / per_block


def suggest_rollup_profile(observation: Mapping[str, float] | Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Suggested rollup block time, gas limit and settlement frequency for the current L1 conditions."""
    o = _obs(observation)
    l1_block_s = max(o["block_time"], 1.0) / 1000.0
    lo, hi = L2_BLOCK_TIME_RANGE_MS
    block_time_ms = int(min(hi, max(lo, 50 * round(L2_BLOCK_TIME_FRACTION * o["block_time"] / 50))))
    served = o["tx_count"] * o["avg_gas_per_tx"] / l1_block_s
    failed = min(max(o["failed_tx_ratio"], 0.0), 0.99)
    demand = served / (1.0 - failed) + _backlog_tx(o) * o["avg_gas_per_tx"] / BACKLOG_DRAIN_S
    gas = GAS_HEADROOM * demand * block_time_ms / 1000.0
    gas_limit = int(min(GAS_LIMIT_RANGE[1], max(GAS_LIMIT_RANGE[0], math.ceil(gas / 1e6) * 1_000_000)))
    over_util = max(0.0, o["block_utilization"] - 0.8) / 0.2
    backlog = _backlog_blocks(o)
    spread = o["gas_price_95th"] / o["gas_price_50th"] if o["gas_price_50th"] > 0 else 1.0
    factor = (1.0 + 2.0 * over_util) * (1.0 + min(backlog / 5.0, 1.0)) * math.sqrt(max(spread, 1.0))
    blocks = int(min(SETTLEMENT_RANGE[1], max(SETTLEMENT_RANGE[0], round(BASE_SETTLEMENT_BLOCKS * factor))))
    return {
        "block_time_ms": block_time_ms,
        "gas_limit": gas_limit,
        "settlement_interval_blocks": blocks,
        "settlement_interval_s": round(blocks * l1_block_s, 3),
        "demand_gas_per_s": round(demand, 1),
        "informational": True,
    }


def optimize_rollup_gas(observation: Mapping[str, float] | Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Fee advice for rollup settlement transactions from L1 congestion."""
    o = _obs(observation)
    backlog = _backlog_blocks(o)
    util = o["block_utilization"]
    p50, p95 = o["gas_price_50th"], max(o["gas_price_95th"], o["gas_price_50th"])
    if util >= 0.9 or backlog >= 1.0:
        level, tip, max_fee = "high", p95 - p50, 1.25 * p95
    elif util < 0.5 and backlog < 0.5:
        level, tip, max_fee = "low", 0.0, 1.125 * p50
    else:
        level, tip, max_fee = "medium", 0.5 * (p95 - p50), 1.125 * p95
    max_fee = max(max_fee, p50 + tip)
    return {
        "congestion": level,
        "priority_fee_per_gas": round(tip, 6),
        "max_fee_per_gas": round(max_fee, 6),
        "backlog_blocks": round(backlog, 3),
        "defer_settlement": bool(level == "high" and o["failed_tx_ratio"] > 0.1),
        "informational": True,
    }
