"""The peer-to-peer network every chain simulator shares: regions, per-link latency, per-node bandwidth,
the random outbound topology, and message timing (latency + serialised upload).

Kept free of any consensus logic so that proof-of-work (`pow.py`) and a BFT proof-of-stake engine can both
run on it. The network itself is static once built (`Network`); the only mutable part, the upload queues
and byte counters, lives in `Transport` so one topology can serve many simulations.

Calibration (defaults in `tables.py`): SimBlock's 2019 six-region tables. A node's region is drawn from the
region shares; the latency of a link is drawn once, when the link is made, from a Pareto distribution whose
mean is the table entry for the two regions (SimBlock's heavy-tailed jitter: shape 5, scale = mean*(shape-1)/
shape); a node's upload/download bandwidth is its region's. Hot-path data are plain Python lists (indexing a
list is several times cheaper than indexing a numpy array from Python code).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from rlrun.envs.chain import tables
from rlrun.envs.chain.spec import check_keys, integer, number, number_list
from rlrun.errors import ConfigError

_NETWORK_KEYS = {
    "nodes", "outbound", "regions", "latency_ms", "download_mbps", "upload_mbps", "region_shares",
    "latency_pareto_shape", "validation_s_per_mb", "validation_base_s", "tx_relay_delay_s", "fixed_delay_s",
}


@dataclass
class NetworkSpec:
    """What `env.network` may hold. Latencies in ms (row = from), bandwidths in Mbit/s, shares sum to 1.

    fixed_delay_s: when set, every block/message reaches every other node exactly this many seconds after it
    is sent, with no topology, bandwidth or validation cost: the textbook model used to validate the stale
    rate against 1 - exp(-d/T).
    """

    nodes: int = 100
    outbound: int = 8
    regions: list[str] = field(default_factory=lambda: list(tables.REGIONS))
    latency_ms: list[list[float]] = field(default_factory=lambda: [list(r) for r in tables.LATENCY_MS])
    download_mbps: list[float] = field(default_factory=lambda: list(tables.DOWNLOAD_MBPS))
    upload_mbps: list[float] = field(default_factory=lambda: list(tables.UPLOAD_MBPS))
    region_shares: list[float] = field(default_factory=lambda: list(tables.REGION_SHARES))
    latency_pareto_shape: float = 5.0  # 0 = no jitter: every link gets its table mean
    validation_s_per_mb: float = 0.1  # block validation time before relaying, proportional to size
    validation_base_s: float = 0.002  # fixed per-block processing time (SimBlock: 2 ms)
    tx_relay_delay_s: float = 1.0  # per-hop transaction relay delay (Bitcoin trickles tx announcements)
    fixed_delay_s: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, prefix: str = "env.network") -> NetworkSpec:
        d = {k: v for k, v in check_keys(cfg, _NETWORK_KEYS, prefix).items() if v is not None}  # null = default
        spec = cls(**d)
        spec.validate(prefix)
        return spec

    def validate(self, prefix: str = "env.network") -> None:
        self.nodes = integer(self.nodes, f"{prefix}.nodes", low=1)
        self.outbound = integer(self.outbound, f"{prefix}.outbound", low=0)
        if self.outbound > self.nodes - 1:
            raise ConfigError(
                f"{prefix}.outbound={self.outbound} needs more peers than the network has "
                f"(nodes={self.nodes}, so at most {self.nodes - 1})"
            )
        if self.nodes > 1 and self.outbound < 1 and self.fixed_delay_s is None:
            raise ConfigError(f"{prefix}.outbound must be >= 1 when nodes > 1, got {self.outbound}")
        if isinstance(self.regions, str) or not hasattr(self.regions, "__len__") or len(self.regions) < 1:
            raise ConfigError(f"{prefix}.regions must be a non-empty list of region names")
        self.regions = [str(r) for r in self.regions]
        r = len(self.regions)
        lat = self.latency_ms
        if isinstance(lat, str) or not hasattr(lat, "__len__") or len(lat) != r:
            raise ConfigError(
                f"{prefix}.latency_ms must be a square {r}x{r} table (one row and column per region), "
                f"got {len(lat) if hasattr(lat, '__len__') else lat!r} rows"
            )
        rows = []
        for i, row in enumerate(lat):
            if isinstance(row, str) or not hasattr(row, "__len__") or len(row) != r:
                raise ConfigError(
                    f"{prefix}.latency_ms must be a square {r}x{r} table; row {i} has "
                    f"{len(row) if hasattr(row, '__len__') else 1} entries"
                )
            rows.append([number(v, f"{prefix}.latency_ms[{i}][{j}]", low=0.0) for j, v in enumerate(row)])
        self.latency_ms = rows
        self.download_mbps = number_list(self.download_mbps, f"{prefix}.download_mbps", length=r, low=0.0,
                                         low_open=True)
        self.upload_mbps = number_list(self.upload_mbps, f"{prefix}.upload_mbps", length=r, low=0.0,
                                       low_open=True)
        self.region_shares = number_list(self.region_shares, f"{prefix}.region_shares", length=r, low=0.0)
        total = sum(self.region_shares)
        if abs(total - 1.0) > 1e-3:
            raise ConfigError(f"{prefix}.region_shares must sum to 1, got {total:.4f}")
        self.latency_pareto_shape = number(self.latency_pareto_shape, f"{prefix}.latency_pareto_shape",
                                           low=0.0)
        if 0.0 < self.latency_pareto_shape <= 1.0:
            raise ConfigError(
                f"{prefix}.latency_pareto_shape must be 0 (no jitter) or > 1 (finite mean), "
                f"got {self.latency_pareto_shape:g}"
            )
        self.validation_s_per_mb = number(self.validation_s_per_mb, f"{prefix}.validation_s_per_mb", low=0.0)
        self.validation_base_s = number(self.validation_base_s, f"{prefix}.validation_base_s", low=0.0)
        self.tx_relay_delay_s = number(self.tx_relay_delay_s, f"{prefix}.tx_relay_delay_s", low=0.0)
        if self.fixed_delay_s is not None:
            self.fixed_delay_s = number(self.fixed_delay_s, f"{prefix}.fixed_delay_s", low=0.0)


class Network:
    """A built topology. Node ids are 0..n-1; `peers[i]` lists i's neighbours sorted by link latency."""

    def __init__(self, spec: NetworkSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.n = n = spec.nodes
        shares = np.asarray(spec.region_shares, dtype=float)
        self.region = rng.choice(len(shares), size=n, p=shares / shares.sum())
        # one float object per region, shared by its nodes: the simulator reads these per block transfer, and
        # six hot objects stay in cache where thousands of scattered ones would not
        up = [mbps * 1e6 for mbps in spec.upload_mbps]
        down = [mbps * 1e6 for mbps in spec.download_mbps]
        self.up_bps: list[float] = [up[r] for r in self.region]
        self.down_bps: list[float] = [down[r] for r in self.region]
        self.fixed_delay_s = spec.fixed_delay_s
        self.lat: list[dict[int, float]] = [{} for _ in range(n)]
        if spec.fixed_delay_s is None:
            self._connect(rng)
        self.peers: list[list[int]] = []
        self.peer_lat: list[list[float]] = []
        self._sort_peers()
        self._sec_per_byte_val = spec.validation_s_per_mb / 1e6
        self._val_base = spec.validation_base_s

    # ---- construction -------------------------------------------------------------------------------
    def _sort_peers(self) -> None:
        self.peers, self.peer_lat = [], []
        for i in range(self.n):
            order = sorted(self.lat[i].items(), key=lambda kv: (kv[1], kv[0]))
            self.peers.append([p for p, _ in order])
            self.peer_lat.append([d for _, d in order])
        self._links: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def links(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(peers, latencies, offsets): every node's `peers` and `peer_lat` concatenated in node order, node i's
        at [offsets[i], offsets[i + 1]), for building relay plans with a few numpy calls."""
        if self._links is None:
            deg = [len(row) for row in self.peers]
            offsets = np.zeros(self.n + 1, dtype=np.int64)
            np.cumsum(deg, out=offsets[1:])
            self._links = (np.fromiter(itertools.chain.from_iterable(self.peers), np.int64, int(offsets[-1])),
                           np.fromiter(itertools.chain.from_iterable(self.peer_lat), np.float64, int(offsets[-1])),
                           offsets)
        return self._links

    def connect_extra(self, nodes: list[int], k: int, rng: np.random.Generator) -> None:
        """Each of `nodes` opens k more connections to random nodes it is not linked to yet (well-connected
        mining pools). Mutates the topology: call it before any simulation uses this network."""
        for i in nodes:
            free = [int(j) for j in rng.permutation(self.n) if j != i and j not in self.lat[i]]
            for j in free[:k]:
                self._link(i, j, rng)
        self._sort_peers()

    def _draw_latency(self, i: int, j: int, rng: np.random.Generator) -> float:
        mean_ms = self.spec.latency_ms[self.region[i]][self.region[j]]
        shape = self.spec.latency_pareto_shape
        if shape <= 0.0:
            return mean_ms / 1000.0
        scale = mean_ms * (shape - 1.0) / shape
        return float(scale / rng.random() ** (1.0 / shape)) / 1000.0

    def _link(self, i: int, j: int, rng: np.random.Generator) -> None:
        d = self._draw_latency(i, j, rng)
        self.lat[i][j] = d
        self.lat[j][i] = d

    def _connect(self, rng: np.random.Generator) -> None:
        """Each node opens `outbound` connections to distinct random peers (links are bidirectional, so a
        node's degree is its outbound count plus whatever inbound it receives). Components left disconnected
        (possible only with very few outbound connections) are joined by one extra link each."""
        n, k = self.n, self.spec.outbound
        for i in range(n):
            opened = 0
            for j in rng.permutation(n):
                if opened >= k:
                    break
                j = int(j)
                if j == i or j in self.lat[i]:
                    continue
                self._link(i, j, rng)
                opened += 1
        comps = list(nx.connected_components(self.graph()))
        if len(comps) > 1:
            base = sorted(comps[0])
            for comp in comps[1:]:
                a = int(base[int(rng.integers(len(base)))])
                members = sorted(comp)
                b = int(members[int(rng.integers(len(members)))])
                self._link(a, b, rng)

    # ---- queries ------------------------------------------------------------------------------------
    def graph(self) -> nx.Graph:
        """The topology as a networkx graph with `latency` (s) edge attributes."""
        g = nx.Graph()
        g.add_nodes_from(range(self.n))
        for i, nbrs in enumerate(self.lat):
            for j, d in nbrs.items():
                if i < j:
                    g.add_edge(i, j, latency=d)
        return g

    def degree(self) -> np.ndarray:
        return np.array([len(p) for p in self.peers])

    def mean_link_latency(self) -> float:
        vals = [d for row in self.peer_lat for d in row]
        return float(np.mean(vals)) if vals else 0.0

    def validation_delay(self, nbytes: float) -> float:
        """Time a node spends validating a block of `nbytes` before it relays it."""
        return self._val_base + nbytes * self._sec_per_byte_val

    def shortest_delays(self, targets: list[int], per_hop_s: float = 0.0) -> np.ndarray:
        """[len(targets), n] array: delay of the fastest path from every node to each target, each hop
        costing its link latency plus `per_hop_s`. Used for small messages (transactions, votes) whose
        per-message simulation would cost far more than it teaches. Links are symmetric, so one Dijkstra
        from each target suffices."""
        out = np.zeros((len(targets), self.n))
        if self.fixed_delay_s is not None:
            out[:] = self.fixed_delay_s
            for row, t in enumerate(targets):
                out[row, t] = 0.0
            return out
        rows, cols, weights = [], [], []
        for i, nbrs in enumerate(self.lat):
            for j, d in nbrs.items():
                rows.append(i)
                cols.append(j)
                weights.append(d + per_hop_s)
        graph = csr_matrix((weights, (rows, cols)), shape=(self.n, self.n))
        # C Dijkstra; it sums each path from the source outwards, as networkx did, so the delays are the same
        out[:] = dijkstra(graph, directed=True, indices=list(targets))
        return out


class Transport:
    """Mutable message timing on a Network: a node uploads one message at a time (FIFO), so the arrival time
    of a transfer is max(now, sender free) + bytes/min(sender upload, receiver download) + link latency.
    Receivers' download links are not queued (the tables' download rates are 2-4x the upload rates)."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.busy_until: list[float] = [0.0] * net.n
        self.bytes_up = 0.0  # total bytes uploaded (block payloads), for bandwidth utilisation
        self.total_up_bps = float(sum(net.up_bps))

    def send(self, now: float, src: int, dst: int, nbytes: float) -> float:
        """Queue `nbytes` on src's upload link towards dst; return the delay (from now) until dst has it."""
        net = self.net
        start = self.busy_until[src]
        if start < now:
            start = now
        done = start + nbytes * 8.0 / min(net.up_bps[src], net.down_bps[dst])
        self.busy_until[src] = done
        self.bytes_up += nbytes
        return done - now + net.lat[src][dst]

    def send_beside(self, src: int, dst: int, nbytes: float) -> float:
        """Delay of a small follow-up transfer (compact blocks' missing transactions) that does not wait in
        src's upload queue: bytes / min(upload, download) + latency. Queueing it behind a reservation made
        for a request still in flight would leave the link idle meanwhile and delay everything after it."""
        net = self.net
        self.bytes_up += nbytes
        return nbytes * 8.0 / min(net.up_bps[src], net.down_bps[dst]) + net.lat[src][dst]
