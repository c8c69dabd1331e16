"""The relay overlay simulated on SimPy (the model is described in rlrun/envs/relay/env.py, its Gym adapter):
static tables of the topology, links that drift, fail and degrade, relays' FIFO servers, Poisson message
arrivals with admission control, and the settlement of each chosen hop."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import networkx as nx
import numpy as np
import simpy

from rlrun.envs.relay import obs as O
from rlrun.envs.relay.paths import next_hop_sets, shortest_paths, zero_load_delay
from rlrun.errors import ConfigError, SimulationLimitError


@dataclass(slots=True)
class Message:
    id: int
    src: int
    dst: int
    size: float  # bytes
    qclass: int  # index into obs.QCLASSES
    ttl_ms: float
    created: float
    home_region: int
    hops: int = 0
    cost: float = 0.0
    prev: int = -1
    at: float = 0.0  # when it reached the relay it is at (the start of its current hop)

    @property
    def deadline(self) -> float:
        return self.created + self.ttl_ms



@dataclass(slots=True)
class Hop:
    """How a hop turned out (settled when it is chosen: exact for FIFO servers with known service times)."""

    x: int  # deciding relay
    y: int  # chosen neighbour (-1: an empty slot)
    refused: bool = False  # a masked slot: the message is dropped at x
    cost: float = 0.0
    hop_ms: float = 0.0  # from the message's arrival at x to its arrival at y (or its end)
    delivered: bool = False
    delivery_ms: float = 0.0
    lost: bool = False
    expired: bool = False
    violation: bool = False  # a regional message left its region

    @property
    def dropped(self) -> bool:
        return self.refused or self.lost or self.expired


class RelayNetwork:
    """The overlay, its links and queues, and the messages in flight, on a SimPy clock. The env asks
    `decision` (which message at which relay needs a next hop), settles it with `hop`, then `advance`s the
    clock to the next decision."""

    def __init__(self, graph: nx.Graph, max_degree: int, *, load: float, class_p: np.ndarray,
                 size_range: tuple[float, float], ttl_range: np.ndarray, service_overhead_ms: float,
                 relay_drop_scale: float, relay_cost_per_mb: float, max_hops: int, drift_sigma: float,
                 drift_interval_ms: float, failure_rate: float, failure_ms: float, degrade_at_ms: float,
                 degrade_link: list[int] | None, degrade_rtt_factor: float, degrade_loss: float,
                 forbid_cross_region: bool, max_in_flight: int | None, admission: str, decide_at: str,
                 sp_ties: str, topology_seed: int) -> None:
        self.graph, self.n, self.max_degree = graph, graph.number_of_nodes(), int(max_degree)
        self.load, self.class_p = float(load), class_p
        self.size_range, self.ttl_range = size_range, ttl_range
        self.service_overhead_ms = float(service_overhead_ms)
        self.relay_drop_scale = float(relay_drop_scale)
        self.relay_cost_per_mb = float(relay_cost_per_mb)
        self.max_hops = int(max_hops)
        self.drift_sigma, self.drift_interval_ms = float(drift_sigma), float(drift_interval_ms)
        self.failure_rate, self.failure_ms = float(failure_rate), float(failure_ms)
        self.degrade_at_ms = float(degrade_at_ms)
        self.degrade_rtt_factor, self.degrade_loss = float(degrade_rtt_factor), float(degrade_loss)
        self.forbid_cross_region = bool(forbid_cross_region)
        self.max_in_flight = None if max_in_flight is None else int(max_in_flight)
        self.admission, self.decide_at, self.sp_ties = admission, decide_at, sp_ties
        self._topology_seed = int(topology_seed)
        self._build_tables(degrade_link)
        self.sim: simpy.Environment | None = None

    def _build_tables(self, degrade_link: list[int] | None) -> None:
        g, n, d = self.graph, self.n, self.max_degree
        self.region = np.array([g.nodes[i]["region"] for i in range(n)], dtype=np.int64)
        self.reputation = np.array([g.nodes[i]["reputation"] for i in range(n)], dtype=np.float64)
        self.service_bpms = np.array([g.nodes[i]["service_mbps"] * 1e6 / 1000.0 for i in range(n)])  # bytes/ms
        self.relay_drop = (1.0 - self.reputation) * self.relay_drop_scale
        edges = sorted((min(u, v), max(u, v)) for u, v in g.edges)
        self.edges = np.array(edges, dtype=np.int64)
        self.link_index = {e: i for i, e in enumerate(edges)}
        attr = lambda k: np.array([g.edges[e][k] for e in edges], dtype=np.float64)  # noqa: E731
        self.base_rtt, self.base_jitter = attr("rtt_ms"), attr("jitter_ms")
        self.base_loss, self.price = attr("loss"), attr("price_per_mb")
        # slot tables: slot i of relay x is x's i-th neighbour by id
        self.nbrs = np.full((n, d), -1, dtype=np.int64)
        self.nbr_link = np.zeros((n, d), dtype=np.int64)
        self.deg = np.zeros(n, dtype=np.int64)
        for x in range(n):
            nb = sorted(g.neighbors(x))
            self.deg[x] = len(nb)
            self.nbrs[x, : len(nb)] = nb
            self.nbr_link[x, : len(nb)] = [self.link_index[(min(x, y), max(x, y))] for y in nb]
        # per-relay service: base + size * per_byte (ms); a fixed service_ms replaces overhead + size / rate
        fixed = np.array([g.nodes[i].get("service_ms", np.nan) for i in range(n)], dtype=np.float64)
        self.svc_base = np.where(np.isnan(fixed), self.service_overhead_ms, fixed)
        self.svc_per_byte = np.where(np.isnan(fixed), 1.0 / self.service_bpms, 0.0)
        lo, hi = self.size_range
        mean_size = lo if hi <= lo else (hi - lo) / math.log(hi / lo)  # mean of the log-uniform size
        self.nominal_svc_ms = self.svc_base + mean_size * self.svc_per_byte
        # static shortest paths by RTT (networkx) and zero-load delivery times: global, and within each
        # region for `regional` messages (paths.py)
        everyone = list(range(n))
        self.dist, first = shortest_paths(g, everyone, n)
        self.delay = zero_load_delay(g, self.nominal_svc_ms, everyone, n)
        self.dist_reg, first_reg = self.dist.copy(), first.copy()
        self.delay_reg = self.delay.copy()
        for r in np.unique(self.region):
            members = [int(i) for i in np.flatnonzero(self.region == r)]
            d_r, f_r = shortest_paths(g, members, n)
            inside = np.ix_(members, members)
            self.dist_reg[inside], first_reg[inside] = d_r[inside], f_r[inside]
            self.delay_reg[inside] = zero_load_delay(g, self.nominal_svc_ms, members, n)[inside]
        tie_rng = np.random.default_rng([self._topology_seed, 7])
        self.on_sp = next_hop_sets(g, self.dist, first, self.sp_ties, tie_rng)
        self.on_sp_reg = next_hop_sets(g, self.dist_reg, first_reg, self.sp_ties, tie_rng, self.region)
        self.region_members = {int(r): np.flatnonzero(self.region == r) for r in np.unique(self.region)}
        if degrade_link:
            if len(degrade_link) != 2:
                raise ConfigError(f"env.degrade_link must be [u, v], got {list(degrade_link)}")
            key = (min(degrade_link), max(degrade_link))
            if key not in self.link_index:
                raise ConfigError(f"env.degrade_link {list(degrade_link)} is not a link of the topology")
            self.degrade_index = self.link_index[key]
        else:  # the link most shortest paths cross: degrading it hurts static routing the most
            bc = nx.edge_betweenness_centrality(g, weight="rtt_ms")
            u, v = max(sorted(bc), key=lambda e: bc[e])
            self.degrade_index = self.link_index[(min(u, v), max(u, v))]

    def start(self, rng: np.random.Generator) -> None:
        """A new episode: an empty network at time 0, its processes driven by `rng`, run to the first decision."""
        self.rng = rng
        self.sim = simpy.Environment()
        self.rtt_mult = np.ones(len(self.edges))
        self._degrade_mult = np.ones(len(self.edges))
        self.loss_add = np.zeros(len(self.edges))
        self.link_up = np.ones(len(self.edges), dtype=bool)
        self.busy_until = np.zeros(self.n)
        self._drift_state = np.zeros(len(self.edges))
        self._ready: deque[tuple[Message, int]] = deque()
        self._waitq: list[deque[Message]] = [deque() for _ in range(self.n)]  # decide_at=dequeue: FIFO per relay
        self._serving = np.zeros(self.n, dtype=bool)  # dequeue: the relay's head is being decided or served
        self._backlog: deque[Message] = deque()  # admission=wait: messages waiting at their source
        self._live: dict[int, Message] = {}  # admitted, not yet finished, in id order (oldest first)
        self._next_id = 0
        self._in_flight = 0
        self._stats = {
            "delivered": 0,
            "dropped": 0,
            "lost": 0,
            "expired": 0,
            "refused": 0,
            "cost": 0.0,
            "mb_delivered": 0.0,
            "hops": 0,
            "violations": 0,
            "offered": 0,
            "rejected": 0,
        }
        self._delivery_ms: list[float] = []
        self.sim.process(self._arrivals(rng))
        if self.drift_sigma > 0:
            self.sim.process(self._drift(rng))
        if self.failure_rate > 0:
            self.sim.process(self._failures(rng))
        if self.degrade_at_ms >= 0:
            self.sim.process(self._degrade())
        self.advance()

    @property
    def decision(self) -> tuple[Message, int]:
        """(message, relay) of the decision the network waits for."""
        return self._ready[0]

    def take_decision(self) -> tuple[Message, int]:
        return self._ready.popleft()

    def congestion(self) -> dict[str, float]:
        return {"queue_ms": float(np.maximum(self.busy_until - self.sim.now, 0.0).mean()),
                "in_flight": float(self._in_flight), "waiting": float(len(self._backlog)),
                "rejected": float(self._stats["rejected"])}

    def hop(self, msg: Message, x: int, a: int) -> Hop:
        """Settle the hop chosen for `msg` at relay `x` (slot `a`) and schedule what follows."""
        now = self.sim.now
        rng = self.rng
        y = int(self.nbrs[x, a])
        link = int(self.nbr_link[x, a])
        out = Hop(x=x, y=y)
        service = self.svc_base[x] + msg.size * self.svc_per_byte[x]
        dequeue = self.decide_at == "dequeue"
        if y < 0 or not self.link_up[link]:  # a masked slot: the relay refuses the message
            out.refused = True
            if dequeue:  # its place in the backlog is freed and the next message moves up now
                self.busy_until[x] -= service
                self._release(x)
            self._finish(msg, "refused", now)
            return out
        if dequeue:  # at the head of x's queue: served now, the next message moves up when it leaves
            depart = now + service
            self.sim.timeout(service).callbacks.append(lambda _e, node=x: self._release(node))
        else:
            depart = max(now, self.busy_until[x]) + service
            self.busy_until[x] = depart
        delay = self.base_rtt[link] * self.rtt_mult[link] / 2.0 + self.base_jitter[link] * abs(rng.standard_normal())
        arrive = depart + delay
        out.cost = msg.size / 1e6 * (self.price[link] + self.relay_cost_per_mb)
        msg.cost += out.cost
        msg.hops += 1
        loss = min(self.base_loss[link] + self.loss_add[link], 1.0)
        p_drop = 1.0 - (1.0 - loss) * (1.0 - (0.0 if y == msg.dst else self.relay_drop[y]))
        lost = rng.random() < p_drop
        if self.forbid_cross_region and msg.qclass == 1 and self.region[y] != msg.home_region:
            out.violation = True
            self._stats["violations"] += 1
        end = arrive
        if arrive > msg.deadline or (y != msg.dst and msg.hops >= self.max_hops):
            end = min(arrive, msg.deadline) if arrive > msg.deadline else arrive
            out.expired = True
            self._schedule_end(msg, "expired", end)
        elif lost:
            out.lost = True
            self._schedule_end(msg, "lost", end)
        elif y == msg.dst:
            out.delivered, out.delivery_ms = True, arrive - msg.created
            self._schedule_end(msg, "delivered", end)
        else:
            msg.prev = x
            ev = self.sim.timeout(end - now)
            ev.callbacks.append(lambda _e, m=msg, node=y: self._enter(m, node))
        out.hop_ms = end - msg.at
        return out

    def sp_rtt(self, node: int, msg: Message) -> float:
        """Static shortest-path RTT (ms) from `node` to the message's destination: the shaping potential."""
        d = self.dist_reg if (self.forbid_cross_region and msg.qclass == 1) else self.dist
        return float(d[node, msg.dst])

    def _schedule_end(self, msg: Message, kind: str, at: float) -> None:
        ev = self.sim.timeout(max(at - self.sim.now, 0.0))
        ev.callbacks.append(lambda _e: self._finish(msg, kind, at))

    def _finish(self, msg: Message, kind: str, at: float) -> None:
        """Book a message that left the network (counted when it happens on the simulated clock)."""
        self._in_flight -= 1
        del self._live[msg.id]
        if self._backlog:  # admission=wait: its place goes to the oldest message waiting at its source
            self._admit(self._backlog.popleft())
        s = self._stats
        s["cost"] += msg.cost
        s["hops"] += msg.hops
        if kind == "delivered":
            s["delivered"] += 1
            s["mb_delivered"] += msg.size / 1e6
            self._delivery_ms.append(at - msg.created)
        else:
            s["dropped"] += 1
            s[kind] += 1

    # ---- simulation processes -----------------------------------------------------------------------
    def _arrivals(self, rng: np.random.Generator):
        mean_gap = 1000.0 / self.load
        lo, hi = np.log(self.size_range[0]), np.log(self.size_range[1])
        while True:
            yield self.sim.timeout(rng.exponential(mean_gap))
            qclass = int(rng.choice(3, p=self.class_p))
            src = int(rng.integers(self.n))
            same = self.region_members[int(self.region[src])]
            if qclass == 1 and len(same) > 1:  # regional: stay inside the source's region
                dst = int(same[rng.integers(len(same) - 1)])
                dst = dst if dst != src else int(same[-1])
            elif qclass == 2 and len(same) < self.n:  # backbone: another region
                others = np.flatnonzero(self.region != self.region[src])
                dst = int(others[rng.integers(len(others))])
            else:
                dst = int(rng.integers(self.n - 1))
                dst = dst if dst < src else dst + 1
            size = float(np.exp(rng.uniform(lo, hi)))
            ttl = float(rng.uniform(*self.ttl_range[qclass]))
            msg = Message(self._next_id, src, dst, size, qclass, ttl, self.sim.now, int(self.region[src]))
            self._next_id += 1
            self._stats["offered"] += 1
            if self.max_in_flight is None or self._in_flight < self.max_in_flight:
                self._admit(msg)
            elif self.admission == "wait":
                self._backlog.append(msg)
            else:
                self._stats["rejected"] += 1

    def _admit(self, msg: Message) -> None:
        """Put a message into the network at its source. Its id must stay distinguishable (modulo
        MSG_ID_MOD, as the observation carries it) from every message still in flight: stop rather than
        let two messages share an id and mix up their learning updates."""
        if self._live and msg.id - next(iter(self._live)) >= O.MSG_ID_MOD:
            raise SimulationLimitError(
                f"env=relay: more than {O.MSG_ID_MOD:,} messages would be in flight at once (their ids would "
                "collide); set env.max_in_flight or lower env.load"
            )
        self._live[msg.id] = msg
        self._in_flight += 1
        self._enter(msg, msg.src)

    def _enter(self, msg: Message, x: int) -> None:
        """`msg` reaches relay `x`: decide now (arrival) or join x's FIFO and decide at its head (dequeue)."""
        msg.at = self.sim.now
        if self.decide_at == "arrival":
            self._ready.append((msg, x))
            return
        service = self.svc_base[x] + msg.size * self.svc_per_byte[x]
        self.busy_until[x] = max(self.sim.now, self.busy_until[x]) + service  # the backlog the queue feature shows
        if self._serving[x]:
            self._waitq[x].append(msg)
        else:
            self._serving[x] = True
            self._ready.append((msg, x))

    def _release(self, x: int) -> None:
        """decide_at=dequeue: relay x's server is free; its next queued message reaches the head."""
        if self._waitq[x]:
            self._ready.append((self._waitq[x].popleft(), x))
        else:
            self._serving[x] = False

    def _drift(self, rng: np.random.Generator):
        """Mean-reverting log random walk of every link's RTT and loss (network weather)."""
        theta = 0.1
        while True:
            yield self.sim.timeout(self.drift_interval_ms)
            z = rng.standard_normal(len(self.edges))
            self._drift_state += -theta * self._drift_state + self.drift_sigma * z
            self.rtt_mult = np.exp(self._drift_state) * self._degrade_mult

    def _failures(self, rng: np.random.Generator):
        """Links fail as a Poisson process (`failure_rate` per link per simulated second) and come back
        after `failure_ms`. A failure that would cut a relay off from every neighbour is skipped."""
        rate_per_ms = self.failure_rate * len(self.edges) / 1000.0
        while True:
            yield self.sim.timeout(rng.exponential(1.0 / rate_per_ms))
            i = int(rng.integers(len(self.edges)))
            u, v = self.edges[i]
            if not self.link_up[i] or self._live_degree(u) <= 1 or self._live_degree(v) <= 1:
                continue
            self.link_up[i] = False
            ev = self.sim.timeout(self.failure_ms)
            ev.callbacks.append(lambda _e, k=i: self.link_up.__setitem__(k, True))

    def _live_degree(self, node: int) -> int:
        return int(self.link_up[self.nbr_link[node, : self.deg[node]]].sum())

    def _degrade(self):
        yield self.sim.timeout(self.degrade_at_ms)
        self._degrade_mult[self.degrade_index] = self.degrade_rtt_factor
        self.rtt_mult[self.degrade_index] *= self.degrade_rtt_factor
        self.loss_add[self.degrade_index] = self.degrade_loss

    def advance(self) -> None:
        """Run the clock until some message waits for a decision."""
        while not self._ready:
            self.sim.step()

    def mask(self) -> np.ndarray:
        """The live slots of the relay that decides next."""
        _, x = self._ready[0]
        mask = np.zeros(self.max_degree, dtype=np.int8)
        k = self.deg[x]
        mask[:k] = self.link_up[self.nbr_link[x, :k]]
        return mask


    # ---- episode metrics ----------------------------------------------------------------------------
    def episode_metrics(self) -> dict[str, float]:
        """Metrics over the messages that left the network during the episode (by simulated time)."""
        s = self._stats
        done = s["delivered"] + s["dropped"]
        times = np.asarray(self._delivery_ms) if self._delivery_ms else np.zeros(1)
        return {
            "delivery_ms_mean": float(times.mean()),
            "delivery_ms_p95": float(np.percentile(times, 95)),
            "delivery_ratio": s["delivered"] / done if done else 0.0,
            "cost_per_mb": s["cost"] / s["mb_delivered"] if s["mb_delivered"] > 0 else 0.0,
            "messages": float(done),
            "hops_mean": s["hops"] / done if done else 0.0,
            "violation_rate": s["violations"] / done if done else 0.0,
            "rejected": float(s["rejected"]),  # refused at the admission cap (never entered the network)
            "rejected_ratio": s["rejected"] / s["offered"] if s["offered"] else 0.0,
        }
