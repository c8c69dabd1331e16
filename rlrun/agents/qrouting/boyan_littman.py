"""`variant=boyan_littman`: Boyan & Littman's Q-routing (1994). Q_x(d, y) = estimated delivery time (ms) from
x to d via neighbour y, updated from y's own estimate: Q_x(d,y) += a (hop_ms + min_z Q_y(d,z) - Q_x(d,y));
the router chooses the minimum (scores are the negated estimates)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlrun.agents.qrouting.variant import ColdStart, Pending, TDVariant
from rlrun.envs.relay.obs import Decision, Workload


class BoyanLittmanQ(TDVariant):
    name = "boyan_littman"

    def __init__(self, heads: int, alpha: float, gamma: float, cold: ColdStart, n_relays: int,
                 drop_penalty_ms: float) -> None:
        super().__init__(heads, alpha, gamma, cold)
        n = n_relays
        self.T = np.full((heads, n, n, n), np.nan)  # T[head, x, d, y] in ms; NaN = never updated (prior)
        self.T_prior = np.zeros((heads, n, n, n))
        self.T_episode = np.zeros((heads, n, n, n), dtype=np.int64)
        self.drop_penalty_ms = drop_penalty_ms

    def prior(self, feats: np.ndarray) -> np.ndarray:
        pref, delay_ms = self.cold.preference_and_delay_ms(feats)
        return self.cold.ms * (1.0 - pref) + delay_ms

    def scores(self, node: int, dst: int, cands: np.ndarray, feats: np.ndarray, workload: Workload, head: int,
               explore: bool) -> np.ndarray:
        t = self.T[head, node, dst, cands]
        return -np.where(np.isnan(t), self.prior(feats), t)

    def moved_on(self, hop: Pending, nxt: Decision, cands: np.ndarray, feats: np.ndarray) -> list[float]:
        if len(cands) == 0:
            rest = self.drop_penalty_ms
        else:  # y's own estimate: min_z Q_y(d, z)
            rest = -float(self.scores(nxt.node, nxt.dst, cands, feats, nxt.workload, hop.head, False).max())
        return [self.learn(hop, hop.hop_ms + rest)]

    def ended(self, hop: Pending, delivered: bool) -> list[float]:
        return [self.learn(hop, hop.hop_ms + (0.0 if delivered else self.drop_penalty_ms))]

    def learn(self, hop: Pending, target: float) -> float:
        idx = (hop.head, hop.node, hop.dst, hop.hop)
        old = self.T[idx]
        if np.isnan(old):
            old = self.T_prior[idx] = hop.prior
        self.T[idx] = old + self.alpha * (target - old)
        self.T_episode[idx] = self.episode
        return abs(target - old)

    def age(self, decay: float) -> None:
        stale = ~np.isnan(self.T) & (self.T_episode < self.episode)
        self.T[stale] += decay * (self.T_prior[stale] - self.T[stale])

    def tables(self, node_region: np.ndarray) -> dict[str, Any]:
        regions = {}
        for region in sorted(set(node_region.tolist()) - {-1}):
            nodes = np.flatnonzero(node_region == region)
            regions[region] = {
                "nodes": torch.from_numpy(nodes),
                "T": torch.from_numpy(self.T[:, nodes].copy()),
                "prior": torch.from_numpy(self.T_prior[:, nodes].copy()),
                "episode": torch.from_numpy(self.T_episode[:, nodes].copy()),
            }
        return {"regions": regions}

    def load_region(self, table: dict[str, Any]) -> None:
        nodes = table["nodes"].numpy()
        self.T[:, nodes] = table["T"].numpy()
        self.T_prior[:, nodes] = table["prior"].numpy()
        self.T_episode[:, nodes] = table["episode"].numpy()
