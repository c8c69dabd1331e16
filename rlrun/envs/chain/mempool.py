"""Transactions: the arrival process (`TxWorkload`) and the shared mempool (`Mempool`).

Every transaction is one row of preallocated numpy arrays (creation time, size, fee rate, origin node,
status, confirming block), never a Python object, so a window of tens of thousands of arrivals costs a few
numpy calls.

Gossip. A transaction created at node o at time t is in node j's mempool from t + D[o, j], where D is the
fastest-path delay over the topology with a per-hop relay delay (Bitcoin trickles transaction
announcements). Simulating each small transaction message per link would multiply the event count by ~1000
for a detail that only shifts when a miner first sees a transaction, so the mempool is one global pool plus
per-miner visibility.

Status. A transaction is PENDING, CONFIRMED (in a block of the canonical, most-work chain) or EVICTED
(dropped at the lowest fee rate when pending bytes exceed the mempool limit, as Bitcoin Core's maxmempool
does). A reorg moves the transactions of detached blocks back to PENDING. So at any time:
created = confirmed + pending + evicted, and no transaction is in two canonical blocks.

Block templates take the highest-fee-rate visible transactions first, up to the block size (a prefix cut, so a
large transaction can end a template early).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlrun.envs.chain.spec import check_keys, choice, number

PENDING, CONFIRMED, EVICTED = 0, 1, 2
PATTERNS = ("steady", "daily", "bursts")
_DAY_S = 86400.0
CHUNK_S = 600.0  # arrivals are drawn per chunk of this many simulated seconds (TxWorkload)

_TX_KEYS = {
    "rate_tps", "pattern", "daily_amplitude", "burst_factor", "burst_every_s", "burst_mean_s",
    "size_mean_bytes", "size_sigma", "fee_median", "fee_sigma", "mempool_max_mb",
}


@dataclass
class TxWorkloadSpec:
    """What `env.transactions` may hold.

    rate_tps: mean arrival rate (tx/s). pattern: steady (Poisson), daily (rate * (1 + daily_amplitude *
    sin(2 pi t / 1 day))), bursts (bursts start every burst_every_s on average, last burst_mean_s on average,
    and multiply the rate by burst_factor). Sizes are lognormal with mean size_mean_bytes; fee rates (sat/vB)
    lognormal with median fee_median.
    """

    rate_tps: float = 3.0  # Bitcoin averaged ~3-4 tx/s in 2019
    pattern: str = "steady"
    daily_amplitude: float = 0.5
    burst_factor: float = 5.0
    burst_every_s: float = 3600.0
    burst_mean_s: float = 300.0
    size_mean_bytes: float = 400.0
    size_sigma: float = 0.5
    fee_median: float = 10.0
    fee_sigma: float = 1.0
    mempool_max_mb: float = 300.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, prefix: str = "env.transactions") -> TxWorkloadSpec:
        spec = cls(**{k: v for k, v in check_keys(cfg, _TX_KEYS, prefix).items() if v is not None})
        spec.rate_tps = number(spec.rate_tps, f"{prefix}.rate_tps", low=0.0)
        spec.pattern = choice(spec.pattern, f"{prefix}.pattern", PATTERNS)
        spec.daily_amplitude = number(spec.daily_amplitude, f"{prefix}.daily_amplitude", low=0.0, high=1.0)
        spec.burst_factor = number(spec.burst_factor, f"{prefix}.burst_factor", low=1.0)
        spec.burst_every_s = number(spec.burst_every_s, f"{prefix}.burst_every_s", low=0.0, low_open=True)
        spec.burst_mean_s = number(spec.burst_mean_s, f"{prefix}.burst_mean_s", low=0.0, low_open=True)
        spec.size_mean_bytes = number(spec.size_mean_bytes, f"{prefix}.size_mean_bytes", low=60.0)
        spec.size_sigma = number(spec.size_sigma, f"{prefix}.size_sigma", low=0.0)
        spec.fee_median = number(spec.fee_median, f"{prefix}.fee_median", low=0.0, low_open=True)
        spec.fee_sigma = number(spec.fee_sigma, f"{prefix}.fee_sigma", low=0.0)
        spec.mempool_max_mb = number(spec.mempool_max_mb, f"{prefix}.mempool_max_mb", low=0.0, low_open=True)
        return spec


class TxWorkload:
    """Transaction demand: an exogenous arrival process, the same whatever the simulation does with it.

    Arrivals are drawn in fixed chunks of CHUNK_S simulated seconds (aligned to t = 0) from the workload's own
    random stream, and `generate` hands out the part of them that falls in the requested window. So on a given
    stream the transactions (times, sizes, fees, origins) and the burst schedule do not depend on how a caller
    splits time into windows nor on anything else drawn during the run: every policy played on one seed faces
    the same demand, and paired comparisons between policies see only the policies' own effect. Give it a
    stream of its own (`BlockchainEnv.new_simulation` does)."""

    def __init__(self, spec: TxWorkloadSpec, n_nodes: int, rng: np.random.Generator) -> None:
        self.spec = spec
        self.n_nodes = n_nodes
        self.rng = rng
        self.last_expected = 0.0  # expected arrivals (integral of the rate) of the last generated window
        self._drawn_to = 0.0  # arrivals are drawn for [0, _drawn_to)
        self._taken_to = 0.0  # and handed out for [0, _taken_to)
        # drawn arrivals not yet handed out: chunks of (times, sizes, fees, origins), in time order
        self._ready: list[tuple[np.ndarray, ...]] = []
        # burst schedule, drawn ahead as far as arrivals are: bursts [start, end), in order and disjoint
        self._burst_start: list[float] = []
        self._burst_end: list[float] = []
        bursts = spec.pattern == "bursts"
        self._next_burst = float(rng.exponential(spec.burst_every_s)) if bursts else math.inf

    # ---- the rate ----------------------------------------------------------------------------------
    def _draw_bursts(self, t: float) -> None:
        """Extend the burst schedule to every burst that starts before t."""
        s = self.spec
        while self._next_burst < t:
            end = self._next_burst + float(self.rng.exponential(s.burst_mean_s))
            self._burst_start.append(self._next_burst)
            self._burst_end.append(end)
            self._next_burst = end + float(self.rng.exponential(s.burst_every_s))

    def _bursts_from(self, t: float) -> range:
        """Indexes of the drawn bursts that end after t."""
        return range(bisect.bisect_right(self._burst_end, t), len(self._burst_start))

    def rate_at(self, t: float) -> float:
        """Arrival rate (tx/s) at time t."""
        self._draw_to(t)
        return self._rate(t)

    def _rate(self, t: float) -> float:
        s = self.spec
        if s.pattern == "daily":
            return s.rate_tps * (1.0 + s.daily_amplitude * math.sin(2.0 * math.pi * t / _DAY_S))
        if s.pattern == "bursts":
            i = bisect.bisect_right(self._burst_start, t) - 1
            if i >= 0 and t < self._burst_end[i]:
                return s.rate_tps * s.burst_factor
        return s.rate_tps

    def expected(self, t0: float, t1: float) -> float:
        """Expected arrivals in [t0, t1): the integral of the rate (the offered load)."""
        s = self.spec
        if t1 <= t0:
            return 0.0
        if s.pattern == "daily":
            w = 2.0 * math.pi / _DAY_S
            return s.rate_tps * ((t1 - t0) + s.daily_amplitude / w * (math.cos(w * t0) - math.cos(w * t1)))
        base = s.rate_tps * (t1 - t0)
        if s.pattern != "bursts":
            return base
        self._draw_to(t1)
        in_burst = 0.0
        for i in self._bursts_from(t0):
            if self._burst_start[i] >= t1:
                break
            in_burst += min(t1, self._burst_end[i]) - max(t0, self._burst_start[i])
        return base + s.rate_tps * (s.burst_factor - 1.0) * in_burst

    # ---- arrivals ----------------------------------------------------------------------------------
    def _poisson_times(self, t0: float, t1: float, rate: float) -> np.ndarray:
        if rate <= 0.0 or t1 <= t0:
            return np.empty(0)
        k = int(self.rng.poisson(rate * (t1 - t0)))
        return np.sort(self.rng.uniform(t0, t1, size=k))

    def _chunk_times(self, t0: float, t1: float) -> np.ndarray:
        s = self.spec
        if s.pattern == "steady":
            return self._poisson_times(t0, t1, s.rate_tps)
        if s.pattern == "daily":  # thinning of a homogeneous process at the peak rate
            peak = s.rate_tps * (1.0 + s.daily_amplitude)
            t = self._poisson_times(t0, t1, peak)
            keep = self.rng.random(len(t)) * peak < s.rate_tps * (
                1.0 + s.daily_amplitude * np.sin(2.0 * np.pi * t / _DAY_S))
            return t[keep]
        self._draw_bursts(t1)  # bursts: piecewise-constant rate between the schedule's edges
        edges = [t0]
        for i in self._bursts_from(t0):
            edges += [x for x in (self._burst_start[i], self._burst_end[i]) if t0 < x < t1]
        edges.append(t1)
        return np.concatenate([self._poisson_times(a, b, self._rate(a)) for a, b in itertools.pairwise(edges)])

    def _draw_to(self, t: float) -> None:
        """Draw whole chunks until they cover [0, t]. Apart from the constructor's first burst time, the only
        place that draws from the stream, so the order of draws (each chunk's bursts, then its arrivals) is
        fixed whatever is asked when."""
        s = self.spec
        mu = math.log(s.size_mean_bytes) - 0.5 * s.size_sigma**2
        while self._drawn_to <= t:
            t0, t1 = self._drawn_to, self._drawn_to + CHUNK_S
            self._drawn_to = t1
            times = self._chunk_times(t0, t1)
            k = len(times)
            # lognormals as exp of float32 normals: 0.7x the cost of two Generator.lognormal calls, and float32 is
            # far finer than either quantity's spread
            z = self.rng.standard_normal((2, k), dtype=np.float32)
            size = np.clip(np.rint(np.exp(mu + s.size_sigma * z[0])), 60, 100_000).astype(np.int32)
            fee = np.exp(np.float32(math.log(s.fee_median)) + np.float32(s.fee_sigma) * z[1])
            origin = self.rng.integers(0, self.n_nodes, size=k, dtype=np.int32)
            self._ready.append((times, size, fee, origin))

    def generate(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(creation times sorted, sizes in bytes, fee rates, origin nodes) of the arrivals in [t0, t1);
        windows come in order (a window may skip time: its arrivals are dropped, never shifted). The
        expected number of arrivals (the offered load) is left in `last_expected`."""
        if t0 < self._taken_to:
            raise ValueError(f"TxWorkload.generate: window [{t0}, {t1}) starts before the end of the last one "
                             f"({self._taken_to})")
        self._draw_to(t1)
        self._taken_to = t1
        self.last_expected = self.expected(t0, t1)
        ready = self._ready
        n = 0  # chunks that end inside the window are used up
        while n < len(ready) - 1 and (len(ready[n][0]) == 0 or ready[n][0][-1] < t1):
            n += 1
        parts = ready[: n + 1]
        cols = tuple(np.concatenate(c) if len(c) > 1 else c[0] for c in zip(*parts, strict=True))
        lo, hi = np.searchsorted(cols[0], (t0, t1))
        self._ready = [tuple(c[hi:] for c in cols), *ready[n + 1 :]]
        return tuple(c[lo:hi] for c in cols)

    def times(self, t0: float, t1: float) -> np.ndarray:
        """Creation times of the arrivals in [t0, t1) (see `generate`)."""
        return self.generate(t0, t1)[0]


_ID_MASK = np.uint64(0xFFFFFFFF)
BACKLOG = 4  # a pool over this many times the newly created transactions is a backlog (Mempool._admit)


def fee_keys(fee: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Unique uint64 sort keys, ascending = fee rate highest first, ties in id order: the float32 fee's bits
    (positive floats: bit order = value order), inverted, above the id (ids < 2**32). numpy sorts these with
    SIMD several times faster than a stable sort of the floats and their ids."""
    keys = (~np.asarray(fee, dtype=np.float32).view(np.uint32)).astype(np.uint64)  # ~x = 0xFFFFFFFF - x
    keys <<= np.uint64(32)
    keys |= np.asarray(ids).astype(np.uint64, copy=False)
    return keys


def key_ids(keys: np.ndarray) -> np.ndarray:
    """The ids in `fee_keys` keys."""
    return (keys & _ID_MASK).view(np.int64)  # below 2**32: the same bits as uint64 and as int64


class Mempool:
    """All transactions of a simulation plus the fee-ordered pool of pending ones (see module docstring)."""

    def __init__(self, max_bytes: float, capacity: int = 1 << 14) -> None:
        self.max_bytes = float(max_bytes)
        self.n = 0
        self.t_create = np.empty(capacity)
        self.size = np.empty(capacity, dtype=np.int32)
        self.fee = np.empty(capacity, dtype=np.float32)
        self.origin = np.empty(capacity, dtype=np.int32)
        self.status = np.empty(capacity, dtype=np.int8)
        # possibly-pending transactions, as sorted `fee_keys` (fee rate highest first, ties in id order); may
        # hold entries no longer pending (until the next merge or `maintain`) and not created yet. Ids below
        # _admitted have entered it (`_admit`)
        self._pool = np.empty(0, dtype=np.uint64)
        self._admitted = 0
        self._side: list[np.ndarray] = []  # re-pended by reorgs since the last maintain()
        self._stale = 0  # pool entries known to be no longer pending (0: every entry is pending)
        self.mean_size = 400.0
        # running totals, so accounting is O(1) per query instead of a scan of every transaction:
        # [count, bytes, sum of creation times] of confirmed and of evicted transactions, and, per `add`, the
        # first id and the totals of sizes and creation times before it (t_create is non-decreasing: windows
        # are generated in order, each sorted), from which `_created_totals` sums a prefix
        self._conf = [0.0, 0.0, 0.0]
        self._evic = [0.0, 0.0, 0.0]
        self._win_start: list[int] = [0]
        self._win_bytes: list[float] = [0.0]
        self._win_t: list[float] = [0.0]

    # ---- bookkeeping --------------------------------------------------------------------------------
    def _grow(self, need: int) -> None:
        cap = len(self.t_create)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for name in ("t_create", "size", "fee", "origin", "status"):
            # a copy into empty memory, not ndarray.resize: that zero-fills the new part, touching pages that the
            # copy leaves untouched until transactions are written there (measured: 5-10 ms of a 130 ms run)
            old = getattr(self, name)
            grown = np.empty(new, dtype=old.dtype)
            grown[: self.n] = old[: self.n]
            setattr(self, name, grown)

    def add(self, t_create: np.ndarray, size: np.ndarray, fee: np.ndarray, origin: np.ndarray) -> np.ndarray:
        """Append transactions (creation times may lie in the future: they become visible when created)."""
        k = len(t_create)
        ids = np.arange(self.n, self.n + k)
        if k == 0:
            return ids
        if self.n and t_create[0] < self.t_create[self.n - 1]:
            raise ValueError("Mempool.add: transactions must be added in order of creation time")
        self._grow(self.n + k)
        sl = slice(self.n, self.n + k)
        self.t_create[sl] = t_create
        self.size[sl] = size
        self.fee[sl] = fee
        self.origin[sl] = origin
        self.status[sl] = PENDING
        self.n += k
        self._win_start.append(self.n)
        self._win_bytes.append(self._win_bytes[-1] + float(np.sum(size, dtype=np.int64)))  # exact: integers
        self._win_t.append(self._win_t[-1] + float(np.cumsum(t_create)[-1]))  # the rounding of a running sum
        self.mean_size = self._win_bytes[-1] / self.n
        return ids

    def _created_totals(self, c: int) -> tuple[float, float]:
        """(bytes, sum of creation times) of transactions 0..c-1: the running sums as of transaction c."""
        w = bisect.bisect_right(self._win_start, c) - 1
        lo = self._win_start[w]
        if c == lo:
            return self._win_bytes[w], self._win_t[w]
        return (self._win_bytes[w] + float(np.sum(self.size[lo:c], dtype=np.int64)),
                self._win_t[w] + float(np.cumsum(self.t_create[lo:c])[-1]))

    def _admit(self, now: float) -> None:
        """Make sure every transaction created by `now` is in the pool. Ids are in creation order, so the
        newcomers are the ones after the last admitted. Merging them costs a pass over the pool: while the pool
        is small next to the newcomers that pass is cheap, and only they are admitted (so that templates do not
        read past transactions that do not exist yet); while it holds a backlog, as many not yet created
        transactions as the pool holds are admitted too (if they have been added), so that the pass is paid
        once per pool's worth of arrivals. Early entries change nothing: no miner can see a transaction
        before it exists (`select` and `maintain` check)."""
        created = self.n_created(now)
        if created <= self._admitted:
            return
        pool = self._pool
        if self._stale:  # drop confirmed entries while passing over the pool anyway
            pool = pool.compress(self.status.take(key_ids(pool)) == PENDING)
            self._stale = 0
        lo = self._admitted
        hi = created if len(pool) <= BACKLOG * (created - lo) else min(self.n, max(created, lo + len(pool)))
        self._admitted = hi
        new = fee_keys(self.fee[lo:hi], np.arange(lo, hi, dtype=np.uint64))
        new.sort()
        pool = np.concatenate((pool, new))
        pool.sort(kind="stable")  # two sorted runs: numpy's timsort merges them in one pass (keys are unique)
        self._pool = pool

    def _ranked(self, ids: np.ndarray) -> np.ndarray:
        """The sorted `fee_keys` of `ids` (highest fee rate first, ties in id order), each id once."""
        keys = fee_keys(self.fee.take(ids), ids)
        keys.sort()
        if len(keys) > 1:
            keys = keys.compress(np.concatenate(([True], keys[1:] != keys[:-1])))
        return keys

    def _count(self, totals: list[float], ids: np.ndarray, sign: float) -> None:
        """Add (sign 1) or take away (sign -1) `ids`' count, bytes and sum of creation times to `totals`."""
        totals[0] += sign * len(ids)
        totals[1] += sign * float(self.size.take(ids).sum())
        totals[2] += sign * float(self.t_create.take(ids).sum())

    def confirm(self, ids: np.ndarray) -> None:
        """`ids` are in a block that joined the canonical chain (they are pending or evicted)."""
        if not len(ids):
            return
        if self._evic[0]:  # a block may carry transactions this pool has evicted (another miner kept them)
            was_evicted = ids.compress(self.status.take(ids) == EVICTED)
            if len(was_evicted):
                self._count(self._evic, was_evicted, -1.0)
        self.status[ids] = CONFIRMED
        self._count(self._conf, ids, 1.0)
        self._stale += len(ids)

    def unconfirm(self, ids: np.ndarray) -> None:
        """The block holding `ids` left the canonical chain: its transactions are pending again."""
        if len(ids):
            self.status[ids] = PENDING
            self._count(self._conf, ids, -1.0)
            self._side.append(ids)

    def maintain(self, now: float) -> int:
        """Drop non-pending entries from the pool, fold re-pended transactions back in,
        and evict the lowest fee rates while created pending bytes exceed max_bytes. Returns the number
        evicted."""
        self._admit(now)
        pool = self._pool
        if self._side:
            pool = self._ranked(np.concatenate([key_ids(pool), *self._side]))
            self._side = []
            self._stale = len(pool)  # force the compaction below
        if self._stale:
            pool = pool.compress(self.status.take(key_ids(pool)) == PENDING)
            self._stale = 0
        evicted = 0
        if self.pending_bytes(now) > self.max_bytes:
            ids = key_ids(pool)
            pend = self.status[ids] == PENDING
            created = pend & (self.t_create[ids] <= now)
            cum = np.cumsum(np.where(created, self.size[ids], 0))
            drop = created & (cum > self.max_bytes)
            ids = ids[drop]
            evicted = len(ids)
            self.status[ids] = EVICTED
            self._count(self._evic, ids, 1.0)
            pool = pool[pend & ~drop]
        self._pool = pool
        return evicted

    # ---- block templates ----------------------------------------------------------------------------
    def select(self, delay: np.ndarray, now: float, max_bytes: float, exclude: np.ndarray | None = None,
               extra: np.ndarray | None = None) -> np.ndarray:
        """Ids for a block template of at most `max_bytes`, highest fee rate first, from the transactions a
        miner can see at `now` (created at least delay[origin] ago) that are not in its chain.

        The pool holds transactions not in the canonical chain. A miner whose tip is off the canonical chain
        passes `exclude` (transactions in its own non-canonical blocks) and `extra` (transactions in canonical
        blocks its chain lacks)."""
        self._admit(now)
        st, tc, org, sz = self.status, self.t_create, self.origin, self.size
        pool = self._pool
        n_pool = len(pool)
        clean = self._stale == 0  # every pool entry is pending: no status check needed
        parts: list[np.ndarray] = []
        part_sizes: list[np.ndarray] = []
        total, start = 0, 0
        chunk = max(256, int(2.0 * max_bytes / self.mean_size))
        has_excl = exclude is not None and len(exclude) > 0
        while start < n_pool and total < max_bytes:
            ids = key_ids(pool[start : start + chunk])
            start += chunk
            chunk *= 2
            keep = tc.take(ids) + delay.take(org.take(ids)) <= now  # take, compress: faster than [] on numpy 2
            if not clean:
                keep &= st.take(ids) == PENDING
            ids = ids.compress(keep)
            if has_excl:
                ids = ids[~np.isin(ids, exclude)]
            sizes = sz.take(ids)
            parts.append(ids)
            part_sizes.append(sizes)
            total += int(sizes.sum())
        extras = []
        if self._side:
            side = np.concatenate(self._side)
            extras.append(side[(st[side] == PENDING) & (tc[side] + delay[org[side]] <= now)])
        if extra is not None and len(extra):
            extras.append(extra[tc[extra] + delay[org[extra]] <= now])
        if extras:  # an id may be in a part and in an extra
            cand = key_ids(self._ranked(np.concatenate(parts + extras)))
            if has_excl:
                cand = cand[~np.isin(cand, exclude)]
            sizes = sz.take(cand)
        elif len(parts) == 1:
            cand, sizes = parts[0], part_sizes[0]
        elif parts:
            cand, sizes = np.concatenate(parts), np.concatenate(part_sizes)
        else:
            return np.empty(0, dtype=np.int64)
        return cand[: int(sizes.cumsum().searchsorted(max_bytes, side="right"))]

    # ---- accounting ---------------------------------------------------------------------------------
    def n_created(self, now: float) -> int:
        return int(self.t_create[: self.n].searchsorted(now, side="right"))

    def pending_bytes(self, now: float) -> float:
        return float(self._created_totals(self.n_created(now))[0] - self._conf[1] - self._evic[1])

    def counts(self, now: float) -> dict[str, float]:
        """created / confirmed / pending / evicted transaction counts and pending bytes, as of `now`
        (from running totals: a search and a sum over part of one window; `recount` gives the same from the
        status array)."""
        c = self.n_created(now)
        created_bytes = self._created_totals(c)[0]
        return {
            "created": float(c),
            "confirmed": float(self._conf[0]),
            "pending": float(c - self._conf[0] - self._evic[0]),
            "evicted": float(self._evic[0]),
            "pending_bytes": float(created_bytes - self._conf[1] - self._evic[1]),
        }

    def recount(self, now: float) -> dict[str, float]:
        """`counts` by a full scan of the status array (for tests of the running totals)."""
        n = self.n
        created = self.t_create[:n] <= now
        st = self.status[:n]
        pend = created & (st == PENDING)
        return {
            "created": float(created.sum()),
            "confirmed": float((st == CONFIRMED).sum()),
            "pending": float(pend.sum()),
            "evicted": float((st == EVICTED).sum()),
            "pending_bytes": float(self.size[:n][pend].sum()),
        }

    def pending_age_mean(self, now: float) -> float:
        """Mean age of the created, pending transactions at `now`."""
        c = self.n_created(now)
        k = c - self._conf[0] - self._evic[0]
        if k <= 0:
            return 0.0
        sum_t = self._created_totals(c)[1] - self._conf[2] - self._evic[2]
        return float(now - sum_t / k)
