"""`env=relay`: packet-level SimPy simulation of a relay overlay; every step is one next-hop decision.

Model (seed 003, with the pieces it leaves implicit made explicit):
- Relays sit on a networkx overlay (topology.py). Each link has RTT, jitter, loss and a price per MB; each
  relay has a region, a reputation and one FIFO queue served at `service_mbps` (plus a fixed overhead), so
  load builds queues. Link RTT/loss can drift (log-OU random walk), links can fail for a while, and one link
  can degrade at a set time, to test adaptation.
- Messages arrive as a Poisson process of rate `load` (messages per simulated second) with the seed's
  workload: log-uniform sizeBytes, qClass drawn from `class_mix` (regional: source and destination in one
  region; backbone: different regions; best-effort: any pair) and a per-class ttlMs range.
- Admission (`max_in_flight`): with a cap, a new message finding the network full is refused at its source
  (`admission=reject`, counted in the `rejected` metric) or waits at its source until a message leaves
  (`admission=wait`; the wait counts in its delivery time). Without a cap, in-flight messages are limited
  only by the 2^24 message ids an episode can tell apart: past that the run stops with one line.
- A message at a relay (its source included) asks for a decision: the agent picks one of the relay's live
  links. `decide_at=arrival` (default) asks when the message reaches the relay; `decide_at=dequeue` (the
  classic Q-routing experiment) queues it in the relay's FIFO and asks when it reaches the head of the
  queue, so the choice sees the network as it is when the message actually leaves. Either way the hop's
  outcome is settled at decision time, which is exact for a FIFO server with known service times: the
  message waits for the relay's backlog (arrival) or has waited for it (dequeue), is served (overhead +
  size / rate, or a relay's fixed `service_ms`), crosses the link (RTT/2 + half-normal jitter), and is lost
  with the link's loss rate (or the next relay's drop rate, 1 - reputation scaled by `relay_drop_scale`).
  It is delivered on reaching its destination and expires if it would arrive after its TTL or exceed
  `max_hops`. Choosing a masked slot (empty or failed link) refuses the message: it is dropped at this
  relay. SimPy then runs the clock to the next decision. A hop's time runs from the message's arrival at
  the deciding relay to its arrival at the next one, so the hop times of a message add up to its delivery
  time (less any wait for admission).
- Because the outcome is known when the hop is chosen, each step's reward belongs to that decision alone:
      r = -(latency_weight * hop_s + price_weight * cost) - loss_penalty * dropped + success_bonus * delivered
          - sla_penalty * max(0, P95/target - 1) [on delivery] - cross_region_penalty * violation
          + progress_weight * (SP RTT to the destination before - after the hop) / 100 ms [shaping, default 0]
  Summed over one message's hops this is the seed's end-to-end reward (-(w_l*endToEndRtt + w_loss*dropRate
  + w_p*cost) + success_bonus) plus its policy penalties. Weights come from the `reward` group.

Concurrency: steps follow the simulated clock, so consecutive steps usually concern different messages.
The observation carries the message id and, in its feedback block, the outcome of the previous action, so
an online agent can still learn per message (qrouting does); generic agents see a partially observed
network MDP whose return is the total reward of all messages.

The simulator holds live SimPy processes and callbacks, which cannot be snapshotted: the env has no
get_state/set_state, so a resumed run restarts the interrupted episode.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import networkx as nx
import numpy as np
import simpy
from gymnasium import spaces

from rlrun.envs.relay import obs as O
from rlrun.envs.relay.paths import next_hop_sets, shortest_paths, zero_load_delay
from rlrun.envs.relay.topology import build_topology
from rlrun.errors import ConfigError, SimulationLimitError

DECIDE_AT = ("arrival", "dequeue")
ADMISSION = ("reject", "wait")

_LOG_MAX_SIZE = math.log1p(O.MAX_SIZE_BYTES)
MAX_LOAD = 5_000.0  # messages per simulated second: the grid saturates near 350, the README runs 50 to 380

REWARD_DEFAULTS: dict[str, Any] = {
    "latency_weight": 1.0,  # per second of delivery time
    "loss_penalty": 3.0,  # per dropped message (lost, expired or refused)
    "price_weight": 0.2,  # per unit of cost (price per MB * MB)
    "success_bonus": 2.0,  # per delivered message
    "sla_penalty": 1.0,  # per delivery while the class's rolling P95 exceeds its target, times the excess
    "cross_region_penalty": 1.0,  # per hop that takes a `regional` message out of its region
    "progress_weight": 0.0,  # potential-based shaping by static shortest-path RTT (0 = the seed's reward)
    "sla_target_ms": {"best-effort": 1500.0, "regional": 400.0, "backbone": 800.0},
    "sla_window": 200,  # deliveries per class in the rolling P95
}

TTL_DEFAULTS_MS: dict[str, list[float]] = {
    "best-effort": [2000.0, 5000.0],
    "regional": [800.0, 2000.0],
    "backbone": [1500.0, 4000.0],
}


def resolve_reward(reward: Any) -> dict[str, Any]:
    """Merge the `reward` group over the seed's defaults and check every weight's rule."""
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in REWARD_DEFAULTS.items()}
    if reward is None:
        return cfg
    given = dict(reward)
    unknown = set(given) - set(REWARD_DEFAULTS)
    if unknown:
        raise ConfigError(f"reward has unknown keys {sorted(unknown)}; allowed: {', '.join(REWARD_DEFAULTS)}")
    for key, value in given.items():
        if key == "sla_target_ms":
            targets = dict(value)
            bad = set(targets) - set(O.QCLASSES)
            if bad:
                raise ConfigError(f"reward.sla_target_ms keys must be among {', '.join(O.QCLASSES)}, got {sorted(bad)}")
            for cls, t in targets.items():
                if float(t) <= 0:
                    raise ConfigError(f"reward.sla_target_ms.{cls} must be > 0, got {t}")
                cfg["sla_target_ms"][cls] = float(t)
        elif key == "sla_window":
            if int(value) < 1:
                raise ConfigError(f"reward.sla_window must be >= 1, got {value}")
            cfg[key] = int(value)
        else:
            if float(value) < 0:
                raise ConfigError(f"reward.{key} must be >= 0 (it is a weight on a cost or a bonus), got {value}")
            cfg[key] = float(value)
    return cfg


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


class RelayEnv(gym.Env):
    """One step = one next-hop decision for one message. See the module docstring for the model."""

    metadata = {"render_modes": []}
    tensorboard_layout = {
        "relay": {
            "delivery time (ms)": [
                "Multiline",
                ["env/delivery_ms_mean", "env/delivery_ms_p95", "env/delivery_ms"],
            ],
            "delivery ratio": ["Multiline", ["env/delivery_ratio", "env/dropped", "env/lost", "env/expired"]],
            "cost": ["Multiline", ["env/cost_per_mb", "env/cost"]],
            "congestion": ["Multiline", ["env/queue_ms", "env/in_flight"]],
            "reward terms": [
                "Multiline",
                [
                    "env/r_latency",
                    "env/r_loss",
                    "env/r_price",
                    "env/r_bonus",
                    "env/r_sla",
                    "env/r_region",
                    "env/r_progress",
                ],
            ],
            "policy": ["Multiline", ["env/violation", "env/refused", "env/hops_mean"]],
            "admission": ["Multiline", ["env/rejected", "env/rejected_ratio", "env/waiting"]],
        },
    }

    def __init__(
        self,
        topology: str = "grid",
        num_nodes: int = 30,
        num_regions: int = 3,
        grid_size: list[int] | None = None,
        edges: list[list[float]] | None = None,
        regions: list[int] | None = None,
        reputations: list[float] | None = None,
        topology_seed: int = 0,
        max_degree: int = 0,
        load: float = 150.0,
        class_mix: list[float] | None = None,
        size_bytes: list[float] | None = None,
        ttl_ms: dict[str, list[float]] | None = None,
        service_mbps: float = 20.0,
        service_overhead_ms: float = 5.0,
        relay_drop_scale: float = 0.02,
        relay_cost_per_mb: float = 0.1,
        max_hops: int = 32,
        episode_ms: float = 5000.0,
        max_steps: int = 0,
        drift_sigma: float = 0.0,
        drift_interval_ms: float = 500.0,
        failure_rate: float = 0.0,
        failure_ms: float = 2000.0,
        degrade_at_ms: float = -1.0,
        degrade_link: list[int] | None = None,
        degrade_rtt_factor: float = 10.0,
        degrade_loss: float = 0.0,
        forbid_cross_region: bool = True,
        max_in_flight: int | None = None,
        admission: str = "reject",
        decide_at: str = "arrival",
        sp_ties: str = "first",
        reward: Any = None,
    ) -> None:
        self.reward_cfg = resolve_reward(reward)
        if not 0 < load <= MAX_LOAD:
            raise ConfigError(f"env.load must be in (0, {MAX_LOAD:g}] messages per second, got {load} (a step "
                              f"simulates every arrival before the next decision: beyond that it never returns)")
        if max_in_flight is not None and int(max_in_flight) < 1:
            raise ConfigError(f"env.max_in_flight must be >= 1 message (null = no cap), got {max_in_flight}")
        if admission not in ADMISSION:
            raise ConfigError(f"env.admission must be one of {', '.join(ADMISSION)}, got {admission!r}")
        if decide_at not in DECIDE_AT:
            raise ConfigError(f"env.decide_at must be one of {', '.join(DECIDE_AT)}, got {decide_at!r}")
        if episode_ms <= 0:
            raise ConfigError(f"env.episode_ms must be > 0, got {episode_ms}")
        if max_steps < 0 or max_hops < 1:
            raise ConfigError("env.max_steps must be >= 0 (0 = no cap) and env.max_hops >= 1")
        if service_mbps <= 0 or service_overhead_ms < 0:
            raise ConfigError("env.service_mbps must be > 0 and env.service_overhead_ms >= 0")
        if drift_sigma < 0 or failure_rate < 0 or drift_interval_ms <= 0 or failure_ms <= 0:
            raise ConfigError("env.drift_sigma and env.failure_rate must be >= 0, their intervals > 0")
        if degrade_rtt_factor < 1.0 or not 0.0 <= degrade_loss < 1.0:
            raise ConfigError("env.degrade_rtt_factor must be >= 1 and env.degrade_loss in [0, 1)")
        mix = np.asarray(class_mix if class_mix is not None else [0.6, 0.25, 0.15], dtype=np.float64)
        if mix.shape != (3,) or np.any(mix < 0) or mix.sum() <= 0:
            raise ConfigError(f"env.class_mix must be 3 non-negative weights for {O.QCLASSES}, got {list(mix)}")
        sizes = list(size_bytes if size_bytes is not None else [1024.0, 262144.0])
        if len(sizes) != 2 or not 0 < sizes[0] <= sizes[1] <= O.MAX_SIZE_BYTES:
            raise ConfigError(f"env.size_bytes must be [min, max] with 0 < min <= max <= {O.MAX_SIZE_BYTES}")
        ttl = {k: list(v) for k, v in TTL_DEFAULTS_MS.items()}
        for k, v in dict(ttl_ms or {}).items():
            if k not in ttl or len(v) != 2 or not 0 < float(v[0]) <= float(v[1]):
                raise ConfigError(f"env.ttl_ms.{k}: keys {O.QCLASSES}, values [min_ms, max_ms] with 0 < min <= max")
            ttl[k] = [float(v[0]), float(v[1])]

        self.graph = build_topology(
            topology,
            topology_seed,
            num_nodes=num_nodes,
            num_regions=num_regions,
            grid_size=grid_size if grid_size is not None else [6, 6],
            edges=edges,
            regions=regions,
            reputations=reputations,
            service_mbps=service_mbps,
        )
        self.n = self.graph.number_of_nodes()
        top_degree = max(d for _, d in self.graph.degree)
        if max_degree == 0:  # auto: one spare slot, so a relay can always refuse
            max_degree = top_degree + 1
        if max_degree <= top_degree:
            raise ConfigError(
                f"env.max_degree ({max_degree}) must exceed the largest relay degree ({top_degree}) so that "
                f"a relay can always refuse a message; use env.max_degree={top_degree + 1} or more (0 = auto)"
            )
        self.max_degree = int(max_degree)
        self.layout = O.ObsLayout(self.n, self.max_degree)
        low, high = self.layout.bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(self.max_degree)

        self.load = float(load)
        self.class_p = mix / mix.sum()
        self.size_range = (float(sizes[0]), float(sizes[1]))
        self.ttl_range = np.array([ttl[c] for c in O.QCLASSES], dtype=np.float64)
        self.service_overhead_ms = float(service_overhead_ms)
        self.relay_drop_scale = float(relay_drop_scale)
        self.relay_cost_per_mb = float(relay_cost_per_mb)
        self.max_hops = int(max_hops)
        self.episode_ms = float(episode_ms)
        self.max_steps = int(max_steps)
        self.drift_sigma = float(drift_sigma)
        self.drift_interval_ms = float(drift_interval_ms)
        self.failure_rate = float(failure_rate)
        self.failure_ms = float(failure_ms)
        self.degrade_at_ms = float(degrade_at_ms)
        self.degrade_rtt_factor = float(degrade_rtt_factor)
        self.degrade_loss = float(degrade_loss)
        self.forbid_cross_region = bool(forbid_cross_region)
        self.max_in_flight = None if max_in_flight is None else int(max_in_flight)
        self.admission = admission
        self.decide_at = decide_at
        self.sp_ties = sp_ties
        self._topology_seed = int(topology_seed)
        self._build_tables(degrade_link)
        self._static_blocks()
        self.sim: simpy.Environment | None = None

    # ---- static tables -----------------------------------------------------------------------------
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

    # ---- Gymnasium API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
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
        self._steps = 0
        self._in_flight = 0
        self._sla = [deque(maxlen=self.reward_cfg["sla_window"]) for _ in O.QCLASSES]
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
        self._feedback = np.zeros(len(O.FEEDBACK), dtype=np.float32)
        self.sim.process(self._arrivals(rng))
        if self.drift_sigma > 0:
            self.sim.process(self._drift(rng))
        if self.failure_rate > 0:
            self.sim.process(self._failures(rng))
        if self.degrade_at_ms >= 0:
            self.sim.process(self._degrade())
        self._advance()
        return self._observe(), {"action_mask": self._mask()}

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.max_degree:
            raise ValueError(f"action {action!r} is outside Discrete({self.max_degree})")
        msg, x = self._ready.popleft()
        info = self._decide(msg, x, a)
        reward = info.pop("reward")
        self._steps += 1
        self._advance()
        truncated = self.sim.now >= self.episode_ms or (self.max_steps > 0 and self._steps >= self.max_steps)
        info["action_mask"] = self._mask()
        info["queue_ms"] = float(np.maximum(self.busy_until - self.sim.now, 0.0).mean())
        info["in_flight"] = float(self._in_flight)
        info["waiting"] = float(len(self._backlog))
        info["rejected"] = float(self._stats["rejected"])
        if truncated:
            info.update(self.episode_metrics())
        for key, value in info.items():
            if key != "action_mask":
                info[key] = float(value)
        return self._observe(), float(reward), False, bool(truncated), info

    @property
    def now_ms(self) -> float:
        """The simulated clock (ms since reset)."""
        return float(self.sim.now) if self.sim is not None else 0.0

    # ---- the hop ------------------------------------------------------------------------------------
    def _decide(self, msg: Message, x: int, a: int) -> dict[str, Any]:
        """Settle the hop chosen for `msg` at relay `x`, schedule what follows, return the info terms."""
        w = self.reward_cfg
        now = self.sim.now
        rng = self.np_random
        y = int(self.nbrs[x, a])
        link = int(self.nbr_link[x, a])
        mb = msg.size / 1e6
        info: dict[str, Any] = {
            "hop_ms": 0.0,
            "cost": 0.0,
            "delivered": 0.0,
            "dropped": 0.0,
            "lost": 0.0,
            "expired": 0.0,
            "refused": 0.0,
            "violation": 0.0,
        }
        r_lat = r_price = r_loss = r_bonus = r_sla = r_region = r_prog = 0.0
        service = self.svc_base[x] + msg.size * self.svc_per_byte[x]
        dequeue = self.decide_at == "dequeue"
        if y < 0 or not self.link_up[link]:  # a masked slot: the relay refuses the message
            info["refused"] = info["dropped"] = 1.0
            r_loss = -w["loss_penalty"]
            if dequeue:  # its place in the backlog is freed and the next message moves up now
                self.busy_until[x] -= service
                self._release(x)
            self._finish(msg, "refused", now)
            self._set_feedback(terminal=True, delivered=False, hop_ms=0.0, delivery_ms=0.0)
        else:
            if dequeue:  # at the head of x's queue: served now, the next message moves up when it leaves
                depart = now + service
                self.sim.timeout(service).callbacks.append(lambda _e, node=x: self._release(node))
            else:
                depart = max(now, self.busy_until[x]) + service
                self.busy_until[x] = depart
            delay = self.base_rtt[link] * self.rtt_mult[link] / 2.0 + self.base_jitter[link] * abs(
                rng.standard_normal()
            )
            arrive = depart + delay
            cost = mb * (self.price[link] + self.relay_cost_per_mb)
            msg.cost += cost
            msg.hops += 1
            info["cost"] = cost
            r_price = -w["price_weight"] * cost
            loss = min(self.base_loss[link] + self.loss_add[link], 1.0)
            p_drop = 1.0 - (1.0 - loss) * (1.0 - (0.0 if y == msg.dst else self.relay_drop[y]))
            lost = rng.random() < p_drop
            if self.forbid_cross_region and msg.qclass == 1 and self.region[y] != msg.home_region:
                info["violation"] = 1.0
                r_region = -w["cross_region_penalty"]
                self._stats["violations"] += 1
            if arrive > msg.deadline or (y != msg.dst and msg.hops >= self.max_hops):
                end = min(arrive, msg.deadline) if arrive > msg.deadline else arrive
                info["expired"] = info["dropped"] = 1.0
                r_loss = -w["loss_penalty"]
                self._schedule_end(msg, "expired", end)
            elif lost:
                end = arrive
                info["lost"] = info["dropped"] = 1.0
                r_loss = -w["loss_penalty"]
                self._schedule_end(msg, "lost", end)
            else:
                end = arrive
                r_prog = w["progress_weight"] * (self._sp_rtt(x, msg) - self._sp_rtt(y, msg)) / O.RTT_NORM_MS
                if y == msg.dst:
                    delivery = arrive - msg.created
                    info["delivered"] = 1.0
                    info["delivery_ms"] = delivery
                    r_bonus = w["success_bonus"]
                    r_sla = -w["sla_penalty"] * self._sla_excess(msg.qclass, delivery)
                    self._schedule_end(msg, "delivered", end)
                else:
                    msg.prev = x
                    ev = self.sim.timeout(end - now)
                    ev.callbacks.append(lambda _e, m=msg, node=y: self._enter(m, node))
            hop_ms = end - msg.at
            info["hop_ms"] = hop_ms
            r_lat = -w["latency_weight"] * hop_ms / 1000.0
            self._set_feedback(
                terminal=info["dropped"] > 0 or info["delivered"] > 0,
                delivered=info["delivered"] > 0,
                hop_ms=hop_ms,
                delivery_ms=info.get("delivery_ms", 0.0),
            )
        info.update(
            r_latency=r_lat,
            r_price=r_price,
            r_loss=r_loss,
            r_bonus=r_bonus,
            r_sla=r_sla,
            r_region=r_region,
            r_progress=r_prog,
        )
        info["reward"] = r_lat + r_price + r_loss + r_bonus + r_sla + r_region + r_prog
        return info

    def _sp_rtt(self, node: int, msg: Message) -> float:
        """Static shortest-path RTT (ms) from `node` to the message's destination: the shaping potential."""
        d = self.dist_reg if (self.forbid_cross_region and msg.qclass == 1) else self.dist
        return float(d[node, msg.dst])

    def _sla_excess(self, qclass: int, delivery_ms: float) -> float:
        window = self._sla[qclass]
        window.append(delivery_ms)
        target = self.reward_cfg["sla_target_ms"][O.QCLASSES[qclass]]
        p95 = float(np.percentile(np.fromiter(window, dtype=np.float64, count=len(window)), 95))
        return max(0.0, p95 / target - 1.0)

    def _set_feedback(self, *, terminal: bool, delivered: bool, hop_ms: float, delivery_ms: float) -> None:
        self._feedback[:] = (
            1.0,
            float(terminal),
            float(delivered),
            float(terminal and not delivered),
            hop_ms / O.TIME_NORM_MS,
            delivery_ms / O.TIME_NORM_MS,
        )

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

    def _advance(self) -> None:
        while not self._ready:
            self.sim.step()

    # ---- observation --------------------------------------------------------------------------------
    def _mask(self) -> np.ndarray:
        _, x = self._ready[0]
        mask = np.zeros(self.max_degree, dtype=np.int8)
        k = self.deg[x]
        mask[:k] = self.link_up[self.nbr_link[x, :k]]
        return mask

    def _static_blocks(self) -> None:
        """Per (relay, destination, regional?) candidate block of the features that never change in an
        episode (jitter, price, reputation, regionMatch, SP distance, SP next hop, is-destination, zero-load
        delay), so a
        step only fills in RTT, loss and queue."""
        n, dm, f = self.n, self.max_degree, self.layout.n_feat
        self._static = np.zeros((2, n, n, dm, f), dtype=np.float32)
        for regional in (0, 1):
            dist = self.dist_reg if regional else self.dist
            on_sp = self.on_sp_reg if regional else self.on_sp
            delay = self.delay_reg if regional else self.delay
            for x in range(n):
                k = int(self.deg[x])
                nb, li = self.nbrs[x, :k], self.nbr_link[x, :k]
                block = self._static[regional, x, :, :k]  # [dst, k, F]
                block[:, :, 2] = self.base_jitter[li] / O.JITTER_NORM_MS
                block[:, :, 3] = self.price[li] / O.PRICE_NORM
                block[:, :, 4] = self.reputation[nb]
                block[:, :, 5] = self.region[nb][None, :] == self.region[:, None]
                dn = dist[nb, :].T  # [dst, k]
                block[:, :, 7] = np.minimum(np.where(np.isfinite(dn), dn, self.dist[nb, :].T) / O.RTT_NORM_MS, 1000.0)
                block[:, :, 8] = on_sp[x][:, nb]
                block[:, :, 9] = nb[None, :] == np.arange(n)[:, None]
                # zero-load delivery time via the candidate: x's service, the link, then the fastest path on
                dy = delay[nb, :].T  # [dst, k]
                dy = np.where(np.isfinite(dy), dy, self.delay[nb, :].T)
                via = self.nominal_svc_ms[x] + self.base_rtt[li] / 2.0
                block[:, :, 10] = np.minimum((via[None, :] + dy) / O.RTT_NORM_MS, 1000.0)
        self._template = np.zeros(self.layout.size, dtype=np.float32)
        self._template[:4] = self.layout.header()

    def _observe(self) -> np.ndarray:
        msg, x = self._ready[0]
        L = self.layout
        o = self._template.copy()
        k = int(self.deg[x])
        nb = self.nbrs[x, :k]
        li = self.nbr_link[x, :k]
        up = self.link_up[li]
        d = msg.dst
        now = self.sim.now
        o[L.context : L.feedback] = (
            (x + 1) / O.ID_SCALE,
            (d + 1) / O.ID_SCALE,
            (msg.prev + 1) / O.ID_SCALE,
            O.encode_msg(msg.id),
            (self.region[x] + 1) / O.ID_SCALE,
            (self.region[d] + 1) / O.ID_SCALE,
        )
        o[L.feedback : L.workload] = self._feedback
        o[L.workload + msg.qclass] = 1.0
        o[L.workload + 3 : L.cand] = (
            math.log1p(msg.size) / _LOG_MAX_SIZE,
            O.ttl_bucket(msg.ttl_ms),
            max(msg.deadline - now, 0.0) / msg.ttl_ms,
            msg.hops / self.max_hops,
        )
        regional = 1 if (self.forbid_cross_region and msg.qclass == 1) else 0
        cand = o[L.cand : L.cand_ids].reshape(self.max_degree, L.n_feat)
        cand[:k] = self._static[regional, x, d, :k]
        cand[:k, 0] = np.minimum(self.base_rtt[li] * self.rtt_mult[li] / O.RTT_NORM_MS, 1000.0)
        cand[:k, 1] = np.minimum(self.base_loss[li] + self.loss_add[li], 1.0)
        cand[:k, 6] = np.minimum(np.maximum(self.busy_until[nb] - now, 0.0) / O.QUEUE_NORM_MS, 1000.0)
        if not up.all():
            cand[:k][~up] = 0.0
        o[L.cand_ids : L.cand_ids + k] = (nb + 1) / O.ID_SCALE
        o[L.node_1hot + x] = 1.0
        o[L.dst_1hot + d] = 1.0
        o[L.mask : L.mask + k] = up
        return o

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
