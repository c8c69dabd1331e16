"""Block relay policies: which of its peers a node announces a new block to.

A `RelayPlan` is precomputed once per policy change (per env step at most), so the per-announcement work in
the simulator is a plain loop over a node's arrays of peers and latencies.

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

import itertools
from array import array
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from rlrun.envs.chain.network import Network

STRATEGIES: tuple[str, ...] = ("flood", "nearest", "random", "region")


class RelayPlan:
    """Per node, the peers it announces new blocks to (`ids`) and their link latencies in s (`lats`);
    `fanout` > 0 means a random subset of that size is drawn from them for each announcement.

    Per-node rows are flat arrays because the simulator's announce loop iterates them, and contiguous machine
    ints are ~2x cheaper to iterate than tuple objects scattered over memory (on a 6,000-node network most of
    an announcement's time is that loop). `pick[i]` maps a per-node sequence (a block's state bytearray) to
    the tuple of node i's targets' entries, read in C: most targets already have a block when a node
    announces it, so the simulator run as Python looks only at the zeros of this tuple (built on first use:
    the compiled simulator reads the rows as C arrays and never asks for it). A plan holds no per-link Python
    objects: an env builds one for nearly every step while its agent explores, and each long-lived object
    would add to the cyclic garbage collector's passes over the whole process."""

    def __init__(self, ids: list[array], lats: list[array], fanout: int = 0) -> None:
        self.ids = ids
        self.lats = lats
        self.fanout = fanout
        self._pick: list[Callable[[Sequence[int]], tuple]] | None = None
        self._targets: list[list[tuple[int, float]]] | None = None
        self._mean_latency: float | None = None

    @classmethod
    def from_targets(cls, targets: list[list[tuple[int, float]]], fanout: int = 0) -> RelayPlan:
        """A plan from per-node lists of (peer, link latency) pairs."""
        return cls([array("l", [p for p, _ in row]) for row in targets],
                   [array("d", [d for _, d in row]) for row in targets], fanout)

    @property
    def pick(self) -> list[Callable[[Sequence[int]], tuple]]:
        if self._pick is None:
            self._pick = [_tuple_getter(row) for row in self.ids]
        return self._pick

    @property
    def targets(self) -> list[list[tuple[int, float]]]:
        """Per node, the (peer, link latency) pairs of `ids` and `lats` (built on first use: the random
        strategy samples from them)."""
        if self._targets is None:
            self._targets = [list(zip(i, d, strict=True)) for i, d in zip(self.ids, self.lats, strict=True)]
        return self._targets

    def mean_latency(self) -> float:
        """Mean link latency (s) from a node to the peers it relays to: the seed's latency_to_peers_mean."""
        if self._mean_latency is None:
            vals = [d for row in self.lats for d in row]
            self._mean_latency = float(np.mean(vals)) if vals else 0.0
        return self._mean_latency

    def mean_fanout(self) -> float:
        """Mean number of peers a node announces a block to."""
        if not self.ids:
            return 0.0
        sizes = [min(len(row), self.fanout) if self.fanout else len(row) for row in self.ids]
        return float(np.mean(sizes))


def _tuple_getter(ids: Sequence[int]) -> Callable[[Sequence[int]], tuple]:
    """itemgetter that always returns a tuple (itemgetter of one index returns the bare item)."""
    if len(ids) > 1:
        return itemgetter(*ids)
    if len(ids) == 1:
        i = ids[0]
        return lambda seq: (seq[i],)
    return lambda seq: ()


def slot_of_rank(rank: Any, degree: Any, slots: int) -> Any:
    """The slot of the peer of latency rank `rank` among `degree` (ints or integer arrays)."""
    return rank * slots // degree


def slot_plan(net: Network, active: Sequence[bool]) -> RelayPlan:
    """Relay to the peers in the active latency slots (see module docstring)."""
    peers, lats, offsets = net.links()
    deg = np.diff(offsets)
    rank = np.arange(len(peers)) - np.repeat(offsets[:-1], deg)
    keep = np.asarray(active, dtype=bool)[slot_of_rank(rank, np.repeat(deg, deg), len(active))]
    bounds = np.concatenate(([0], np.cumsum(keep)))[offsets].tolist()
    # one array each, sliced per node: 4x faster than building each row from a list (an env builds a plan per step)
    kept_ids = array("l", peers[keep].astype("l").tobytes())
    kept_lats = array("d", lats[keep].astype("d").tobytes())
    return RelayPlan([kept_ids[a:b] for a, b in itertools.pairwise(bounds)],
                     [kept_lats[a:b] for a, b in itertools.pairwise(bounds)])


def strategy_plan(net: Network, name: str, *, nearest_k: int = 4, fanout: int = 4,
                  inter_region_k: int = 2) -> RelayPlan:
    """One of the named strategies in STRATEGIES (see module docstring)."""
    pairs = [list(zip(p, lat, strict=True)) for p, lat in zip(net.peers, net.peer_lat, strict=True)]
    if name == "flood":
        return RelayPlan.from_targets(pairs)
    if name == "nearest":
        return RelayPlan.from_targets([row[:nearest_k] for row in pairs])
    if name == "random":
        return RelayPlan.from_targets(pairs, fanout=fanout)
    if name == "region":
        region = net.region
        out = []
        for i, row in enumerate(pairs):
            same = [(p, d) for p, d in row if region[p] == region[i]]
            other = [(p, d) for p, d in row if region[p] != region[i]][:inter_region_k]
            out.append(same + other)
        return RelayPlan.from_targets(out)
    raise ValueError(f"unknown gossip strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
