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

This module is the Gym adapter (spaces, observation, reward); the simulator is network.py.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlrun.envs.relay import obs as O
from rlrun.envs.relay.network import Hop, RelayNetwork
from rlrun.envs.relay.topology import build_topology
from rlrun.envs.rewards import RelayReward, as_reward
from rlrun.errors import ConfigError

DECIDE_AT = ("arrival", "dequeue")
ADMISSION = ("reject", "wait")

_LOG_MAX_SIZE = math.log1p(O.MAX_SIZE_BYTES)
MAX_LOAD = 5_000.0  # messages per simulated second: the grid saturates near 350, the README runs 50 to 380

TTL_DEFAULTS_MS: dict[str, list[float]] = {
    "best-effort": [2000.0, 5000.0],
    "regional": [800.0, 2000.0],
    "backbone": [1500.0, 4000.0],
}


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
        self.reward = as_reward(reward, RelayReward)
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
        n = self.graph.number_of_nodes()
        top_degree = max(d for _, d in self.graph.degree)
        if max_degree == 0:  # auto: one spare slot, so a relay can always refuse
            max_degree = top_degree + 1
        if max_degree <= top_degree:
            raise ConfigError(
                f"env.max_degree ({max_degree}) must exceed the largest relay degree ({top_degree}) so that "
                f"a relay can always refuse a message; use env.max_degree={top_degree + 1} or more (0 = auto)"
            )
        self.max_degree = int(max_degree)
        self.layout = O.ObsLayout(n, self.max_degree)
        low, high = self.layout.bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Discrete(self.max_degree)

        self.max_hops = int(max_hops)
        self.episode_ms = float(episode_ms)
        self.max_steps = int(max_steps)
        self.forbid_cross_region = bool(forbid_cross_region)
        self.net = RelayNetwork(
            self.graph, self.max_degree, load=load, class_p=mix / mix.sum(),
            size_range=(float(sizes[0]), float(sizes[1])),
            ttl_range=np.array([ttl[c] for c in O.QCLASSES], dtype=np.float64),
            service_overhead_ms=service_overhead_ms, relay_drop_scale=relay_drop_scale,
            relay_cost_per_mb=relay_cost_per_mb, max_hops=max_hops, drift_sigma=drift_sigma,
            drift_interval_ms=drift_interval_ms, failure_rate=failure_rate, failure_ms=failure_ms,
            degrade_at_ms=degrade_at_ms, degrade_link=degrade_link, degrade_rtt_factor=degrade_rtt_factor,
            degrade_loss=degrade_loss, forbid_cross_region=forbid_cross_region, max_in_flight=max_in_flight,
            admission=admission, decide_at=decide_at, sp_ties=sp_ties, topology_seed=topology_seed,
        )
        self._static_blocks()
        self._started = False

    # ---- Gymnasium API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._steps = 0
        self.reward.reset()
        self._feedback = np.zeros(len(O.FEEDBACK), dtype=np.float32)
        self.net.start(self.np_random)
        self._started = True
        return self._observe(), {"action_mask": self.net.mask()}

    def step(self, action):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a < self.max_degree:
            raise ValueError(f"action {action!r} is outside Discrete({self.max_degree})")
        msg, x = self.net.take_decision()
        info = self._reward_terms(msg, self.net.hop(msg, x, a))
        reward = info.pop("reward")
        self._steps += 1
        self.net.advance()
        truncated = self.net.sim.now >= self.episode_ms or (self.max_steps > 0 and self._steps >= self.max_steps)
        info["action_mask"] = self.net.mask()
        info.update(self.net.congestion())
        if truncated:
            info.update(self.net.episode_metrics())
        for key, value in info.items():
            if key != "action_mask":
                info[key] = float(value)
        return self._observe(), float(reward), False, bool(truncated), info

    @property
    def now_ms(self) -> float:
        """The simulated clock (ms since reset)."""
        return float(self.net.sim.now) if self.net.sim is not None else 0.0

    def episode_metrics(self) -> dict[str, float]:
        return self.net.episode_metrics()

    # ---- the reward ---------------------------------------------------------------------------------
    def _reward_terms(self, msg: Any, hop: Hop) -> dict[str, Any]:
        """The hop's info entries and reward terms (the `reward` component's formula); sets the feedback the
        next observation carries."""
        info: dict[str, Any] = {"hop_ms": hop.hop_ms, "cost": hop.cost, "delivered": float(hop.delivered),
                                "dropped": float(hop.dropped), "lost": float(hop.lost),
                                "expired": float(hop.expired), "refused": float(hop.refused),
                                "violation": float(hop.violation)}
        if hop.delivered:
            info["delivery_ms"] = hop.delivery_ms
        progress_ms = 0.0 if hop.refused else self.net.sp_rtt(hop.x, msg) - self.net.sp_rtt(hop.y, msg)
        terms = self.reward.terms({"refused": hop.refused, "lost": hop.lost, "expired": hop.expired,
                                   "delivered": hop.delivered, "violation": hop.violation, "cost": hop.cost,
                                   "hop_ms": hop.hop_ms, "delivery_ms": hop.delivery_ms, "qclass": msg.qclass,
                                   "progress_ms": progress_ms})
        terminal = hop.dropped or hop.delivered
        self._feedback[:] = (1.0, float(terminal), float(hop.delivered), float(terminal and not hop.delivered),
                             hop.hop_ms / O.TIME_NORM_MS, hop.delivery_ms / O.TIME_NORM_MS)
        info.update(terms)
        info["reward"] = sum(terms.values())
        return info

    # ---- observation --------------------------------------------------------------------------------
    def _static_blocks(self) -> None:
        """Per (relay, destination, regional?) candidate block of the features that never change in an
        episode (jitter, price, reputation, regionMatch, SP distance, SP next hop, is-destination, zero-load
        delay), so a
        step only fills in RTT, loss and queue."""
        n, dm, f = self.net.n, self.max_degree, self.layout.n_feat
        self._static = np.zeros((2, n, n, dm, f), dtype=np.float32)
        for regional in (0, 1):
            dist = self.net.dist_reg if regional else self.net.dist
            on_sp = self.net.on_sp_reg if regional else self.net.on_sp
            delay = self.net.delay_reg if regional else self.net.delay
            for x in range(n):
                k = int(self.net.deg[x])
                nb, li = self.net.nbrs[x, :k], self.net.nbr_link[x, :k]
                block = self._static[regional, x, :, :k]  # [dst, k, F]
                block[:, :, 2] = self.net.base_jitter[li] / O.JITTER_NORM_MS
                block[:, :, 3] = self.net.price[li] / O.PRICE_NORM
                block[:, :, 4] = self.net.reputation[nb]
                block[:, :, 5] = self.net.region[nb][None, :] == self.net.region[:, None]
                dn = dist[nb, :].T  # [dst, k]
                dn = np.where(np.isfinite(dn), dn, self.net.dist[nb, :].T)
                block[:, :, 7] = np.minimum(dn / O.RTT_NORM_MS, 1000.0)
                block[:, :, 8] = on_sp[x][:, nb]
                block[:, :, 9] = nb[None, :] == np.arange(n)[:, None]
                # zero-load delivery time via the candidate: x's service, the link, then the fastest path on
                dy = delay[nb, :].T  # [dst, k]
                dy = np.where(np.isfinite(dy), dy, self.net.delay[nb, :].T)
                via = self.net.nominal_svc_ms[x] + self.net.base_rtt[li] / 2.0
                block[:, :, 10] = np.minimum((via[None, :] + dy) / O.RTT_NORM_MS, 1000.0)
        self._template = np.zeros(self.layout.size, dtype=np.float32)
        self._template[:4] = self.layout.header()

    def _observe(self) -> np.ndarray:
        msg, x = self.net.decision
        L = self.layout
        o = self._template.copy()
        k = int(self.net.deg[x])
        nb = self.net.nbrs[x, :k]
        li = self.net.nbr_link[x, :k]
        up = self.net.link_up[li]
        d = msg.dst
        now = self.net.sim.now
        o[L.context : L.feedback] = (
            (x + 1) / O.ID_SCALE,
            (d + 1) / O.ID_SCALE,
            (msg.prev + 1) / O.ID_SCALE,
            O.encode_msg(msg.id),
            (self.net.region[x] + 1) / O.ID_SCALE,
            (self.net.region[d] + 1) / O.ID_SCALE,
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
        cand[:k, 0] = np.minimum(self.net.base_rtt[li] * self.net.rtt_mult[li] / O.RTT_NORM_MS, 1000.0)
        cand[:k, 1] = np.minimum(self.net.base_loss[li] + self.net.loss_add[li], 1.0)
        cand[:k, 6] = np.minimum(np.maximum(self.net.busy_until[nb] - now, 0.0) / O.QUEUE_NORM_MS, 1000.0)
        if not up.all():
            cand[:k][~up] = 0.0
        o[L.cand_ids : L.cand_ids + k] = (nb + 1) / O.ID_SCALE
        o[L.node_1hot + x] = 1.0
        o[L.dst_1hot + d] = 1.0
        o[L.mask : L.mask + k] = up
        return o
