"""Sum tree over preallocated numpy arrays: the sampling structure behind proportional prioritized replay.

Layout: a complete binary tree in one float64 array, node i has children 2i and 2i+1, leaf j lives at
`base + j` with `base` the capacity rounded up to a power of two (padding leaves hold 0 and are never drawn).
Every internal node is recomputed as left + right (never incremented by deltas), so no rounding drift
accumulates however many updates a run makes.

Why the top of the tree is a prefix sum: in numpy each tree level costs a handful of small-array calls, so a
20-level descent for 1M slots is dominated by per-call overhead, not arithmetic. The top levels are therefore
replaced by one `cumsum` + `searchsorted` over the `2**top_level` nodes of level `top_level` (1,024 nodes by
default: a constant cost shared by the whole batch), and only the remaining `depth - top_level` levels are
descended one level per step, vectorised over the batch. Per sample the cost stays O(log N); per batch it is
O(2**top_level + B log N). Updates only propagate up to `top_level`, the levels above it are never stored.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Priorities of `capacity` slots with O(log N) vectorised updates and prefix-sum search."""

    def __init__(self, capacity: int, top_level: int = 10) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.depth = max(0, (self.capacity - 1).bit_length())  # leaves live on level `depth`
        self.base = 1 << self.depth
        self.top = min(self.depth, int(top_level))  # level searched by prefix sum
        self.tree = np.zeros(2 * self.base, dtype=np.float64)

    # ---- reading ------------------------------------------------------------------------------------
    @property
    def leaves(self) -> np.ndarray:
        """View of the `capacity` leaf priorities (read-only use; write through `set`)."""
        return self.tree[self.base : self.base + self.capacity]

    def _top_nodes(self) -> np.ndarray:
        lo = 1 << self.top
        return self.tree[lo : 2 * lo]

    def total(self) -> float:
        return float(self._top_nodes().sum())

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self.tree[self.base + np.asarray(indices, dtype=np.int64)]

    def _prefix(self) -> np.ndarray:
        """[0, c_1, ..., c_n]: running sums over the top level's nodes (c_n is the total)."""
        top = self._top_nodes()
        cum = np.empty(len(top) + 1)
        cum[0] = 0.0
        np.cumsum(top, out=cum[1:])
        if not cum[-1] > 0:
            raise ValueError("cannot search a sum tree whose priorities are all zero")
        return cum

    def find(self, values: np.ndarray) -> np.ndarray:
        """Slot i for each v in [0, total): the i with prefix(i) <= v < prefix(i) + p_i, never a zero slot.

        Values at or beyond the total (only possible through rounding) map to the last slot with mass.
        """
        return self._search(np.asarray(values, dtype=np.float64).reshape(-1), self._prefix())[0]

    def _search(self, values: np.ndarray, cum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`find` given the top-level prefix sums; also returns the found slots' priorities."""
        total = cum[-1]
        # side="right": a node whose prefix does not grow (zero mass) can never be the answer
        last = int(np.searchsorted(cum, total, side="left")) - 1  # last node with mass
        j = np.searchsorted(cum, values, side="right") - 1
        np.minimum(j, last, out=j)
        v = values - cum[j]
        np.maximum(v, 0.0, out=v)
        idx = j + (1 << self.top)
        tree = self.tree
        for _ in range(self.depth - self.top):
            idx *= 2
            left = tree[idx]
            go_right = v >= left
            v -= left * go_right
            idx += go_right
        priorities = tree[idx]
        leaves = idx - self.base
        bad = priorities <= 0.0
        if bad.any():  # rounding pushed a value past its subtree's mass: redo those with a guarded descent
            leaves[bad] = self._find_guarded(j[bad], values[bad])
            priorities = tree[leaves + self.base]
        return leaves, priorities

    def _find_guarded(self, top_index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Slow path (rare): descend from the chosen top node, never entering a subtree without mass."""
        v = values - self._prefix()[top_index]  # same prefix as in `_search`
        out = np.empty(len(top_index), dtype=np.int64)
        tree = self.tree
        for n, (j, x) in enumerate(zip(top_index.tolist(), v.tolist(), strict=True)):
            node = j + (1 << self.top)
            x = max(x, 0.0)
            for _ in range(self.depth - self.top):
                left, right = tree[2 * node], tree[2 * node + 1]
                if (x >= left and right > 0.0) or left <= 0.0:
                    x -= left
                    node = 2 * node + 1
                else:
                    node = 2 * node
            out[n] = node - self.base
        return out

    def sample(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Stratified proportional sampling: one uniform draw in each of `batch_size` equal mass segments.

        Each draw's marginal distribution is exactly P(i) = p_i / sum p; stratification only lowers the
        variance of the batch composition (Schaul et al. 2016, appendix B.2.1).
        """
        return self.sample_with_priorities(batch_size, rng)[0]

    def sample_with_priorities(
        self, batch_size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """`sample`, plus the drawn slots' priorities and the total (for importance weights)."""
        cum = self._prefix()
        total = float(cum[-1])
        values = (np.arange(batch_size, dtype=np.float64) + rng.random(batch_size)) * (total / batch_size)
        leaves, priorities = self._search(values, cum)
        return leaves, priorities, total

    # ---- writing ------------------------------------------------------------------------------------
    def set(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaf priorities (duplicates: the last wins) and recompute their ancestors down to `top`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1) + self.base
        p = np.asarray(priorities, dtype=np.float64).reshape(-1)
        if p.shape != idx.shape:
            raise ValueError(f"{len(idx)} indices but {len(p)} priorities")
        if idx.size and (idx.min() < self.base or idx.max() >= self.base + self.capacity):
            raise IndexError("sum tree index out of range")
        tree = self.tree
        tree[idx] = p
        for _ in range(self.depth - self.top):
            idx //= 2  # duplicated parents just recompute the same sum
            left = 2 * idx
            tree[idx] = tree[left] + tree[left + 1]

    def set_one(self, index: int, priority: float) -> None:
        """Scalar fast path for the one-slot-per-env-step write."""
        tree = self.tree
        i = int(index) + self.base
        tree[i] = float(priority)
        for _ in range(self.depth - self.top):
            i //= 2
            tree[i] = tree[2 * i] + tree[2 * i + 1]

    def rebuild(self) -> None:
        """Recompute every stored internal node from the leaves (after a bulk write to `tree[base:]`)."""
        tree = self.tree
        for level in range(self.depth - 1, self.top - 1, -1):
            lo = 1 << level
            tree[lo : 2 * lo] = tree[2 * lo : 4 * lo : 2] + tree[2 * lo + 1 : 4 * lo : 2]

    def set_all(self, priorities: np.ndarray) -> None:
        """Replace the first len(priorities) leaves, zero the rest, rebuild (checkpoint restore, bulk)."""
        p = np.asarray(priorities, dtype=np.float64).reshape(-1)
        if len(p) > self.capacity:
            raise ValueError(f"{len(p)} priorities for a tree of capacity {self.capacity}")
        self.tree[:] = 0.0
        self.tree[self.base : self.base + len(p)] = p
        self.rebuild()
