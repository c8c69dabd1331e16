"""`variant=linear`: the seed's first extension. Q(s, hop) = w . phi(s, hop) over per-hop features, workload
and pooled features, semi-gradient TD(0) with a normalised step (NLMS) so alpha is scale-free."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlrun.agents.qrouting.variant import ColdStart, Pending, TDVariant, phi, phi_dim
from rlrun.envs.relay.obs import Decision, Workload


class LinearQ(TDVariant):
    name = "linear"

    def __init__(self, heads: int, alpha: float, gamma: float, cold: ColdStart, n_features: int) -> None:
        super().__init__(heads, alpha, gamma, cold)
        self.w = np.zeros((heads, phi_dim(n_features)))

    def scores(self, node: int, dst: int, cands: np.ndarray, feats: np.ndarray, workload: Workload, head: int,
               explore: bool) -> np.ndarray:
        return phi(feats, workload) @ self.w[head]

    def open(self, hop: Pending, dec: Decision, j: int, previous: Pending | None) -> None:
        hop.key = phi(dec.feats[j : j + 1], dec.workload)[0]

    def learn(self, hop: Pending, target: float) -> float:
        x, w = hop.key, self.w[hop.head]
        td = target - float(x @ w)
        w += self.alpha * td * x / float(x @ x)  # NLMS: alpha is the fraction of the error corrected
        return abs(td)

    def tables(self, node_region: np.ndarray) -> dict[str, Any]:
        return {"regions": {}, "weights": {"w": torch.from_numpy(self.w.copy())}}

    def load_weights(self, weights: dict[str, Any]) -> None:
        self.w = weights["w"].numpy().copy()
