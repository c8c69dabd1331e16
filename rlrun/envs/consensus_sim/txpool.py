"""Transaction demand and the mempool of the consensus simulation (gas-metered, EVM-style accounting).

Demand. Potential users arrive as a Poisson process of rate `rate(t)` tx/s (daily cycle and bursts come
from the chain). Each has a maximum fee per gas ~ LogNormal(median REF_VALUE_X * default base price, 0.8):
users whose maximum is below the current base gas price do not submit ("priced out"), so demand reacts to
price (at the default price 87% submit, at 2x 61%, at 0.5x 98%). Submitted transactions bid a priority tip
= base * Exp(mean 5%) * (1 + 4 * congestion), capped at max fee - base; congestion is the pending gas in
block-gas-limit units (at most 2), so tips rise when blocks are full.

Kinds: transfer (50%, 21,000 gas, ~120 B), swap (30%, ~150k gas, ~400 B), contract call (20%, ~80k gas,
~600 B). Users set gas limit = 1.25 x estimate; with probability P_OUT_OF_GAS execution needs more and the
transaction fails out of gas, consuming its whole gas limit.

Mempool: one preallocated array, a row per transaction. A transaction fails when the mempool is full on
arrival, when it has waited `ttl_s` without inclusion, or when the base price rises above its max fee.
Block building takes the highest tips first (ties: earlier arrival) while the cumulative gas consumed fits
the block gas limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REF_VALUE_X = 2.5
VALUE_SIGMA = 0.8
TIP_MEAN_FRACTION = 0.05
P_OUT_OF_GAS = 0.01
KIND_P = (0.5, 0.3, 0.2)  # transfer, swap, contract
KIND_GAS = (21_000.0, 150_000.0, 80_000.0)
KIND_GAS_SIGMA = (0.0, 0.3, 0.5)
KIND_BYTES = (120.0, 400.0, 600.0)
SWAP = 1
ARRIVAL, GAS_USED, GAS_LIMIT, SIZE, MAX_FEE, TIP, IS_SWAP, OOG = range(8)
_KIND_CUM = np.cumsum(KIND_P)[:-1]


@dataclass
class BlockTxs:
    n: int
    gas_used: int
    bytes: int
    prices: np.ndarray  # effective gas price (base + tip) of each included tx
    fees: float  # sum gas * price
    swap_fees: float
    failed_oog: int


class TxPool:
    """Pending transactions as rows of one preallocated float64 array (columns ARRIVAL..OOG; gas and byte
    counts are integers far below 2^53, so float64 holds them exactly). Rows stay in arrival order."""

    def __init__(self, capacity: int, default_base_price: float) -> None:
        self.capacity = int(capacity)
        self.ref_value = REF_VALUE_X * float(default_base_price)
        self.data = np.zeros((self.capacity, 8))
        self.count = 0
        self.pending_gas = 0.0
        # cumulative counters (the chain differences them per window)
        self.submitted = 0
        self.priced_out = 0
        self.failed_full = 0
        self.failed_expired = 0
        self.failed_underpriced = 0

    def pending_bytes(self) -> int:
        return int(self.data[: self.count, SIZE].sum())

    def arrive(
        self,
        rng: np.random.Generator,
        t0_ms: float,
        t1_ms: float,
        rate_tps: float,
        base_price: float,
        block_gas_limit: int,
    ) -> None:
        """Poisson arrivals in (t0, t1] at a constant rate."""
        if t1_ms <= t0_ms or rate_tps <= 0:
            return
        k = int(rng.poisson(rate_tps * (t1_ms - t0_ms) / 1000.0))
        if k == 0:
            return
        max_fee = self.ref_value * rng.lognormal(0.0, VALUE_SIGMA, k)
        keep = max_fee >= base_price
        n_keep = int(keep.sum())
        self.priced_out += k - n_keep
        if n_keep == 0:
            return
        k = n_keep
        u = rng.random((5, k))
        kind = np.searchsorted(_KIND_CUM, u[0], side="right")
        rows = np.empty((k, 8))
        rows[:, ARRIVAL] = np.sort(t0_ms + (t1_ms - t0_ms) * u[1])
        z = rng.standard_normal((2, k))
        gas = np.minimum(
            np.floor(np.asarray(KIND_GAS)[kind] * np.exp(np.asarray(KIND_GAS_SIGMA)[kind] * z[0])),
            2_000_000.0,
        )
        rows[:, GAS_USED] = gas
        rows[:, GAS_LIMIT] = np.floor(gas * 1.25)
        rows[:, SIZE] = np.floor(np.asarray(KIND_BYTES)[kind] * np.exp(0.3 * z[1])) + 60.0
        rows[:, MAX_FEE] = max_fee[keep]
        congestion = min(2.0, self.pending_gas / float(block_gas_limit))
        tip_draw = -np.log1p(-u[2]) * TIP_MEAN_FRACTION  # Exp(mean 5%)
        rows[:, TIP] = np.minimum(
            base_price * tip_draw * (1.0 + 4.0 * congestion), rows[:, MAX_FEE] - base_price
        )
        rows[:, IS_SWAP] = kind == SWAP
        rows[:, OOG] = u[3] < P_OUT_OF_GAS
        self.submitted += k
        room = self.capacity - self.count
        if k > room:
            self.failed_full += k - room
            k = room
        self.data[self.count : self.count + k] = rows[:k]
        self.count += k
        self.pending_gas += float(rows[:k, GAS_LIMIT].sum())

    def _keep(self, mask: np.ndarray) -> None:
        kept = self.data[: self.count][mask]
        self.count = kept.shape[0]
        self.data[: self.count] = kept
        self.pending_gas = float(kept[:, GAS_LIMIT].sum())

    def build_block(self, now_ms: float, base_price: float, block_gas_limit: int, ttl_ms: float) -> BlockTxs:
        n = self.count
        if n:
            d = self.data[:n]
            expired = d[:, ARRIVAL] < now_ms - ttl_ms
            under = d[:, MAX_FEE] < base_price
            n_exp = int(expired.sum())
            n_under = int((under & ~expired).sum())
            if n_exp or n_under:
                self.failed_expired += n_exp
                self.failed_underpriced += n_under
                self._keep(~(expired | under))
                n = self.count
        if n == 0:
            return BlockTxs(0, 0, 0, np.zeros(0), 0.0, 0.0, 0)
        d = self.data[:n]
        order = np.argsort(-d[:, TIP], kind="stable")  # rows are in arrival order: ties go to the earlier
        oog_all = d[:, OOG] > 0
        consumed = np.where(oog_all, d[:, GAS_LIMIT], d[:, GAS_USED])
        cum = np.cumsum(consumed[order])
        take = order[: int(np.searchsorted(cum, block_gas_limit, side="right"))]
        t = d[take]
        gas = consumed[take]
        prices = base_price + t[:, TIP]
        fees_each = gas * prices
        blk = BlockTxs(
            n=int(take.size),
            gas_used=int(gas.sum()),
            bytes=int(t[:, SIZE].sum()),
            prices=prices,
            fees=float(fees_each.sum()),
            swap_fees=float(fees_each[t[:, IS_SWAP] > 0].sum()),
            failed_oog=int(oog_all[take].sum()),
        )
        mask = np.ones(n, dtype=bool)
        mask[take] = False
        self._keep(mask)
        return blk
