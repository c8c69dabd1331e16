"""The validator set of the BFT proof-of-stake chain: stake, pools, regions, liveness, reputation, jailing.

Three validator pools, as in QoreChain's triple-pool PoS (the seed tunes the RPoS and DPoS pool weights):
- dpos  few professional operators with large delegated stakes (Pareto), data-centre links in NA/EU,
        very reliable, most likely to run MEV extraction;
- pos   medium self-bonded stakes, good links;
- rpos  many small operators whose power is also weighted by reputation, spread over all regions, slower
        links and less reliable; least likely to extract MEV.
A pool's weight is the share of total voting power it receives; inside a pool power follows stake (times
the reputation multiplier of `rlrun.governance.detmath` for rpos). Moving weight towards rpos spreads power
over many small validators (lower Gini, less MEV) at the cost of slower, less reliable quorums.

Liveness is a two-state Markov chain per validator (mean outage `1/P_UP` blocks, availability =
reliability), plus region-wide incidents imposed by the chain. Missed signatures (offline, or a precommit
that reached the next proposer too late) fill a sliding window of SIGNED_BLOCKS_WINDOW heights; more than
(1 - MIN_SIGNED_PER_WINDOW) of it missed jails the validator for JAIL_BLOCKS and slashes
SLASH_FRACTION_DOWNTIME of its stake (Cosmos x/slashing defaults). A rare double-sign slashes 5% and
tombstones. The active set is the top `set_size` non-jailed candidates by stake.

Proposer rotation is Tendermint's weighted round robin (proposer priority): every round each active
validator's priority grows by its voting power, the highest priority proposes and loses the total power.
"""

from __future__ import annotations

import functools

import numpy as np

from rlrun.governance import detmath

POOLS = ("rpos", "dpos", "pos")
RPOS, DPOS, POS = 0, 1, 2
#: validator share per region (NA, EU, SA, AP, JP, AU; regions of rlrun.envs.chain.tables) for each pool
REGION_SHARES = {
    RPOS: [0.28, 0.32, 0.08, 0.16, 0.08, 0.08],
    DPOS: [0.45, 0.45, 0.0, 0.05, 0.05, 0.0],
    POS: [0.38, 0.40, 0.03, 0.10, 0.05, 0.04],
}
POOL_SIZE_SHARE = {DPOS: 0.20, POS: 0.35, RPOS: 0.45}  # of the candidates
SIGNED_BLOCKS_WINDOW = 100
MIN_SIGNED_PER_WINDOW = 0.5
JAIL_BLOCKS = 120  # 600 s downtime jail at 5 s blocks
SLASH_FRACTION_DOWNTIME = 0.0001
SLASH_FRACTION_DOUBLE_SIGN = 0.05
P_UP = 0.05  # per-block probability an offline validator comes back (mean outage 20 blocks)
REPUTATION_RATE = 0.02  # EWMA rate of the reputation score per signed/missed height
POWER_UNITS = 1_000_000  # integer voting power for proposer priority


