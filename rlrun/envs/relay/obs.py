"""The relay env's flat observation: one routing decision, padded to `max_degree` candidate slots.

Layout (float32, in this order; N relays, D = max_degree slots, F = len(CANDIDATE_FEATURES)):

    header    4      constants [FORMAT_MARKER, N/1000, D/1000, F/1000], also stored as observation_space.high
                     of these entries, so an agent reads the layout from the space before it sees an observation
    context   6      CONTEXT ids, each encoded as (id + 1) / ID_SCALE (0 = none); the message id as
                     (id mod MSG_ID_MOD + 1) / MSG_ID_MOD, exact in float32, so 2^24 - 1 messages in flight
                     stay distinct (the env stops an episode rather than let two share an id)
    feedback  6      FEEDBACK: the outcome of the *previous* action (zeros after reset) - lets an online
                     agent learn per message from the (obs, action, reward, next_obs) the trainer hands it
    workload  7      WORKLOAD: the seed's qClass one-hot, log size, TTL bucket, plus TTL left and hop count
    cand      D*F    CANDIDATE_FEATURES for each slot (row-major, slot-major), zeros in empty/down slots
    cand_ids  D      neighbour relay id per slot, encoded like the context ids (0 = empty slot)
    node_1hot N      one-hot of the deciding relay   } so generic agents (DQN) can tell where the message
    dst_1hot  N      one-hot of the destination      } is and where it goes
    mask      D      1 = live candidate. LAST D entries: the action mask, same as info["action_mask"]

Slot i of relay x always holds x's i-th neighbour (by id), so an action index means the same link every
time a relay decides; a failed link keeps its slot but is masked. Choosing a masked slot refuses the
message (it is dropped at this relay), so `max_degree` exceeds every relay's degree: a policy can always
refuse instead of breaking a boundary it must respect.

`RelayObs` decodes it for agents (Q-routing, the routing baselines): the layout is read from the observation
space's header, so an agent needs the space, never the env object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from rlrun.errors import IncompatibleSpaceError

FORMAT_MARKER = 0.625  # the layout version is told by F (the candidate features), checked by agents
ID_SCALE = 4096.0
MSG_ID_MOD = 1 << 24  # message ids are encoded modulo this; the env refuses to let in-flight ids collide

CONTEXT = ("node", "dst", "prev", "msg", "region", "dst_region")
FEEDBACK = ("has_prev", "terminal", "delivered", "dropped", "hop_s", "delivery_s")
WORKLOAD = ("best-effort", "regional", "backbone", "log_size", "ttl_bucket", "ttl_left", "hops")
CANDIDATE_FEATURES = (
    "rtt",  # current link RTT / RTT_NORM_MS (the seed's norm(rttMs))
    "loss",  # current link loss probability (norm(loss))
    "jitter",  # current link jitter / JITTER_NORM_MS
    "price",  # link price per MB / PRICE_NORM
    "reputation",  # candidate relay's reputation (0..1)
    "region_match",  # 1 if the candidate is in the destination's region (the seed's regionMatch)
    "queue",  # candidate relay's backlog / QUEUE_NORM_MS (what a piggybacked load report would carry)
    "dist",  # static shortest-path RTT from the candidate to the destination / RTT_NORM_MS
    "on_sp",  # 1 if the candidate is the static shortest-path next hop (networkx, by RTT)
    "is_dst",  # 1 if the candidate is the destination
    "delay",  # zero-load delivery time via the candidate (service times + link delays) / RTT_NORM_MS
)
QCLASSES = ("best-effort", "regional", "backbone")

RTT_NORM_MS = 100.0
JITTER_NORM_MS = 20.0
PRICE_NORM = 5.0
QUEUE_NORM_MS = 100.0
TIME_NORM_MS = 1000.0
TTL_BUCKETS_MS = (250.0, 500.0, 1000.0, 2000.0, 4000.0)  # bucket k: ttl < edge k; last bucket: above
MAX_SIZE_BYTES = 1 << 20
_LOG_MAX_SIZE = math.log1p(MAX_SIZE_BYTES)
SEED_FEATURES = 6  # rtt, loss, jitter, price, reputation, regionMatch: the seed's per-hop features
F_RTT, F_REP, F_REGION, F_DIST, F_ON_SP, F_IS_DST, F_DELAY = (
    CANDIDATE_FEATURES.index(name) for name in ("rtt", "reputation", "region_match", "dist", "on_sp", "is_dst", "delay")
)


def encode_id(k: int) -> float:
    return (k + 1) / ID_SCALE


def encode_msg(msg_id: int) -> float:
    """A message id as a float32-exact value in (0, 1]: integers below 2^24 survive float32 unchanged."""
    return (msg_id % MSG_ID_MOD + 1) / MSG_ID_MOD


def decode_msg(x: float) -> int:
    return int(round(float(x) * MSG_ID_MOD)) - 1


def decode_ids(x: np.ndarray) -> np.ndarray:
    """Inverse of encode_id for arrays; -1 marks an empty entry."""
    return np.rint(np.asarray(x, dtype=np.float64) * ID_SCALE).astype(np.int64) - 1


def ttl_bucket(ttl_ms: float) -> float:
    """The seed's ttlMsBucket, scaled to [0, 1]."""
    k = int(np.searchsorted(TTL_BUCKETS_MS, ttl_ms, side="right"))
    return k / len(TTL_BUCKETS_MS)


