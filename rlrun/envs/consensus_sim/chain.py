"""SimPy simulation of a BFT proof-of-stake chain (CometBFT-style heights and rounds). Time unit: ms.

Per height:
1. The proposer of the next height proposes at max(previous timestamp + target block time, the moment it
   learnt the previous commit): blocks are spaced by the target unless consensus is slower than that.
2. Round r: the proposer is chosen by proposer priority. An offline proposer costs timeout_propose
   (3000 ms + 500 ms per round) and the round moves on; if the online voting power is not above 2/3, the
   round fails after timeout_propose + timeout_prevote (1000 ms + 500 ms per round).
3. A successful round: the block (transactions picked from the mempool at the proposal time) reaches
   validator i after latency(region_p, region_i) + both last-mile delays + block bytes / bandwidth_i +
   execution time (gas / EXEC_GAS_PER_MS). Prevotes and precommits are broadcast; a validator precommits
   when it has seen prevotes of more than 2/3 of the voting power, and commits when it has seen precommits
   of more than 2/3. The power-weighted 2/3 quantile is computed per destination region (latency =
   region table entry + sender and receiver last-mile delays), so a round costs a few sorts of n values.
   Commit latency of validator j = its commit time - proposal time.
4. The next proposer includes in its block the precommits that reached it before it proposes (the
   LastCommit): a short target block time leaves the slow validators' precommits out. Validators not in the
   LastCommit missed the height (missed signatures feed reputation and downtime jailing).

Network regions and their latency table are the shared chain core's (`rlrun.envs.chain.tables`, SimBlock
2019 measurements); the gossip topology of the PoW simulator is not used: BFT votes go to all validators,
so the region-level delay model above is what matters here.

Other processes: load bursts (SimPy process toggling a rate multiplier), region outages ("incidents", all
validators of a region offline for a while), double-sign slashing (rare), Cosmos x/mint inflation moving
towards the 67% bonded goal and delegators bonding or unbonding as the staking yield compares with an
outside yield (`economy.py`, on a policy clock `economy_speedup` times faster), and reward distribution
(block provisions + fees, 2% community tax, half of rewards auto-compounded into stake).

MEV heuristic (documented, per block): value = mev_propensity(proposer) * swap fees in the block *
(0.5 + pending congestion after the block, capped at 1), where mev_propensity is the probability that the
proposer runs extraction software (high for large DPoS operators, low for RPoS). The observation's
mev_estimate is the window's MEV value / window fees: the share of fee value captured by ordering.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from rlrun.envs.chain import tables
from rlrun.envs.consensus_sim import economy
from rlrun.envs.consensus_sim.economy import COMMUNITY_TAX
from rlrun.envs.consensus_sim.txpool import TxPool
from rlrun.envs.consensus_sim.validators import DPOS, POS, RPOS, ValidatorSet, gini

TIMEOUT_PROPOSE_MS = 3000.0
TIMEOUT_PREVOTE_MS = 1000.0
TIMEOUT_DELTA_MS = 500.0
EXEC_GAS_PER_MS = 150_000.0  # 150M gas/s execution speed
BLOCK_HEADER_BYTES = 1_000
GAS_PRICE_UNIT_UQOR = 1e-3  # fee in uqor = gas * price * unit
TOTAL_SUPPLY_UQOR = 1e15
DOUBLE_SIGN_PER_BLOCK = 2e-5
MS_PER_YEAR = 365.25 * 86400 * 1000.0


@dataclass
class ChainParams:
    """The RL-tunable consensus parameters (current values)."""

    target_block_time_ms: float
    base_gas_price: float
    pool_weight_rpos: float
    pool_weight_dpos: float

    def pool_weights(self) -> dict[int, float]:
        return {
            RPOS: self.pool_weight_rpos,
            DPOS: self.pool_weight_dpos,
            POS: max(0.0, 1.0 - self.pool_weight_rpos - self.pool_weight_dpos),
        }


@dataclass
class SimConfig:
    validator_set_size: int = 100
    extra_candidates: int = 20
    block_gas_limit: int = 20_000_000
    tx_rate: float = 40.0
    daily_cycle_amplitude: float = 0.3
    burst_rate_per_hour: float = 3.0
    burst_multiplier: float = 3.0
    burst_duration_s: float = 300.0
    incident_rate_per_hour: float = 0.5
    incident_duration_s: float = 90.0
    tx_ttl_s: float = 60.0
    mempool_capacity: int = 20_000
    default_block_time_ms: float = 5000.0
    default_base_gas_price: float = 100.0
    economy_speedup: float = 1000.0  # x/mint and delegation run this many times faster than consensus


@dataclass
class BlockRecord:
    height: int
    timestamp_ms: int
    block_time_ms: float
    target_ms: float
    rounds: int
    n_tx: int
    gas_used: int
    bytes: int
    utilization: float
    commit_avg_ms: float
    commit_max_ms: float
    precommit_ratio: float  # power share in this block's LastCommit (previous height)
    missed_ratio: float  # share of the previous height's validators missing from the LastCommit
    fees: float
    failed_oog: int
    mev_value: float
    reward_per_validator: float
    validators_online: int  # active validators up (not offline, region not down) at this height
    mempool_count: int  # pending transactions when the proposer built this block (before inclusion)
    mempool_bytes: int
    prices: np.ndarray = field(repr=False)


class ChainSim:
    """One episode's chain. `run_blocks(n)` advances the SimPy clock until n more blocks are committed."""

    def __init__(
        self,
        cfg: SimConfig,
        params: ChainParams,
        rng: np.random.Generator,
        on_block: Callable[[BlockRecord], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.params = params
        self.rng = rng
        self.on_block = on_block
        self.latency = np.asarray(tables.LATENCY_MS, dtype=np.float64)
        self.n_regions = self.latency.shape[0]
        self.vals = ValidatorSet(
            rng,
            cfg.validator_set_size,
            cfg.extra_candidates,
            total_stake=TOTAL_SUPPLY_UQOR * rng.uniform(0.55, 0.72),
        )
        self.pool = TxPool(cfg.mempool_capacity, cfg.default_base_gas_price)
        self.supply = TOTAL_SUPPLY_UQOR
        self.inflation = float(rng.uniform(0.08, 0.14))
        self.blocks_per_year = MS_PER_YEAR / cfg.default_block_time_ms  # x/mint BlocksPerYear (genesis)
        # delegation noise on its own stream (spawned, not drawn, so the other processes' draws are unchanged)
        self.econ_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
        self.day_phase_s = float(rng.uniform(0, 86400))
        self.burst = False
        self.region_down = np.zeros(self.n_regions, dtype=bool)
        self.height = 0
        self.slash_events = 0
        self.jail_events = 0
        self._gen_until = 0.0
        self.active = self.vals.active_indices(0)
        self.power = self.vals.voting_power(self.active, params.pool_weights())
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None  # LastCommit inputs
        self.env = simpy.Environment()
        self._stop: simpy.Event | None = None
        self._stop_height = 0
        self.env.process(self._blocks())
        self.env.process(self._bursts())
        self.env.process(self._incidents())

    # ---- public -------------------------------------------------------------------------------------
    def run_blocks(self, n: int) -> None:
        self._stop_height = self.height + int(n)
        self._stop = self.env.event()
        self.env.run(until=self._stop)

    def refresh_power(self) -> None:
        """Recompute the active set and voting power (after pool-weight changes, at observation
        boundaries)."""
        self.vals.refresh_reputation_multiplier()
        self.active = self.vals.active_indices(self.height)
        self.power = self.vals.voting_power(self.active, self.params.pool_weights())

    @property
    def now_ms(self) -> float:
        return float(self.env.now)

    def gini(self) -> float:
        return gini(self.power)

    def bonded_ratio(self) -> float:
        return float(self.vals.stake.sum() / self.supply)

    def tx_rate(self, t_ms: float) -> float:
        c = self.cfg
        day = 1.0 + c.daily_cycle_amplitude * math.sin(
            2 * math.pi * (t_ms / 1000.0 + self.day_phase_s) / 86400.0
        )
        return c.tx_rate * max(0.0, day) * (c.burst_multiplier if self.burst else 1.0)

    def _economy(self, block_ms: float) -> None:
        """One block of monetary policy and delegation on the policy clock (economy.py)."""
        years = max(block_ms, 0.0) / economy.MS_PER_YEAR * self.cfg.economy_speedup
        if years <= 0:
            return
        bonded = self.bonded_ratio()
        self.inflation = economy.next_inflation(self.inflation, bonded, years)
        delta = economy.bonded_change(self.inflation, bonded, years, float(self.econ_rng.standard_normal()))
        total = float(self.vals.stake.sum())
        if total > 0:
            self.vals.stake *= 1.0 + delta * self.supply / total  # pro rata: power shares stay put

    # ---- processes ----------------------------------------------------------------------------------
    def _generate_until(self, t_ms: float) -> None:
        if t_ms > self._gen_until:
            self.pool.arrive(
                self.rng,
                self._gen_until,
                t_ms,
                self.tx_rate(0.5 * (self._gen_until + t_ms)),
                self.params.base_gas_price,
                self.cfg.block_gas_limit,
            )
            self._gen_until = t_ms

    def _bursts(self):
        rate = self.cfg.burst_rate_per_hour / 3.6e6
        if rate <= 0:
            return
        while True:
            yield self.env.timeout(self.rng.exponential(1.0 / rate))
            self._generate_until(self.env.now)
            self.burst = True
            yield self.env.timeout(self.rng.exponential(self.cfg.burst_duration_s * 1000.0))
            self._generate_until(self.env.now)
            self.burst = False

    def _incidents(self):
        rate = self.cfg.incident_rate_per_hour / 3.6e6
        if rate <= 0:
            return
        shares = np.bincount(self.vals.region, minlength=self.n_regions).astype(float)
        while True:
            yield self.env.timeout(self.rng.exponential(1.0 / rate))
            r = int(self.rng.choice(self.n_regions, p=shares / shares.sum()))
            self.region_down[r] = True
            yield self.env.timeout(self.rng.exponential(self.cfg.incident_duration_s * 1000.0))
            self.region_down[r] = False

    def _online(self, idx: np.ndarray) -> np.ndarray:
        return self.vals.online[idx] & ~self.region_down[self.vals.region[idx]]

    def _quorum(self, times: np.ndarray, power: np.ndarray) -> np.ndarray:
        """times[region, validator] -> per region the earliest time at which arrivals carry more than 2/3
        of the voting power (inf if they never do)."""
        order = np.argsort(times, axis=1)
        cum = np.cumsum(power[order], axis=1)
        reached = cum > 2.0 / 3.0
        idx = np.argmax(reached, axis=1)
        rows = np.arange(times.shape[0])
        t = times[rows, order[rows, idx]]
        return np.where(reached[rows, idx], t, np.inf)

    def _blocks(self):
        env, cfg, vals = self.env, self.cfg, self.vals
        t_prev, c_prev = 0.0, 0.0
        lat = self.latency  # [from, to]
        lat_to = np.ascontiguousarray(lat.T)  # [to, from]
        while True:
            start = max(t_prev + self.params.target_block_time_ms, c_prev)
            if start > env.now:
                yield env.timeout(start - env.now)
            vals.step_availability(self.rng)
            rounds = 0
            while True:
                active, power = self.active, self.power
                proposer = vals.next_proposer(active, power)
                online = self._online(active)
                if not online[np.searchsorted(active, proposer)]:
                    vals.penalise_missed_proposal(proposer)
                    yield env.timeout(TIMEOUT_PROPOSE_MS + rounds * TIMEOUT_DELTA_MS)
                    rounds += 1
                    continue
                if power[online].sum() <= 2.0 / 3.0:
                    yield env.timeout(TIMEOUT_PROPOSE_MS + TIMEOUT_PREVOTE_MS + 2 * rounds * TIMEOUT_DELTA_MS)
                    rounds += 1
                    vals.step_availability(self.rng)
                    continue
                break
            now = float(env.now)
            self.height += 1
            h = self.height
            # LastCommit of the previous height, as gathered by this proposer by now
            precommit_ratio, missed_ratio = 1.0, 0.0
            if self._last is not None:
                last_active, last_power, pc_arrival, _ = self._last
                arrive = pc_arrival[vals.region[proposer]] + vals.access_ms[proposer]
                signed = arrive <= now
                precommit_ratio = float(last_power[signed].sum())
                missed_ratio = float(1.0 - signed.mean())
                slashes, jails, slashed = vals.record_signatures(h - 1, last_active, signed)
                self.slash_events += slashes
                self.jail_events += jails
                self.supply -= slashed
                if jails:
                    self.refresh_power()
            if self.rng.random() < DOUBLE_SIGN_PER_BLOCK:
                culprit = int(self.rng.choice(self.active))
                self.supply -= vals.double_sign(culprit)
                self.slash_events += 1
                self.jail_events += 1
                self.refresh_power()
            # the block
            self._generate_until(now)
            pending, pending_bytes = self.pool.count, self.pool.pending_bytes()
            blk = self.pool.build_block(
                now, self.params.base_gas_price, cfg.block_gas_limit, cfg.tx_ttl_s * 1000.0
            )
            nbytes = blk.bytes + BLOCK_HEADER_BYTES
            active, power = self.active, self.power
            online = self._online(active)
            reg = vals.region[active]
            acc = vals.access_ms[active]
            p_reg = vals.region[proposer]
            t_recv = (
                lat[p_reg, reg]
                + vals.access_ms[proposer]
                + acc
                + nbytes * 8.0 / (vals.bandwidth_mbps[active] * 1000.0)
                + blk.gas_used / EXEC_GAS_PER_MS
            )
            t_recv[active == proposer] = blk.gas_used / EXEC_GAS_PER_MS
            t_recv = np.where(online, t_recv, np.inf)
            proc = vals.proc_ms[active]
            prevote_send = t_recv + proc
            q_pv = self._quorum((prevote_send + acc)[None, :] + lat_to[:, reg], power)
            pc_send = np.maximum(t_recv, q_pv[reg] + acc) + proc
            pc_at_region = (pc_send + acc)[None, :] + lat_to[:, reg]  # [to region, from validator]
            q_pc = self._quorum(pc_at_region, power)
            commit = np.maximum(q_pc[reg] + acc, t_recv)[online]
            commit_avg = float(commit.mean())
            commit_max = float(commit.max())
            self._last = (active, power, now + pc_at_region, now)
            # rewards, inflation, bonded stake
            fees_uqor = blk.fees * GAS_PRICE_UNIT_UQOR
            provisions = self.inflation * self.supply / self.blocks_per_year
            reward = (provisions + fees_uqor) * (1.0 - COMMUNITY_TAX)
            self.supply += provisions
            vals.stake[active] += 0.5 * reward * power
            self._economy(now - t_prev)
            congestion = min(1.0, self.pool.pending_gas / cfg.block_gas_limit)
            mev = vals.mev_propensity[proposer] * blk.swap_fees * (0.5 + congestion)
            rec = BlockRecord(
                height=h,
                timestamp_ms=int(round(now)),
                block_time_ms=now - t_prev,
                target_ms=float(self.params.target_block_time_ms),
                rounds=rounds,
                n_tx=blk.n,
                gas_used=blk.gas_used,
                bytes=blk.bytes,
                utilization=blk.gas_used / cfg.block_gas_limit,
                commit_avg_ms=commit_avg,
                commit_max_ms=commit_max,
                precommit_ratio=precommit_ratio,
                missed_ratio=missed_ratio,
                fees=blk.fees,
                failed_oog=blk.failed_oog,
                mev_value=mev,
                reward_per_validator=reward / max(1, active.size),
                validators_online=int(online.sum()),
                mempool_count=int(pending),
                mempool_bytes=int(pending_bytes),
                prices=blk.prices,
            )
            t_prev = now
            # the next proposer learns the commit when the precommit quorum reaches its region
            c_prev = now + float(np.max(q_pc[np.unique(reg)]))
            if self.on_block is not None:
                self.on_block(rec)
            if self._stop is not None and h >= self._stop_height and not self._stop.triggered:
                self._stop.succeed()
