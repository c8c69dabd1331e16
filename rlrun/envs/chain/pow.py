"""Proof-of-work chain on the shared network, as a SimPy discrete-event simulation.

Mining. The network finds blocks as one Poisson process whose mean interval is the current target interval
(difficulty is assumed to track the target); the finder is drawn by hash power, which is the same as each
miner running its own Poisson process. A block's work is proportional to its target interval (its difficulty),
so fork choice is "most cumulative work", which is "longest chain" while the interval is fixed. The miner
builds on its own tip with the highest-fee transactions it can see, up to the block size limit.

Propagation, per hop (Bitcoin's announce-then-fetch protocol):
  1. a node whose tip changed sends `inv` to the peers of the relay plan in force (one link latency);
  2. a peer that lacks the block and whose own tip has less work answers `getdata` (one link latency);
     if it also lacks ancestors (possible when relay is restricted) it asks for those too;
  3. the sender uploads the block(s) on its FIFO upload link (`Transport.send`: size / min(upload, download)
     + latency); the receiver validates them (time proportional to size) and, if its tip changed, relays.
Nodes announce only blocks that become their tip, as Bitcoin does, so stale blocks travel less far.
An `inv` is not sent to a peer that already has, or has already requested, the block, or whose tip already
has at least as much work: such an inv would be ignored on arrival, so skipping it changes nothing but the
event count.

Relay mechanisms (`env.protocol`, `rlrun.envs.chain.protocol`): compact blocks replace step 3's payload by
a compact block plus one more round trip for the transactions the receiver lacks; push peers receive a block
before the sender validates it (BIP 152 high-bandwidth mode, Ethereum's block push), which takes an extra
"arrived" event per delivery; a miners' relay network delivers each new block to every other pool directly.
Ethereum's uncles are picked when a block is mined (`rlrun.envs.chain.uncles`).

With `network.fixed_delay_s = d` the protocol is replaced by "every node receives every block exactly d after
it is found", the model behind the stale-rate formula (tests/test_chain_sim.py).

Performance. SimPy's `Environment` is the clock: it runs mining and `run(until=...)`, and one "wake-up"
event per stretch of network traffic. The protocol messages themselves (inv, getdata, block, ...) wait in
the chain's own heap of plain tuples `(time, seq, handler, a, b, c, d)` and are delivered by `_deliver`, a tight
loop that runs inside the wake-up's callback until the next SimPy event is due. Each message draws its `seq`
from SimPy's own event counter and counts as priority NORMAL, so messages and SimPy events keep exactly the
total order (time, priority, seq) they had when every message was a SimPy event: the simulation is the same,
bit for bit, with no per-message SimPy event, callback list or event object (tests/test_chain_sim.py runs
both). The cyclic garbage collector is paused inside `run_until`. An `inv` that would arrive at a
node no earlier than an `inv` for the same block already on its way there is not sent at all: when the
earlier one arrives the node either requests the block (so the later one finds it REQUESTED) or finds its
tip at least as heavy (tips only gain work), so the later one is a no-op either way
(tests/test_chain_sim.py compares with a core that sends them). Blocks are indexes into parallel Python
lists; per-block per-node state is one bytearray per block; the announce loop reads the state of a node's
relay targets with one C call (`RelayPlan.pick`; the compiled build loops in C instead) and looks only at
those that lack the block (~1.5 of 16 on a flooded network); the plain getdata path inlines `Transport.send`.

Compiled build. Where the install could, this file is also compiled by Cython in its pure-Python mode
(setup.py); pow.pxd beside it declares `PowChain` a C class and gives the hot methods' locals C types, which
is why a few of them read list items into named locals before comparing. Two hot spots take a different path
in each build (`cython.compiled`), each with the same outcome: the message heap (`_push_msg`, `_pop_msg`:
loops comparing (time, seq) as C numbers, where Python uses heapq's C functions, which compare whole tuples;
seq is unique, so both hand out messages in the same order) and the scan of a node's relay targets in
`_announce` (a C loop over the plan's arrays, where Python picks the targets' states with one C call). The
compiled module runs 1.3-3.5x faster with the same results bit for bit (tests/test_chain_core.py);
rlrun.envs.chain.core decides which one runs.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import math
import random

import cython
import numpy as np
import simpy
from simpy.events import NORMAL, URGENT

from rlrun.envs.chain.gossip import RelayPlan, strategy_plan
from rlrun.envs.chain.mempool import Mempool, TxWorkload
from rlrun.envs.chain.network import Network, Transport
from rlrun.envs.chain.protocol import ProtocolSpec
from rlrun.envs.chain.uncles import pick_uncles

HEADER_BYTES = 500  # block header + coinbase transaction

UNKNOWN, REQUESTED, HAVE, ARRIVED = 0, 1, 2, 3  # ARRIVED: received, being validated (push mode only)
_INF = math.inf


@cython.boundscheck(False)  # every index below is in range
@cython.wraparound(False)
def _push_msg(heap: list, item: tuple) -> None:
    """heapq.heappush for messages (time, seq, ...). The compiled build compares time and seq as C numbers;
    seq is unique, so they decide every comparison, as they do in heapq's comparison of whole tuples, and both
    heaps hand out messages in the same order."""
    heap.append(item)
    t, s = item[0], item[1]
    pos = len(heap) - 1
    while pos > 0:
        up = (pos - 1) >> 1
        parent = heap[up]
        pt = parent[0]
        if t < pt or (t == pt and s < parent[1]):
            heap[pos] = parent
            pos = up
        else:
            break
    heap[pos] = item


@cython.boundscheck(False)  # every index below is in range
@cython.wraparound(False)
def _pop_msg(heap: list) -> tuple:
    """heapq.heappop for messages (see `_push_msg`)."""
    last = heap.pop()
    n = len(heap)
    if not n:
        return last
    top = heap[0]
    t, s = last[0], last[1]
    pos = 0
    child = 1
    while child < n:
        c = heap[child]
        ct = c[0]
        if child + 1 < n:
            r = heap[child + 1]
            rt = r[0]
            if rt < ct or (rt == ct and r[1] < c[1]):
                child += 1
                c = r
                ct = rt
        if ct < t or (ct == t and c[1] < s):
            heap[pos] = c
            pos = child
            child = 2 * pos + 1
        else:
            break
    heap[pos] = last
    return top


if not cython.compiled:  # as Python, heapq's C functions are faster than the loops above
    _push_msg, _pop_msg = heapq.heappush, heapq.heappop  # noqa: F811


class _Wake:
    """The least a SimPy `Environment` needs to process an event (`callbacks`, `_value`, `_ok`): the
    wake-up that delivers the chain's due messages (module docstring) and the mining clock's ticks."""

    __slots__ = ("callbacks", "_value")
    _ok = True

    def __init__(self, callbacks: tuple, value: object) -> None:
        self.callbacks = callbacks
        self._value = value


class PowChain:
    """One simulation run: network + mempool + blocks + SimPy clock. Drive it with `configure` and
    `run_until`; read results from the public lists or with `rlrun.envs.chain.metrics`."""

    def __init__(self, net: Network, workload: TxWorkload, hashpower: np.ndarray, rng: np.random.Generator,
                 *, mempool_max_bytes: float = 300e6, protocol: ProtocolSpec | None = None) -> None:
        self.proto = proto = protocol or ProtocolSpec()
        hp = np.asarray(hashpower, dtype=float)
        if proto.pool_outbound and net.fixed_delay_s is None:
            net.connect_extra([int(i) for i in np.flatnonzero(hp > 0)], proto.pool_outbound, rng)
        self.net = net
        self.n = n = net.n
        self.rng = rng
        self._pyrng = random.Random(int(rng.integers(2**63)))
        self.env = simpy.Environment()
        self.transport = Transport(net)
        self.workload = workload
        self.mempool = Mempool(mempool_max_bytes)
        self.mempool.mean_size = workload.spec.size_mean_bytes
        # blocks (index = block id, 0 = genesis, ids in the order found)
        self.parent: list[int] = [-1]
        self.height: list[int] = [0]
        self.work: list[float] = [0.0]
        self.t_found: list[float] = [0.0]
        self.size: list[int] = [HEADER_BYTES]
        self.miner: list[int] = [-1]
        self.txs: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        self.gas: list[float] = [0.0]
        self.limit: list[int] = [0]  # block size limit in force when each block was found
        self.uncles: list[list[int]] = [[]]  # uncles each block references (Ethereum; empty otherwise)
        self._by_height: dict[int, list[int]] = {0: [0]}
        self.state: list[bytearray] = [bytearray([HAVE]) * n]
        self.n_have: list[int] = [n]
        self.t50: list[float] = [0.0]  # time from finding to 50% / 90% of nodes having it (nan until reached)
        self.t90: list[float] = [0.0]
        # per block, per node: earliest arrival time of an inv for it already in flight to that node (None
        # once every node has the block)
        self.inv_due: list[list[float] | None] = [None]
        self._thr50 = max(1, math.ceil(0.5 * n))
        self._thr90 = max(1, math.ceil(0.9 * n))
        self.tip: list[int] = [0] * n
        self.canon: list[int] = [0]  # canonical (most-work) chain by height; ties keep the earlier block
        # miners
        self.miners = [int(i) for i in np.flatnonzero(hp > 0)]
        shares = hp[self.miners] / hp[self.miners].sum()
        self._cum = list(np.cumsum(shares))
        self._cum[-1] = 1.0
        self.shares: list[float] = [float(x) for x in shares]
        self._miner_idx = {m: j for j, m in enumerate(self.miners)}
        #: per block, seconds from finding until each miner (in `miners` order) has validated it (nan: not yet)
        self.t_miner: list[list[float]] = [[0.0] * len(self.miners)]
        self.tx_delay = net.shortest_delays(self.miners, net.spec.tx_relay_delay_s)
        # parameters in force
        self.max_block_bytes = 1_000_000
        self.interval = 600.0
        self._use_plan(strategy_plan(net, "flood"))
        self._mine_gen = 0
        self._mine_pending = False
        self.events = 0  # SimPy events handled
        self.invs_suppressed = 0  # invs not scheduled because an earlier one was on its way (no-ops)
        self.reorgs = 0  # canonical-chain switches that detached at least one block
        self._fixed = net.fixed_delay_s
        # pools' hashers switch to a new tip pool_switch_s after the pool node has it: (from time, tip) per pool
        self._switch = proto.pool_switch_s
        self._pool_work: list[list[tuple[float, int]]] = [[(0.0, 0)] for _ in self.miners]
        # relay mechanisms
        self._compact = proto.block_relay == "compact"
        # relay_side_blocks: a block whose work equals the receiver's tip is still worth sending (uncles)
        self._relay_all = proto.relay_side_blocks
        self._plain = not (self._compact or proto.push_peers or proto.gas_per_tx * proto.validation_s_per_mgas)
        self._val_per_tx = proto.gas_per_tx * proto.validation_s_per_mgas / 1e6
        self._request_delay = proto.request_delay_s
        self.tx_spread_s = float(self.tx_delay.mean()) if self.tx_delay.size else 0.0
        self._tx_times: dict[int, tuple[list[float], list[float]]] = {}
        self._push: list[list[int]] = []
        if proto.push_peers and self._fixed is None:
            prng = rng.spawn(1)[0]  # a child stream: mining draws stay the same whatever the protocol (paired runs)
            self._push = [[net.peers[i][j] for j in prng.permutation(len(net.peers[i]))[: proto.push_peers]]
                          for i in range(n)]
        self._miner_lat: list[list[float]] = []
        if proto.miners_network and self._fixed is None:
            lat = net.spec.latency_ms
            self._miner_lat = [[lat[net.region[a]][net.region[c]] / 1000.0 for c in self.miners]
                               for a in self.miners]
        # messages in flight: a heap of (time, seq, handler, a, b, c, d); seq comes from SimPy's event counter
        self._msgs: list[tuple] = []
        self._seq = self.env._eid
        self._wake_at = _INF  # time of the live wake-up (`_arm`)
        self._wake_gen = 0
        self._cb_mine = (self._on_mine,)
        self._cb_wake = (self._on_wake,)
        # the hot path's handlers bound once (a message carries its handler; binding one per message allocates)
        # and its network tables (the same list objects) and constants, read without attribute lookups
        self._h_inv, self._h_getdata, self._h_block = self._on_inv, self._on_getdata, self._on_block
        self._busy = self.transport.busy_until
        self._up_bps, self._down_bps = net.up_bps, net.down_bps
        self._val_base, self._val_per_byte = net._val_base, net._sec_per_byte_val

    # ---- control ------------------------------------------------------------------------------------
    def configure(self, block_bytes: float, interval_s: float, plan: RelayPlan | None = None) -> None:
        """Set the protocol parameters from now on. A new interval redraws the time to the next block,
        which the memorylessness of mining makes exact."""
        if not interval_s > 0:
            raise ValueError(f"block interval must be > 0, got {interval_s}")
        self.max_block_bytes = int(block_bytes)
        if plan is not None:
            self._use_plan(plan)
        if interval_s != self.interval or not self._mine_pending:
            self.interval = float(interval_s)
            self._mine_gen += 1
            self._schedule_mine()

    def _use_plan(self, plan: RelayPlan) -> None:
        self.plan = plan
        self._fanout, self._ids, self._lats = plan.fanout, plan.ids, plan.lats
        self._pick = None if cython.compiled else plan.pick  # only _announce as Python reads it

    def add_transactions(self, t0: float, t1: float) -> int:
        """Create the transactions of [t0, t1) (they become visible as their creation times pass)."""
        t, size, fee, origin = self.workload.generate(t0, t1)
        self.mempool.add(t, size, fee, origin)
        return len(t)

    def run_until(self, t: float) -> None:
        if t > self.env.now:
            # the cyclic garbage collector is paused while simulating: the core allocates a tuple per message
            # and no cycles, so its passes over every live object (a 6,000-node network is millions) are waste
            paused = gc.isenabled()
            gc.disable()
            try:
                self.env.run(until=t)
            finally:
                if paused:
                    gc.enable()

    def advance(self, t_end: float, window_s: float) -> None:
        """Run to t_end in windows of window_s: each window maintains the mempool, creates its
        transactions and simulates (what the env does per step, without the measuring)."""
        while self.env.now < t_end:
            t0 = self.env.now
            t1 = min(t_end, t0 + window_s)
            self.mempool.maintain(t0)
            self.add_transactions(t0, t1)
            self.run_until(t1)

    @property
    def now(self) -> float:
        return float(self.env.now)

    # ---- chain queries ------------------------------------------------------------------------------
    def on_canon(self, b: int) -> bool:
        h = self.height[b]
        return h < len(self.canon) and self.canon[h] == b

    @property
    def messages(self) -> int:
        """Protocol messages the run simulated (blocks found, invs sent, getdata, block transfers), counting
        the no-op invs that were never scheduled: the event count of a core that delivers every message,
        which is what the speed bench compares with bare SimPy."""
        return self.events + self.invs_suppressed

    @property
    def n_blocks(self) -> int:
        """Blocks found, excluding genesis."""
        return len(self.parent) - 1

    # ---- message delivery (module docstring: Performance) -----------------------------------------------
    def _send(self, t: float, handler: object, a: object, b: object, c: object, d: float = 0.0) -> None:
        """Deliver handler(t, a, b, c, d) at time t, ordered among SimPy's events as a NORMAL event scheduled
        now. inv and getdata carry their link's latency as d (links are symmetric), so the reply needs no
        lookup."""
        _push_msg(self._msgs, (t, next(self._seq), handler, a, b, c, d))

    def _arm(self) -> None:
        """Make sure a SimPy wake-up is due no later than the earliest message in flight. Only the newest
        wake-up is live: an earlier-scheduled one that fires later does nothing (SimPy cannot cancel it)."""
        if self._msgs and self._msgs[0][0] < self._wake_at:
            self._wake_at = t = self._msgs[0][0]
            self._wake_gen += 1
            self.env.schedule(_Wake(self._cb_wake, self._wake_gen), URGENT, t - self.env.now)

    def _on_wake(self, ev: _Wake) -> None:
        if ev._value != self._wake_gen:
            return
        self._wake_at = _INF
        self._deliver()
        self._arm()

    def _deliver(self) -> None:
        """Deliver messages in (time, seq) order while they come before SimPy's next event. The wake-up
        that calls this is URGENT, so it precedes every NORMAL event of its instant; a message at (t, seq)
        is due before a SimPy event at (t', priority', seq') iff (t, NORMAL, seq) < (t', priority', seq')."""
        msgs, queue = self._msgs, self.env._queue
        if queue:
            nt, npri, nseq = queue[0][:3]
        else:
            nt, npri, nseq = _INF, NORMAL, 0
        delivered = 0
        while msgs:
            t = msgs[0][0]
            if t >= nt and (t > nt or (NORMAL, msgs[0][1]) > (npri, nseq)):
                break
            t, _, handler, a, b, c, d = _pop_msg(msgs)
            delivered += 1
            handler(t, a, b, c, d)
        self.events += delivered

    # ---- mining -------------------------------------------------------------------------------------
    def _schedule_mine(self) -> None:
        self.env.schedule(_Wake(self._cb_mine, self._mine_gen), NORMAL, float(self.rng.exponential(self.interval)))
        self._mine_pending = True

    def _on_mine(self, ev: _Wake) -> None:
        self.events += 1
        if ev._value != self._mine_gen:
            return  # superseded by a new interval
        now = self.env.now
        k = bisect.bisect_right(self._cum, self.rng.random())
        m = self.miners[min(k, len(self.miners) - 1)]
        parent = self.tip[m] if not self._switch else self._working_tip(m, now)
        exclude, extra = self._chain_diff(parent)
        txs = self.mempool.select(self.tx_delay[min(k, len(self.miners) - 1)], now,
                                  self.max_block_bytes - HEADER_BYTES, exclude, extra)
        b = len(self.parent)
        if self.proto.max_uncles:
            state = self.state
            self.uncles.append(pick_uncles(parent, self.parent, self.height, self.uncles, self._by_height,
                                           lambda u: state[u][m] == HAVE, depth=self.proto.uncle_depth,
                                           max_uncles=self.proto.max_uncles))
        else:
            self.uncles.append([])
        self._by_height.setdefault(self.height[parent] + 1, []).append(b)
        self.parent.append(parent)
        self.height.append(self.height[parent] + 1)
        self.work.append(self.work[parent] + self.interval)
        self.t_found.append(now)
        self.size.append(HEADER_BYTES + int(self.mempool.size[txs].sum()))
        self.miner.append(m)
        self.txs.append(txs)
        self.gas.append(len(txs) * self.proto.gas_per_tx)
        self.limit.append(self.max_block_bytes)
        st = bytearray(self.n)
        st[m] = HAVE
        self.state.append(st)
        self.n_have.append(1)
        tm = [math.nan] * len(self.miners)
        tm[self._miner_idx[m]] = 0.0
        self.t_miner.append(tm)
        self.t50.append(0.0 if self._thr50 == 1 else math.nan)
        self.t90.append(0.0 if self._thr90 == 1 else math.nan)
        self.inv_due.append([_INF] * self.n if self.n > 1 else None)
        self.tip[m] = b
        if self._switch:
            self._pool_work[self._miner_idx[m]].append((now + self._switch, b))
        if self.work[b] > self.work[self.canon[-1]]:
            self._reorg(b)
        if self._fixed is not None:
            if self.n > 1:
                self._send(now + self._fixed, self._on_deliver_all, b, 0, 0)
        else:
            self._announce(m, b, now)
            if self._push:
                self._push_block(m, b, -1, now)
            if self._miner_lat:
                self._relay_to_miners(k if k < len(self.miners) else len(self.miners) - 1, b, now)
        self._schedule_mine()
        self._arm()

    def _working_tip(self, m: int, now: float) -> int:
        """The tip miner m's hashers work on at `now`: the newest one its pool node had pool_switch_s ago."""
        work = self._pool_work[self._miner_idx[m]]
        while len(work) > 1 and work[1][0] <= now:
            del work[0]
        return work[0][1]

    def _chain_diff(self, tip: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(txs in tip's chain but not canonical, txs canonical but not in tip's chain)."""
        if tip == self.canon[-1]:
            return None, None
        side = []
        x = tip
        while not self.on_canon(x):
            side.append(x)
            x = self.parent[x]
        exclude = np.concatenate([self.txs[s] for s in side]) if side else None
        above = self.canon[self.height[x] + 1 :]
        extra = np.concatenate([self.txs[c] for c in above]) if above else None
        return exclude, extra

    def _reorg(self, b: int) -> None:
        """Make b the canonical tip: detached blocks' transactions go back to pending."""
        new = []
        x = b
        while not self.on_canon(x):
            new.append(x)
            x = self.parent[x]
        fork_h = self.height[x]
        mp = self.mempool
        if fork_h + 1 < len(self.canon):
            self.reorgs += 1
        for c in self.canon[fork_h + 1 :]:
            mp.unconfirm(self.txs[c])
        del self.canon[fork_h + 1 :]
        for c in reversed(new):
            self.canon.append(c)
            mp.confirm(self.txs[c])

    # ---- propagation --------------------------------------------------------------------------------
    def _got(self, b: int, now: float) -> None:
        k = self.n_have[b] + 1
        self.n_have[b] = k
        if k == self._thr50:
            self.t50[b] = now - self.t_found[b]
        if k == self._thr90:
            self.t90[b] = now - self.t_found[b]
        if k == self.n:
            self.inv_due[b] = None

    def _announce(self, node: int, b: int, now: float) -> None:
        """Send inv for b to the node's relay targets that lack it (the peer it came from has it: st set)."""
        st = self.state[b]
        due = self.inv_due[b]
        wb = self.work[b] if not self._relay_all else math.nextafter(self.work[b], _INF)
        suppressed = 0
        fanout = self._fanout
        if fanout and len(self._ids[node]) > fanout:
            for p, d in self._pyrng.sample(self.plan.targets[node], fanout):
                if not st[p]:
                    suppressed += self._offer_inv(b, node, p, d, now, wb, due)
        elif cython.compiled:  # a C loop over the targets; as Python the C calls below are faster
            # the plan's rows (array.array of C longs and doubles) read as C arrays: `data` is Cython's view of
            # an array.array (cpython/array.pxd), which this branch, never run as Python, may use
            ids, lats = self._ids[node], self._lats[node]
            idv, latv = ids.data.as_longs, lats.data.as_doubles
            for i in range(len(ids)):
                p = idv[i]
                if not st[p]:
                    suppressed += self._offer_inv(b, node, p, latv[i], now, wb, due)
        else:
            have = self._pick[node](st)  # st of each target; only targets with st 0 lack the block
            lacking = have.count(0)
            if lacking:
                ids, lats = self._ids[node], self._lats[node]
                i = -1
                for _ in range(lacking):
                    i = have.index(0, i + 1)
                    suppressed += self._offer_inv(b, node, ids[i], lats[i], now, wb, due)
        self.invs_suppressed += suppressed

    def _offer_inv(self, b: int, node: int, p: int, lat: float, now: float, wb: float, due: list[float]) -> int:
        """Schedule inv for b from node to p, which lacks b, over their link of latency `lat`, unless p's tip has
        at least b's work `wb` or an earlier inv is on its way to p. That one would make this inv a no-op
        (module docstring), and the call returns 1 to count it as suppressed; otherwise 0."""
        q = self.tip[p]
        wq = self.work[q]
        if wq >= wb:
            return 0
        t = now + lat
        dp = due[p]
        if t >= dp:
            return 1
        due[p] = t
        _push_msg(self._msgs, (t, next(self._seq), self._h_inv, b, node, p, lat))
        return 0

    def _on_inv(self, now: float, b: int, src: int, dst: int, lat: float) -> None:
        st = self.state[b]
        wb = self.work[b] if not self._relay_all else math.nextafter(self.work[b], _INF)
        q = self.tip[dst]
        wq = self.work[q]
        if st[dst] or wq >= wb:
            return
        st[dst] = REQUESTED
        if self._request_delay:
            self._send(now + self._request_delay, self._on_request_due, b, src, dst, lat)
            return
        self._request(now, b, src, dst, lat)

    def _on_request_due(self, now: float, b: int, src: int, dst: int, lat: float) -> None:
        """request_delay_s after the inv: request b unless it was pushed meanwhile or the tip moved past it."""
        wb = self.work[b] if not self._relay_all else math.nextafter(self.work[b], _INF)
        if self.state[b][dst] == REQUESTED and self.work[self.tip[dst]] < wb:
            self._request(now, b, src, dst, lat)

    def _request(self, now: float, b: int, src: int, dst: int, lat: float) -> None:
        """getdata for b and the ancestors dst lacks, to src."""
        blist = [b]
        state, parent = self.state, self.parent
        p = parent[b]
        while state[p][dst] != HAVE:
            blist.append(p)
            p = parent[p]
        _push_msg(self._msgs, (now + lat, next(self._seq), self._h_getdata, blist, src, dst, lat))

    def _on_getdata(self, now: float, blist: list[int], up: int, down: int, lat: float) -> None:
        size = self.size
        nbytes = size[blist[0]] if len(blist) == 1 else sum([size[x] for x in blist])
        if self._plain:  # Transport.send + Network.validation_delay inlined (the hottest path), same arithmetic
            busy = self._busy
            start = busy[up]
            if start < now:
                start = now
            rate = self._up_bps[up]
            down_rate = self._down_bps[down]
            if down_rate < rate:
                rate = down_rate
            done = start + nbytes * 8.0 / rate
            busy[up] = done
            self.transport.bytes_up += nbytes
            delay = done - now + lat + (self._val_base + nbytes * self._val_per_byte)
            _push_msg(self._msgs, (now + delay, next(self._seq), self._h_block, blist, up, down, 0.0))
            return
        if self._compact:
            delay = self._send_compact(now, up, down, blist)
        else:
            delay = self.transport.send(now, up, down, nbytes)
        if self._push:
            self._send(now + delay, self._on_arrive, blist, up, down)
            return
        delay = delay + self.net.validation_delay(nbytes)
        if self._val_per_tx:
            delay += self._val_per_tx * sum([len(self.txs[x]) for x in blist])
        self._send(now + delay, self._on_block, blist, up, down)

    def _validation_time(self, blist: list[int]) -> float:
        nbytes = sum(self.size[x] for x in blist)
        return self.net.validation_delay(nbytes) + self._val_per_tx * sum(len(self.txs[x]) for x in blist)

    def _compact_bytes(self, b: int) -> int:
        return HEADER_BYTES + self.proto.short_id_bytes * len(self.txs[b])

    def _missing_bytes(self, b: int, t: float) -> float:
        """Bytes of b's transactions a node does not have yet at time t (module docstring of protocol.py)."""
        cached = self._tx_times.get(b)
        if cached is None:
            txs = self.txs[b]
            tc = self.mempool.t_create[txs]
            order = np.argsort(tc, kind="stable")
            cum = np.concatenate([[0.0], np.cumsum(self.mempool.size[txs][order], dtype=np.float64)])
            cached = (tc[order].tolist(), cum.tolist())
            self._tx_times[b] = cached
        times, cum = cached
        return cum[-1] - cum[bisect.bisect_left(times, t - self.tx_spread_s)]

    def _send_compact(self, now: float, up: int, down: int, blist: list[int]) -> float:
        """Delay until `down` has rebuilt the blocks of blist from compact blocks sent by `up`, including the
        getblocktxn/blocktxn round trip for the newest block's missing transactions."""
        tp = self.transport
        delay = tp.send(now, up, down, sum(self._compact_bytes(x) for x in blist))
        miss = self._missing_bytes(blist[0], now + delay)
        if miss > 0.0:  # getblocktxn back to the sender, blocktxn forward
            delay += self.net.lat[down][up] + tp.send_beside(up, down, miss)
        return delay

    def _push_block(self, node: int, b: int, src: int, now: float) -> None:
        """Send b unsolicited to node's push peers that lack it and have its parent (module docstring)."""
        st, pst = self.state[b], self.state[self.parent[b]]
        wb = self.work[b] if not self._relay_all else math.nextafter(self.work[b], _INF)
        work, tip = self.work, self.tip
        for y in self._push[node]:
            s_y = st[y]
            if y == src or s_y == HAVE or s_y == ARRIVED or pst[y] != HAVE or work[tip[y]] >= wb:
                continue
            if self._compact:
                delay = self._send_compact(now, node, y, [b])
            else:
                delay = self.transport.send(now, node, y, self.size[b])
            self._send(now + delay, self._on_arrive, [b], node, y)

    def _on_arrive(self, now: float, blist: list[int], src: int, dst: int, _lat: float) -> None:
        """Push mode: the block is at dst; dst pushes it on at once and validates it before using it."""
        st = self.state[blist[0]]
        if st[dst] == HAVE or st[dst] == ARRIVED:
            return
        st[dst] = ARRIVED
        self._push_block(dst, blist[0], src, now)
        self._send(now + self._validation_time(blist), self._on_block, blist, src, dst)

    def _relay_to_miners(self, k: int, b: int, now: float) -> None:
        """Miners' relay network: the block of miner index k reaches every other pool directly."""
        bits = 8.0 / (self.proto.miners_network_mbps * 1e6)
        lat_row = self._miner_lat[k]
        cbytes = self._compact_bytes(b)
        val = self._validation_time([b])
        for j, y in enumerate(self.miners):
            if j == k:
                continue
            t_arr = now + lat_row[j]
            delay = lat_row[j] + (cbytes + self._missing_bytes(b, t_arr)) * bits + val
            self._send(now + delay, self._on_relaynet, b, self.miners[k], y)

    def _on_relaynet(self, now: float, b: int, src: int, dst: int, _lat: float) -> None:
        state, parent = self.state, self.parent
        if state[b][dst] == HAVE:
            return
        blist = [b]
        p = parent[b]
        while state[p][dst] != HAVE:  # the relay network carried the ancestors too
            blist.append(p)
            p = parent[p]
        self._on_block(now, blist, src, dst, 0.0)

    def _on_block(self, now: float, blist: list[int], src: int, dst: int, _lat: float) -> None:
        """dst has validated the blocks of blist (newest first): record them, switch tip, announce."""
        state, n_have, thr50, thr90 = self.state, self.n_have, self._thr50, self._thr90
        for x in reversed(blist):
            st = state[x]
            if st[dst] != HAVE:
                st[dst] = HAVE
                k = n_have[x] + 1
                n_have[x] = k
                if k == thr50 or k == thr90 or k == self.n:
                    n_have[x] = k - 1
                    self._got(x, now)
        j = self._miner_idx.get(dst)
        if j is not None:
            for x in blist:
                tm = self.t_miner[x]
                if tm[j] != tm[j]:  # nan: first time
                    tm[j] = now - self.t_found[x]
        b = blist[0]
        q = self.tip[dst]
        wq = self.work[q]
        wb = self.work[b]
        if wb > wq:
            self.tip[dst] = b
            if self._switch and j is not None:
                self._pool_work[j].append((now + self._switch, b))
            self._announce(dst, b, now)
        elif self._relay_all:
            self._announce(dst, b, now)  # relayed although it is not (or no longer) this node's tip

    def _on_deliver_all(self, now: float, b: int, _a: int, _b: int, _lat: float) -> None:
        """Fixed-delay mode: block b reaches every node at once."""
        st, wb, work, tip = self.state[b], self.work[b], self.work, self.tip
        for i in range(self.n):
            if st[i] != HAVE:
                st[i] = HAVE
                self._got(b, now)
                j = self._miner_idx.get(i)
                if j is not None:
                    self.t_miner[b][j] = now - self.t_found[b]
                if wb > work[tip[i]]:
                    tip[i] = b


def make_hashpower(n_nodes: int, weights: list[float], rng: np.random.Generator) -> np.ndarray:
    """Place the pools' relative weights on distinct random nodes (a network with fewer nodes than pools
    keeps the largest pools) and normalise. Returns an [n_nodes] array of shares."""
    w = np.asarray(weights, dtype=float)
    k = min(len(w), n_nodes)
    w = np.sort(w)[::-1][:k]
    nodes = rng.choice(n_nodes, size=k, replace=False)
    hp = np.zeros(n_nodes)
    hp[nodes] = w / w.sum()
    return hp

