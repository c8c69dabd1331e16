"""Ethereum's uncles (ommers): which stale blocks a new block references, and the uncle rate of a chain.

A block at height h may reference up to `max_uncles` blocks u that are not its ancestors, whose parent is
one of its `depth` most recent ancestors (so h - depth <= height(u) <= h - 1), that no block of its own chain
within that window has referenced yet, and that its miner knows. Measured Ethereum uncle rates count the
uncles referenced per main-chain block, which is what `uncle_rate` reports.

Kept as plain functions over the chain's parallel lists so a hand-built fork can test them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence


def pick_uncles(parent_id: int, parent: Sequence[int], height: Sequence[int], uncles: Sequence[Sequence[int]],
                by_height: Mapping[int, Sequence[int]], known: Callable[[int], bool], *, depth: int,
                max_uncles: int) -> list[int]:
    """Uncles for a new block whose parent is `parent_id` (lowest block ids first, as clients take the
    oldest candidates). by_height[h] lists the ids of every block at height h."""
    if max_uncles <= 0:
        return []
    h = height[parent_id] + 1
    ancestors: list[int] = []
    x = parent_id
    while x >= 0 and len(ancestors) < depth + 1:
        ancestors.append(x)
        x = parent[x]
    anc = set(ancestors)
    window = set(ancestors[:depth])  # an uncle's parent must be one of these
    taken = {u for a in ancestors for u in uncles[a]}
    out: list[int] = []
    for hh in range(max(1, h - depth), h):
        for u in by_height.get(hh, ()):
            if u in anc or u in taken or parent[u] not in window or not known(u):
                continue
            out.append(u)
            if len(out) == max_uncles:
                return out
    return out


def uncle_rate(canon: Sequence[int], uncles: Sequence[Sequence[int]], first: int = 1,
               last: int | None = None) -> float:
    """Uncles referenced per main-chain block over canon[first:last]."""
    main = canon[first:last]
    return sum(len(uncles[c]) for c in main) / len(main) if main else 0.0
