"""Static routing tables of the relay env: shortest paths (with a tie rule) and zero-load delivery times.

Two different distances are kept because they answer different questions:
- `dist` (by link RTT, what `agent=shortest_path` follows and the `dist`/`on_sp` candidate features show):
  the classic static shortest path of the Q-routing literature, which ignores relay service time.
- `delay` (the zero-load one-way delivery time: per hop the sending relay's nominal service time plus half
  the link RTT): what a message actually needs on an idle network, and so the right cold-start prior for a
  router whose estimates are delivery times. On a network whose relays forward in a few ms, ignoring the
  service time makes a prior that favours long paths of short links.

Ties: on a regular topology many next hops are equally short. `ties=first` keeps networkx's choice (one
path per pair, the same every run), `random` draws one of the equal-cost next hops per (relay, destination)
with the topology seed, and `all` marks every equal-cost next hop so the shortest-path router can spread
messages over them (ECMP).
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np

from rlrun.errors import ConfigError

SP_TIES = ("first", "random", "all")
_TOL = 1e-9


def shortest_paths(g: nx.Graph, nodes: Sequence[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(dist [n, n] by rtt_ms, networkx's first next hop [n, n] or -1) over the subgraph of `nodes`."""
    dist = np.full((n, n), np.inf)
    first = np.full((n, n), -1, dtype=np.int64)
    sub = g.subgraph(nodes)
    for src, (lengths, paths) in nx.all_pairs_dijkstra(sub, weight="rtt_ms"):
        for dst, length in lengths.items():
            dist[src, dst] = length
            if dst != src:
                first[src, dst] = paths[dst][1]
    return dist, first


def next_hop_sets(
    g: nx.Graph,
    dist: np.ndarray,
    first: np.ndarray,
    ties: str,
    rng: np.random.Generator,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """on_sp[x, d, y] = True if y is a marked shortest-path next hop from x towards d (see module doc).

    With `region` (the table for `regional` messages), a pair inside one region only considers next hops in
    that region, the ones `dist` was measured over."""
    if ties not in SP_TIES:
        raise ConfigError(f"env.sp_ties must be one of {', '.join(SP_TIES)}, got {ties!r}")
    n = dist.shape[0]
    on = np.zeros((n, n, n), dtype=bool)
    for x in range(n):
        nb = np.array(sorted(g.neighbors(x)), dtype=np.int64)
        if len(nb) == 0:
            continue
        w = np.array([g.edges[x, y]["rtt_ms"] for y in nb])
        for d in range(n):
            if d == x or first[x, d] < 0:
                continue
            if ties == "first":
                on[x, d, first[x, d]] = True
                continue
            via = w + dist[nb, d]
            ok = np.abs(via - dist[x, d]) <= _TOL * max(1.0, dist[x, d])
            if region is not None and region[x] == region[d]:
                ok &= region[nb] == region[d]
            equal = nb[ok]
            if ties == "all":
                on[x, d, equal] = True
            else:
                on[x, d, int(rng.choice(equal))] = True
    return on


def zero_load_delay(g: nx.Graph, service_ms: np.ndarray, nodes: Sequence[int], n: int) -> np.ndarray:
    """delay[y, d]: least one-way time from y to d on an idle network, summing over the forwarding relays
    u of a path (every relay but d) service_ms[u] + rtt(u, v) / 2.

    The cost of a hop depends on its sender, so the graph is directed in effect; Dijkstra on the symmetric
    weight (svc[u] + svc[v]) / 2 + rtt / 2 gives, for any path from y to d, the true cost minus
    (svc[y] - svc[d]) / 2, the same shift for every path, so its shortest paths are the true ones."""
    delay = np.full((n, n), np.inf)
    sub = g.subgraph(nodes)

    def weight(u: int, v: int, attrs: dict) -> float:
        return 0.5 * (service_ms[u] + service_ms[v] + attrs["rtt_ms"])

    for src, lengths in nx.all_pairs_dijkstra_path_length(sub, weight=weight):
        for dst, length in lengths.items():
            delay[src, dst] = 0.0 if dst == src else length + 0.5 * (service_ms[src] - service_ms[dst])
    return delay
