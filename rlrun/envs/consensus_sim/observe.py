"""What env=consensus observes: the seed's 25 chain measurements over each observation window (the blocks
since the last collection), from the chain simulator's block records and counters."""

from __future__ import annotations

import numpy as np

from rlrun.envs.consensus_sim.chain import BlockRecord, ChainSim

OBSERVATION_NAMES = (
    "block_utilization",
    "tx_count",
    "avg_tx_size",
    "block_time",
    "block_time_delta",
    "gas_price_50th",
    "gas_price_95th",
    "mempool_size",
    "mempool_bytes",
    "validator_count",
    "validator_gini",
    "missed_block_ratio",
    "avg_commit_latency",
    "max_commit_latency",
    "precommit_ratio",
    "failed_tx_ratio",
    "avg_gas_per_tx",
    "reward_per_validator",
    "slash_count",
    "jail_count",
    "inflation_rate",
    "bonded_ratio",
    "reputation_mean",
    "reputation_stddev",
    "mev_estimate",
)


class WindowObserver:
    """Collects block records as blocks are made; `collect` turns the window into the 25 values."""

    def __init__(self) -> None:
        self.blocks: list[BlockRecord] = []
        self._counters: dict[str, int] = {}

    def start(self, sim: ChainSim) -> None:
        """A new window from here: no blocks yet, counters as they stand."""
        self.blocks = []
        self._counters = self.counters(sim)

    def add(self, rec: BlockRecord) -> None:
        self.blocks.append(rec)

    @staticmethod
    def counters(sim: ChainSim) -> dict[str, int]:
        p = sim.pool
        return {
            "dropped": p.failed_full + p.failed_expired + p.failed_underpriced,
            "priced_out": p.priced_out,
            "submitted": p.submitted,
            "slash": sim.slash_events,
            "jail": sim.jail_events,
        }

    def collect(self, sim: ChainSim) -> tuple[np.ndarray, dict[str, float]]:
        """The seed's 25 values (in OBSERVATION_NAMES order) over the blocks since the last collection, and
        the window's extra info (priced-out ratio, failed rounds, burst, active set size)."""
        w = self.blocks
        c0, c1 = self._counters, self.counters(sim)
        self._counters = c1
        self.blocks = []
        n_blocks = max(1, len(w))
        n_tx = sum(r.n_tx for r in w)
        gas = sum(r.gas_used for r in w)
        prices = np.concatenate([r.prices for r in w]) if w else np.zeros(0)
        base = sim.params.base_gas_price
        p50, p95 = np.percentile(prices, [50, 95]) if prices.size else (base, base)
        dropped = c1["dropped"] - c0["dropped"]
        failed = dropped + sum(r.failed_oog for r in w)
        fees = sum(r.fees for r in w)
        active = sim.active
        rep = sim.vals.reputation[active]
        raw = [
            float(np.mean([r.utilization for r in w])) if w else 0.0,
            n_tx / n_blocks,
            sum(r.bytes for r in w) / n_tx if n_tx else 0.0,
            float(np.mean([r.block_time_ms for r in w])) if w else 0.0,
            float(np.mean([r.block_time_ms - r.target_ms for r in w])) if w else 0.0,
            float(p50),
            float(p95),
            float(np.mean([r.mempool_count for r in w])) if w else float(sim.pool.count),
            float(np.mean([r.mempool_bytes for r in w])) if w else float(sim.pool.pending_bytes()),
            float(np.mean([r.validators_online for r in w])) if w else float(active.size),
            sim.gini(),
            float(np.mean([r.missed_ratio for r in w])) if w else 0.0,
            float(np.mean([r.commit_avg_ms for r in w])) if w else 0.0,
            float(max(r.commit_max_ms for r in w)) if w else 0.0,
            float(np.mean([r.precommit_ratio for r in w])) if w else 1.0,
            failed / (n_tx + dropped) if (n_tx + dropped) else 0.0,
            gas / n_tx if n_tx else 0.0,
            float(np.mean([r.reward_per_validator for r in w])) if w else 0.0,
            float(c1["slash"] - c0["slash"]),
            float(c1["jail"] - c0["jail"]),
            sim.inflation,
            sim.bonded_ratio(),
            float(rep.mean()) if rep.size else 0.0,
            float(rep.std()) if rep.size else 0.0,
            sum(r.mev_value for r in w) / fees if fees > 0 else 0.0,
        ]
        extra = {
            "priced_out_ratio": (c1["priced_out"] - c0["priced_out"])
            / max(1, (c1["priced_out"] - c0["priced_out"]) + (c1["submitted"] - c0["submitted"])),
            "failed_rounds": float(sum(r.rounds for r in w)),
            "burst_active": float(sim.burst),
            "active_set_size": float(active.size),
        }
        return np.asarray(raw, dtype=np.float64), extra