class ObsLayout:
    """Offsets of every block for N relays and D slots (plain ints: they are read on every step)."""

    def __init__(self, n_nodes: int, max_degree: int) -> None:
        self.n_nodes = int(n_nodes)
        self.max_degree = int(max_degree)
        self.n_feat = len(CANDIDATE_FEATURES)
        self.context = 4
        self.feedback = self.context + len(CONTEXT)
        self.workload = self.feedback + len(FEEDBACK)
        self.cand = self.workload + len(WORKLOAD)
        self.cand_ids = self.cand + self.max_degree * self.n_feat
        self.node_1hot = self.cand_ids + self.max_degree
        self.dst_1hot = self.node_1hot + self.n_nodes
        self.mask = self.dst_1hot + self.n_nodes
        self.size = self.mask + self.max_degree

    def header(self) -> np.ndarray:
        return np.array(
            [FORMAT_MARKER, self.n_nodes / 1000.0, self.max_degree / 1000.0, self.n_feat / 1000.0],
            dtype=np.float32,
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Box bounds: the header's upper bounds are the header itself; the rest have generous finite caps."""
        low = np.zeros(self.size, dtype=np.float32)
        high = np.ones(self.size, dtype=np.float32)
        high[:4] = self.header()
        high[self.feedback + FEEDBACK.index("hop_s")] = 1000.0
        high[self.feedback + FEEDBACK.index("delivery_s")] = 1000.0
        cand_high = np.ones(self.n_feat, dtype=np.float32)
        for name in ("rtt", "jitter", "price", "queue", "dist", "delay"):
            cand_high[CANDIDATE_FEATURES.index(name)] = 1000.0
        high[self.cand : self.cand_ids] = np.tile(cand_high, self.max_degree)
        return low, high


@dataclass
class Workload:
    """The seed's workload: size, qClass, TTL (as its bucket), and the destination's region (region_hint)."""

    qclass: str
    size_bytes: float
    ttl_bucket: float
    region_hint: int

    @property
    def qclass_index(self) -> int:
        return QCLASSES.index(self.qclass)

    def vector(self) -> np.ndarray:
        """[qClass one-hot(3), log1p(size) scaled, ttl bucket] as in the seed's feature list."""
        v = np.zeros(5)
        v[self.qclass_index] = 1.0
        v[3] = np.log1p(self.size_bytes) / np.log1p(MAX_SIZE_BYTES)
        v[4] = self.ttl_bucket
        return v


@dataclass
class Decision:
    """One decoded observation."""

    node: int
    dst: int
    prev: int  # relay the message came from (-1 at its source)
    msg: int
    region: int
    dst_region: int
    first_of_episode: bool
    terminal: bool  # feedback: the previous action's message left the network
    delivered: bool
    hop_ms: float  # feedback: time of the previous action's hop
    workload: Workload
    cand_ids: np.ndarray  # [k] relay ids of the live candidates, in slot order
    slots: np.ndarray  # [k] their slot indices
    feats: np.ndarray  # [k, F] their features
    free_slot: int  # an empty/down slot (the refusal action), -1 if none


class RelayObs:
    """Decodes the relay env's observation; the layout comes from the observation space's header."""

    def __init__(self, observation_space: spaces.Box) -> None:
        high = np.asarray(observation_space.high, dtype=np.float64).reshape(-1)
        size = high.shape[0]
        if size < 4 or abs(high[0] - FORMAT_MARKER) > 1e-6:
            raise IncompatibleSpaceError(
                f"this agent routes on env=relay's observation (header marker {FORMAT_MARKER}); "
                f"got an observation of size {size} without it"
            )
        self.n, self.d, self.f = (int(round(h * 1000)) for h in high[1:4])
        if self.f != len(CANDIDATE_FEATURES):
            raise IncompatibleSpaceError(
                f"relay observation has {self.f} candidate features, expected "
                f"{len(CANDIDATE_FEATURES)}: agent and env versions differ"
            )
        self.o_ctx = 4
        self.o_fb = self.o_ctx + len(CONTEXT)
        self.o_wl = self.o_fb + len(FEEDBACK)
        self.o_cand = self.o_wl + len(WORKLOAD)
        self.o_ids = self.o_cand + self.d * self.f
        self.o_mask = self.o_ids + self.d + 2 * self.n
        if self.o_mask + self.d != size:
            raise IncompatibleSpaceError(
                f"relay observation size {size} does not match its header (N={self.n}, D={self.d}, F={self.f})"
            )

    def feedback(self, obs: np.ndarray) -> tuple[bool, bool, float]:
        """(terminal, delivered, hop_ms) of the action that led to `obs`."""
        fb = obs[self.o_fb : self.o_fb + len(FEEDBACK)]
        return bool(fb[1] > 0.5), bool(fb[2] > 0.5), float(fb[4]) * 1000.0

    def decode(self, obs: np.ndarray) -> Decision:
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        v = obs[self.o_ctx : self.o_cand].tolist()  # scalars in Python: cheaper than many tiny numpy calls
        ctx = [round(x * ID_SCALE) - 1 for x in v[:len(CONTEXT)]]
        ctx[3] = round(v[3] * MSG_ID_MOD) - 1
        fb = v[len(CONTEXT) : len(CONTEXT) + len(FEEDBACK)]
        wl = v[len(CONTEXT) + len(FEEDBACK) :]
        mask = obs[self.o_mask : self.o_mask + self.d].tolist()
        slots = [i for i, m in enumerate(mask) if m > 0.5]
        free = next((i for i, m in enumerate(mask) if m <= 0.5), -1)
        id_codes = obs[self.o_ids : self.o_ids + self.d].tolist()
        ids = [round(id_codes[i] * ID_SCALE) - 1 for i in slots]
        feats = obs[self.o_cand : self.o_ids].reshape(self.d, self.f)[slots].astype(np.float64)
        qclass = QCLASSES[0 if wl[0] > 0.5 else 1 if wl[1] > 0.5 else 2]
        return Decision(
            node=ctx[0],
            dst=ctx[1],
            prev=ctx[2],
            msg=ctx[3],
            region=ctx[4],
            dst_region=ctx[5],
            first_of_episode=fb[0] < 0.5,
            terminal=fb[1] > 0.5,
            delivered=fb[2] > 0.5,
            hop_ms=fb[4] * 1000.0,
            workload=Workload(qclass, math.expm1(wl[3] * _LOG_MAX_SIZE), wl[4], ctx[5]),
            cand_ids=np.array(ids, dtype=np.int64),
            slots=np.array(slots, dtype=np.int64),
            feats=feats,
            free_slot=free,
        )
