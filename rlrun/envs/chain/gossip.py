"""Block relay policies: which of its peers a node announces a new block to.

A `RelayPlan` is precomputed once per policy change (per env step at most), so the per-announcement work in
the simulator is a plain loop over (peer, latency) pairs.

Two ways to choose a plan:

* `slot_plan` (the continuous action's neighbour mask): a node's d peers are sorted by link latency and split
  into K latency bands ("slots"): the peer of rank r (0 = nearest) is in slot floor(r*K/d). A node relays to
  the peers of every active slot. With d = K each slot is exactly one peer; with d > K a slot is a band of
  peers; with d < K some slots of that node are empty. Slot 0 is always the nearest band, slot K-1 the
  farthest, for every node, so one mask means the same thing on any topology.
* `strategy_plan` (the hybrid action's discrete choice), one of the named strategies:
    flood    relay to every peer (Bitcoin's default behaviour)
    nearest  relay to the `nearest_k` lowest-latency peers
    random   relay to `fanout` peers drawn at random for each announcement
    region   relay to every peer in the node's own region plus the `inter_region_k` nearest peers elsewhere
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np

from rlrun.envs.chain.network import Network

STRATEGIES: tuple[str, ...] = ("flood", "nearest", "random", "region")


@dataclass
class RelayPlan:
    """Per node, the (peer, link latency in s) pairs it announces new blocks to; `fanout` > 0 means a random
    subset of that size is drawn from them for each announcement."""

    targets: list[list[tuple[int, float]]]
    fanout: int = 0
    #: the same targets as flat per-node arrays of peer ids and latencies: the simulator's announce loop reads
    #: these, because iterating contiguous machine ints is ~2x cheaper than chasing tuple objects scattered
    #: over memory (on a 6,000-node network most of an announcement's time is that loop)
    ids: list[array] = field(init=False, repr=False, compare=False)
    lats: list[array] = field(init=False, repr=False, compare=False)
    #: per node, a function mapping a per-node sequence (a block's state bytearray) to the tuple of its
    #: targets' entries, read in C: most targets already have a block when a node announces it, so the
    #: simulator looks only at the zeros of this tuple
    pick: list[Callable[[Sequence[int]], tuple]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.ids = [array("l", [p for p, _ in row]) for row in self.targets]
        self.lats = [array("d", [d for _, d in row]) for row in self.targets]
        self.pick = [_tuple_getter(row) for row in self.ids]

    def mean_latency(self) -> float:
        """Mean link latency (s) from a node to the peers it relays to: the seed's latency_to_peers_mean."""
        vals = [d for row in self.targets for _, d in row]
        return float(np.mean(vals)) if vals else 0.0

    def mean_fanout(self) -> float:
        """Mean number of peers a node announces a block to."""
        if not self.targets:
            return 0.0
        sizes = [min(len(row), self.fanout) if self.fanout else len(row) for row in self.targets]
        return float(np.mean(sizes))


def _tuple_getter(ids: Sequence[int]) -> Callable[[Sequence[int]], tuple]:
    """itemgetter that always returns a tuple (itemgetter of one index returns the bare item)."""
    if len(ids) > 1:
        return itemgetter(*ids)
    if len(ids) == 1:
        i = ids[0]
        return lambda seq: (seq[i],)
    return lambda seq: ()


def slot_of_rank(rank: int, degree: int, slots: int) -> int:
    return rank * slots // degree


def slot_plan(net: Network, active: Sequence[bool]) -> RelayPlan:
    """Relay to the peers in the active latency slots (see module docstring)."""
    k = len(active)
    targets = []
    for peers, lats in zip(net.peers, net.peer_lat, strict=True):
        d = len(peers)
        targets.append([(p, lat) for r, (p, lat) in enumerate(zip(peers, lats, strict=True))
                        if active[r * k // d]])
    return RelayPlan(targets)


def strategy_plan(net: Network, name: str, *, nearest_k: int = 4, fanout: int = 4,
                  inter_region_k: int = 2) -> RelayPlan:
    """One of the named strategies in STRATEGIES (see module docstring)."""
    pairs = [list(zip(p, lat, strict=True)) for p, lat in zip(net.peers, net.peer_lat, strict=True)]
    if name == "flood":
        return RelayPlan(pairs)
    if name == "nearest":
        return RelayPlan([row[:nearest_k] for row in pairs])
    if name == "random":
        return RelayPlan(pairs, fanout=fanout)
    if name == "region":
        region = net.region
        out = []
        for i, row in enumerate(pairs):
            same = [(p, d) for p, d in row if region[p] == region[i]]
            other = [(p, d) for p, d in row if region[p] != region[i]][:inter_region_k]
            out.append(same + other)
        return RelayPlan(out)
    raise ValueError(f"unknown gossip strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