@functools.cache
def _REP_TABLE() -> np.ndarray:  # noqa: N802 (a constant, computed once)
    return np.array(
        [detmath.to_float(detmath.reputation_multiplier(m * detmath.ONE // 1000)) for m in range(1001)]
    )


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: sum_ij |x_i - x_j| / (2 n^2 mean)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2.0 * np.dot(ranks, x)) / (n * total) - (n + 1.0) / n)


class ValidatorSet:
    def __init__(
        self, rng: np.random.Generator, set_size: int, extra_candidates: int, total_stake: float
    ) -> None:
        n = int(set_size) + int(extra_candidates)
        self.n = n
        self.set_size = int(set_size)
        counts = {p: int(round(POOL_SIZE_SHARE[p] * n)) for p in (DPOS, POS)}
        counts[RPOS] = n - counts[DPOS] - counts[POS]
        pool = np.concatenate([np.full(counts[p], p) for p in (RPOS, DPOS, POS)])
        self.pool = pool.astype(np.int64)
        stake = np.empty(n)
        stake[pool == DPOS] = (rng.pareto(1.3, counts[DPOS]) + 1.0) * 20.0
        stake[pool == POS] = rng.lognormal(np.log(6.0), 0.5, counts[POS])
        stake[pool == RPOS] = rng.lognormal(np.log(1.5), 0.7, counts[RPOS])
        self.stake = stake / stake.sum() * total_stake
        self.region = np.empty(n, dtype=np.int64)
        for p in (RPOS, DPOS, POS):
            m = pool == p
            shares = np.asarray(REGION_SHARES[p])
            self.region[m] = rng.choice(len(shares), size=int(m.sum()), p=shares / shares.sum())
        # link bandwidth (Mbit/s), last-mile delay (ms), per-message processing (ms), availability
        bw_median = np.select([pool == DPOS, pool == POS], [800.0, 300.0], 60.0)
        self.bandwidth_mbps = bw_median * rng.lognormal(0.0, 0.4, n)
        self.access_ms = np.select([pool == DPOS, pool == POS], [1.0, 3.0], 10.0) * rng.lognormal(0.0, 0.5, n)
        self.proc_ms = np.select([pool == DPOS, pool == POS], [3.0, 6.0], 12.0) * rng.lognormal(0.0, 0.3, n)
        low = np.select([pool == DPOS, pool == POS], [0.995, 0.985], 0.96)
        self.reliability = low + (1.0 - low) * rng.random(n) * 0.9
        self.mev_propensity = np.clip(
            np.select([pool == DPOS, pool == POS], [0.6, 0.3], 0.08) + rng.normal(0.0, 0.1, n), 0.0, 1.0
        )
        self.reputation = np.clip(np.select([pool == RPOS], [0.8], 0.7) + rng.normal(0.0, 0.1, n), 0.05, 1.0)
        self.online = rng.random(n) < self.reliability
        self.jailed_until = np.zeros(n, dtype=np.int64)  # height at which a jailed validator returns
        self.tombstoned = np.zeros(n, dtype=bool)
        self.missed = np.zeros((SIGNED_BLOCKS_WINDOW, n), dtype=bool)
        self.priority = np.zeros(n, dtype=np.int64)
        self._rep_mult = np.ones(n)
        self.refresh_reputation_multiplier()

    # ---- liveness -----------------------------------------------------------------------------------
    def step_availability(self, rng: np.random.Generator) -> None:
        """One block of the per-validator up/down Markov chain (stationary availability = reliability)."""
        p_down = P_UP * (1.0 - self.reliability) / self.reliability
        u = rng.random(self.n)
        self.online = np.where(self.online, u >= p_down, u < P_UP)

    # ---- set and power ------------------------------------------------------------------------------
    def active_indices(self, height: int) -> np.ndarray:
        eligible = np.flatnonzero((self.jailed_until <= height) & ~self.tombstoned)
        if eligible.size > self.set_size:
            order = np.lexsort((eligible, -self.stake[eligible]))
            eligible = np.sort(eligible[order[: self.set_size]])
        return eligible

    def refresh_reputation_multiplier(self) -> None:
        """ReputationMultiplier on 18-digit decimals (deterministic) of the reputation in steps of 0.001,
        refreshed at observation boundaries and set changes."""
        milli = np.clip(np.round(self.reputation * 1000.0), 0, 1000).astype(np.int64)
        self._rep_mult = _REP_TABLE()[milli]

    def voting_power(self, active: np.ndarray, weights: dict[int, float]) -> np.ndarray:
        """Normalised voting power of the active validators under the pool weights (weights of pools with
        no active member are redistributed pro rata)."""
        pools = self.pool[active]
        base = self.stake[active] * np.where(pools == RPOS, self._rep_mult[active], 1.0)
        power = np.zeros(active.size)
        present = {p: w for p, w in weights.items() if np.any(pools == p) and w > 0}
        total_w = sum(present.values())
        if total_w <= 0:
            return base / base.sum()
        for p, w in present.items():
            m = pools == p
            power[m] = w / total_w * base[m] / base[m].sum()
        return power

    # ---- proposer rotation (Tendermint proposer priority) ---------------------------------------------
    def next_proposer(self, active: np.ndarray, power: np.ndarray) -> int:
        vp = np.maximum(1, np.round(power * POWER_UNITS)).astype(np.int64)
        total = int(vp.sum())
        pr = self.priority[active]
        pr = pr - int(np.round(pr.mean()))  # centre, as Tendermint does after set changes
        pr = np.clip(pr, -2 * total, 2 * total) + vp
        k = int(np.argmax(pr))  # ties: lowest index, deterministic
        pr[k] -= total
        self.priority[active] = pr
        return int(active[k])

    # ---- signatures, reputation, slashing -----------------------------------------------------------
    def record_signatures(
        self, height: int, active: np.ndarray, signed: np.ndarray
    ) -> tuple[int, int, float]:
        """Book one height's LastCommit: update the missed window and reputation; jail/slash validators over
        the downtime limit. Returns (slashes, jails, slashed stake)."""
        row = self.missed[height % SIGNED_BLOCKS_WINDOW]
        row[:] = False
        row[active] = ~signed
        rep = self.reputation[active]
        self.reputation[active] = rep + REPUTATION_RATE * (signed.astype(np.float64) - rep)
        counts = self.missed.sum(axis=0)
        limit = int(round((1.0 - MIN_SIGNED_PER_WINDOW) * SIGNED_BLOCKS_WINDOW))
        over = np.flatnonzero(counts > limit)
        slashed = 0.0
        for i in over.tolist():
            cut = self.stake[i] * SLASH_FRACTION_DOWNTIME
            self.stake[i] -= cut
            slashed += cut
            self.jailed_until[i] = height + JAIL_BLOCKS
            self.missed[:, i] = False
            self.reputation[i] *= 0.9
        return len(over), len(over), slashed

    def double_sign(self, i: int) -> float:
        cut = self.stake[i] * SLASH_FRACTION_DOUBLE_SIGN
        self.stake[i] -= cut
        self.tombstoned[i] = True
        self.reputation[i] *= 0.5
        return cut

    def penalise_missed_proposal(self, i: int) -> None:
        self.reputation[i] -= REPUTATION_RATE * self.reputation[i]
