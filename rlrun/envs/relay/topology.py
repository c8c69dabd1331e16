"""Overlay topologies for the relay env: networkx graphs with per-link and per-relay attributes.

Every builder returns an undirected `nx.Graph` with nodes 0..N-1 and
    node attrs: region (int), reputation (0..1), service_mbps (relay forwarding rate, MB/s), and optionally
                service_ms (a fixed per-message service time that replaces overhead + size / rate)
    edge attrs: rtt_ms, jitter_ms, loss (probability), price_per_mb
The graph is connected and so is every region's induced subgraph, so a message that must not leave its
region (qClass `regional`) always has a compliant path; the builders check this rather than hope for it.
Link attributes are the *base* values; the env drifts and degrades copies of them during an episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np

from rlrun.errors import ConfigError

TOPOLOGIES = ("grid", "geometric", "backbone", "edges", "boyan_littman")


def _decorate(g: nx.Graph, rng: np.random.Generator, service_mbps: float) -> nx.Graph:
    """Fill in the attributes a builder left out, drawn from plausible overlay ranges."""
    for n in g.nodes:
        d = g.nodes[n]
        d.setdefault("region", 0)
        d.setdefault("reputation", float(rng.uniform(0.7, 1.0)))
        d.setdefault("service_mbps", float(service_mbps))
    for u, v in g.edges:
        d = g.edges[u, v]
        d.setdefault("rtt_ms", float(rng.uniform(8.0, 16.0)))
        cross = g.nodes[u]["region"] != g.nodes[v]["region"]
        d.setdefault("jitter_ms", float(0.1 * d["rtt_ms"] + rng.uniform(0.0, 2.0)))
        d.setdefault("loss", float(rng.uniform(0.0, 0.004)))
        d.setdefault("price_per_mb", float(rng.uniform(2.0, 5.0) if cross else rng.uniform(0.5, 2.0)))
    return g


def check_topology(g: nx.Graph) -> None:
    """Raise ConfigError unless the graph is usable: nodes 0..N-1, connected, regions connected."""
    n = g.number_of_nodes()
    if n < 2:
        raise ConfigError(f"env topology needs at least 2 relays, got {n}")
    if sorted(g.nodes) != list(range(n)):
        raise ConfigError("env.edges must name relays 0..N-1 with no gaps")
    if not nx.is_connected(g):
        raise ConfigError("env topology is not connected: some relays cannot reach each other")
    regions: dict[int, list[int]] = {}
    for node, r in g.nodes(data="region"):
        regions.setdefault(int(r), []).append(node)
    for r, members in regions.items():
        if not nx.is_connected(g.subgraph(members)):
            raise ConfigError(f"region {r} of the topology is not connected within itself")
    for u, v, d in g.edges(data=True):
        if d["rtt_ms"] <= 0 or not 0.0 <= d["loss"] < 1.0 or d["price_per_mb"] < 0 or d["jitter_ms"] < 0:
            raise ConfigError(f"link {u}-{v} has invalid attributes {dict(d)}")


def _remove_some(g: nx.Graph, rng: np.random.Generator, count: int, keep: set[tuple[int, int]]) -> None:
    """Remove up to `count` random links while the graph and every region stay connected."""
    edges = [e for e in g.edges if e not in keep and (e[1], e[0]) not in keep]
    order = rng.permutation(len(edges))
    removed = 0
    for i in order:
        if removed >= count:
            break
        u, v = edges[i]
        attrs = dict(g.edges[u, v])
        g.remove_edge(u, v)
        region = g.nodes[u]["region"]
        same = g.nodes[v]["region"] == region
        ok = nx.is_connected(g) and (
            not same or nx.is_connected(g.subgraph([n for n, r in g.nodes(data="region") if r == region]))
        )
        if ok:
            removed += 1
        else:
            g.add_edge(u, v, **attrs)


def irregular_grid(rng: np.random.Generator, rows: int = 6, cols: int = 6, service_mbps: float = 20.0) -> nx.Graph:
    """Boyan & Littman's test bed in spirit: two halves of a grid joined by two bridges of unequal RTT.

    Shortest paths by RTT funnel most cross-half traffic over the short bridge, so under load its relays
    saturate while the long bridge idles: the case Q-routing is known to fix. Regions are the quadrants.
    """
    if rows < 4 or cols < 4:
        raise ConfigError(f"grid topology needs at least 4x4 relays, got {rows}x{cols}")
    g = nx.Graph()
    half_c, half_r = cols // 2, rows // 2
    for r in range(rows):
        for c in range(cols):
            g.add_node(r * cols + c, region=(0 if r < half_r else 2) + (0 if c < half_c else 1))
    for r in range(rows):
        for c in range(cols):
            n = r * cols + c
            if r + 1 < rows:
                g.add_edge(n, n + cols, rtt_ms=float(rng.uniform(8.0, 12.0)))
            if c + 1 < cols and c + 1 != half_c:
                g.add_edge(n, n + 1, rtt_ms=float(rng.uniform(8.0, 12.0)))
    short_row, long_row = max(half_r - 1, 0), rows - 1
    short = (short_row * cols + half_c - 1, short_row * cols + half_c)
    long_ = (long_row * cols + half_c - 1, long_row * cols + half_c)
    g.add_edge(*short, rtt_ms=6.0)
    g.add_edge(*long_, rtt_ms=25.0)
    _remove_some(g, rng, count=max(1, rows * cols // 12), keep={short, long_})
    return _decorate(g, rng, service_mbps)


def geometric(rng: np.random.Generator, n: int = 30, regions: int = 3, service_mbps: float = 20.0) -> nx.Graph:
    """Random geometric graph in the unit square; RTT grows with distance; regions grown from seeds."""
    if n < 4:
        raise ConfigError(f"env.num_nodes must be >= 4 for the geometric topology, got {n}")
    radius = float(np.sqrt(2.2 * np.log(n) / (np.pi * n)))
    for _ in range(200):
        pos = {i: tuple(rng.uniform(0.0, 1.0, size=2)) for i in range(n)}
        g = nx.random_geometric_graph(n, radius, pos=pos)
        if nx.is_connected(g):
            break
        radius *= 1.05
    else:  # pragma: no cover - the radius grows until the graph connects
        raise ConfigError("could not draw a connected geometric topology")
    for u, v in g.edges:
        dist = float(np.hypot(pos[u][0] - pos[v][0], pos[u][1] - pos[v][1]))
        g.edges[u, v]["rtt_ms"] = 4.0 + 60.0 * dist
    _assign_regions_by_bfs(g, rng, regions)
    for node in g.nodes:
        del g.nodes[node]["pos"]
    return _decorate(g, rng, service_mbps)


def _assign_regions_by_bfs(g: nx.Graph, rng: np.random.Generator, regions: int) -> None:
    """Multi-source BFS from `regions` random seeds: each node joins its BFS parent's region, so every
    region is connected (it is a subtree of the BFS forest)."""
    regions = max(1, min(int(regions), g.number_of_nodes()))
    seeds = [int(s) for s in rng.choice(g.number_of_nodes(), size=regions, replace=False)]
    label = {s: i for i, s in enumerate(seeds)}
    frontier = list(seeds)
    while frontier:
        nxt = []
        for u in frontier:
            for v in sorted(g.neighbors(u)):
                if v not in label:
                    label[v] = label[u]
                    nxt.append(v)
        frontier = nxt
    for node, r in label.items():
        g.nodes[node]["region"] = r


def backbone(rng: np.random.Generator, regions: int = 3, per_region: int = 6, service_mbps: float = 20.0) -> nx.Graph:
    """Multi-region overlay: a ring with chords inside each region, two gateways per region, and long-haul
    backbone links (high RTT, high price) between the gateways of every pair of regions."""
    if regions < 2 or per_region < 3:
        raise ConfigError(f"backbone topology needs >= 2 regions of >= 3 relays, got {regions}x{per_region}")
    g = nx.Graph()
    for r in range(regions):
        base = r * per_region
        for i in range(per_region):
            g.add_node(base + i, region=r)
        for i in range(per_region):
            g.add_edge(base + i, base + (i + 1) % per_region, rtt_ms=float(rng.uniform(5.0, 15.0)))
        for _ in range(max(1, per_region // 3)):
            u, v = (int(x) for x in rng.choice(per_region, size=2, replace=False))
            if not g.has_edge(base + u, base + v):
                g.add_edge(base + u, base + v, rtt_ms=float(rng.uniform(8.0, 20.0)))
    gateways = {r: (r * per_region, r * per_region + per_region // 2) for r in range(regions)}
    for a in range(regions):
        for b in range(a + 1, regions):
            for k in range(2):
                u, v = gateways[a][k], gateways[b][k]
                g.add_edge(
                    u,
                    v,
                    rtt_ms=float(rng.uniform(40.0, 80.0)),
                    price_per_mb=float(rng.uniform(3.0, 6.0)),
                    loss=float(rng.uniform(0.0, 0.01)),
                )
    return _decorate(g, rng, service_mbps)


# Boyan & Littman (1994), figure 1: a 6x6 grid (relay r * 6 + c) with these ten links taken out. Rows 0-2
# form a ring around the upper half; rows 3-5 split into a left and a right block of 3x3 that meet only
# through row 2, so every message between the lower blocks crosses 14-15 on its shortest path, or takes the
# long way round the top ring: shortest path saturates on the middle while Q-routing can use the ring.
BOYAN_LITTMAN_REMOVED = (
    (1, 7), (2, 8), (3, 9), (4, 10),  # row 0 to row 1: only the corners go down
    (6, 7), (8, 9), (10, 11),  # row 1 is three pieces
    (20, 21), (26, 27), (32, 33),  # rows 3-5: the left and right blocks are apart
)


def boyan_littman() -> nx.Graph:
    """The classic Q-routing test bed (36 relays, 50 links) in its own time unit, the tick: every link takes
    one tick (RTT 2), every relay serves one message per tick whatever its size, nothing is lost, priced or
    distrusted, and there is a single region. With the env's ms clock, 1 tick = 1 ms, so env.load=1000 is
    one new message per tick."""
    g = nx.grid_2d_graph(6, 6)
    g = nx.relabel_nodes(g, {(r, c): r * 6 + c for r, c in g.nodes})
    g.remove_edges_from(BOYAN_LITTMAN_REMOVED)
    for node in g.nodes:
        g.nodes[node].update(region=0, reputation=1.0, service_mbps=1e6, service_ms=1.0)
    for u, v in g.edges:
        g.edges[u, v].update(rtt_ms=2.0, jitter_ms=0.0, loss=0.0, price_per_mb=0.0)
    return g


EDGE_COLUMNS = ("rtt_ms", "jitter_ms", "loss", "price_per_mb")


def from_edges(
    rng: np.random.Generator,
    edges: Sequence[Sequence[Any]],
    regions: Sequence[int] | None = None,
    service_mbps: float = 20.0,
    reputations: Sequence[float] | None = None,
) -> nx.Graph:
    """User-supplied overlay: rows [u, v, rtt_ms?, jitter_ms?, loss?, price_per_mb?]; omitted link attributes
    are drawn like the built-in topologies'. `regions` gives each relay's region (default: all in region 0),
    `reputations` each relay's reputation in [0, 1] (default: drawn like the built-in topologies')."""
    g = nx.Graph()
    for row in edges:
        if not 2 <= len(row) <= 2 + len(EDGE_COLUMNS):
            raise ConfigError(
                f"env.edges rows must be [u, v, {', '.join(EDGE_COLUMNS)}] (attributes optional), got {list(row)}"
            )
        u, v = int(row[0]), int(row[1])
        if u == v:
            raise ConfigError(f"env.edges has a self-loop at relay {u}")
        g.add_edge(u, v, **{k: float(x) for k, x in zip(EDGE_COLUMNS, row[2:], strict=False)})
    if regions:
        if len(regions) != g.number_of_nodes():
            raise ConfigError(
                f"env.regions has {len(regions)} entries but env.edges names {g.number_of_nodes()} relays"
            )
        for node in g.nodes:
            if node < len(regions):
                g.nodes[node]["region"] = int(regions[node])
    if reputations:
        if len(reputations) != g.number_of_nodes():
            raise ConfigError(
                f"env.reputations has {len(reputations)} entries but env.edges names {g.number_of_nodes()} relays"
            )
        for node in g.nodes:
            rep = float(reputations[node]) if node < len(reputations) else -1.0
            if not 0.0 <= rep <= 1.0:
                raise ConfigError(f"env.reputations[{node}] must be in [0, 1], got {rep}")
            g.nodes[node]["reputation"] = rep
    return _decorate(g, rng, service_mbps)


def build_topology(
    name: str,
    seed: int,
    *,
    num_nodes: int = 30,
    num_regions: int = 3,
    grid_size: Sequence[int] = (6, 6),
    edges: Sequence[Sequence[Any]] | None = None,
    regions: Sequence[int] | None = None,
    reputations: Sequence[float] | None = None,
    service_mbps: float = 20.0,
) -> nx.Graph:
    """Build and validate the named topology; the same seed gives the same graph."""
    rng = np.random.default_rng(seed)
    if name == "grid":
        if len(grid_size) != 2:
            raise ConfigError(f"env.grid_size must be [rows, cols], got {list(grid_size)}")
        g = irregular_grid(rng, int(grid_size[0]), int(grid_size[1]), service_mbps)
    elif name == "geometric":
        g = geometric(rng, int(num_nodes), int(num_regions), service_mbps)
    elif name == "backbone":
        per = max(3, int(num_nodes) // max(int(num_regions), 1))
        g = backbone(rng, int(num_regions), per, service_mbps)
    elif name == "edges":
        if not edges:
            raise ConfigError("env.topology=edges needs env.edges=[[u, v], ...] (optionally [u, v, rtt_ms])")
        g = from_edges(rng, edges, regions, service_mbps, reputations)
    elif name == "boyan_littman":
        g = boyan_littman()
    else:
        raise ConfigError(f"env.topology must be one of {', '.join(TOPOLOGIES)}, got {name!r}")
    if reputations and name != "edges":
        raise ConfigError("env.reputations applies to env.topology=edges only (the others draw their own)")
    check_topology(g)
    return g
