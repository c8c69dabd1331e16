"""`variant=tabular`: the seed's Q(s, hop) <- (1-a) Q + a [r + g max_h' Q(s', h')] on the env reward.

The state is (relay, destination[, qClass head]) and, with `state_encoding=pooled`, also the seed's mean/min
pooling of the per-hop features, quantised into `pool_bins` levels (the seed's pooled vector alone omits the
destination, so no table keyed on it alone can route)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlrun.agents.qrouting.variant import ColdStart, Pending, TDVariant, pooled
from rlrun.envs.relay.obs import Decision, Workload


class TabularQ(TDVariant):
    name = "tabular"

    def __init__(self, heads: int, alpha: float, gamma: float, cold: ColdStart, state_encoding: str,
                 pool_bins: int) -> None:
        super().__init__(heads, alpha, gamma, cold)
        self.state_encoding, self.pool_bins = state_encoding, pool_bins
        self.q: dict[tuple, dict[int, list[float]]] = {}  # key -> {hop: [q, prior, last episode updated]}

    def key(self, node: int, dst: int, feats: np.ndarray, head: int) -> tuple:
        key: tuple = (node, dst, head)
        if self.state_encoding == "pooled":
            bins = np.clip(np.floor(pooled(feats) * self.pool_bins), 0, 4 * self.pool_bins).astype(np.int64)
            key = key + tuple(bins.tolist())
        return key

    def scores(self, node: int, dst: int, cands: np.ndarray, feats: np.ndarray, workload: Workload, head: int,
               explore: bool) -> np.ndarray:
        row = self.q.get(self.key(node, dst, feats, head))
        if not row:
            return self.prior(feats)
        learned = [row.get(h) for h in cands.tolist()]
        if None not in learned:  # every hop has an entry: no prior needed
            return np.array([e[0] for e in learned])
        prior = self.prior(feats)
        return np.array([p if e is None else e[0] for e, p in zip(learned, prior.tolist(), strict=True)])

    def open(self, hop: Pending, dec: Decision, j: int, previous: Pending | None) -> None:
        hop.key = self.key(dec.node, dec.dst, dec.feats, hop.head)

    def learn(self, hop: Pending, target: float) -> float:
        row = self.q.setdefault(hop.key, {})
        entry = row.get(hop.hop)
        if entry is None:
            entry = row[hop.hop] = [hop.prior, hop.prior, self.episode]
        old = entry[0]
        entry[0] = (1.0 - self.alpha) * old + self.alpha * target
        entry[2] = self.episode
        return abs(target - old)

    def age(self, decay: float) -> None:
        for row in self.q.values():
            for entry in row.values():
                if entry[2] < self.episode:
                    entry[0] += decay * (entry[1] - entry[0])

    def tables(self, node_region: np.ndarray) -> dict[str, Any]:
        rows: dict[int, list[tuple]] = {}
        for key, row in self.q.items():
            region = int(node_region[key[0]])
            for hop, (q, prior, ep) in row.items():
                rows.setdefault(region, []).append((key, hop, q, prior, ep))
        return {"regions": {region: {
            "keys": torch.tensor([k for k, *_ in items], dtype=torch.int64),
            "hops": torch.tensor([h for _, h, *_ in items], dtype=torch.int64),
            "q": torch.tensor([q for *_, q, _, _ in items], dtype=torch.float64),
            "prior": torch.tensor([p for *_, p, _ in items], dtype=torch.float64),
            "episode": torch.tensor([e for *_, e in items], dtype=torch.int64),
        } for region, items in rows.items()}}

    def load_region(self, table: dict[str, Any]) -> None:
        for key, hop, q, prior, ep in zip(table["keys"].tolist(), table["hops"].tolist(), table["q"].tolist(),
                                          table["prior"].tolist(), table["episode"].tolist(), strict=True):
            self.q.setdefault(tuple(key), {})[int(hop)] = [q, prior, int(ep)]
