"""`variant=bandit`: the seed's third extension. LinUCB over phi(s, hop) predicting a message's return-to-go
(the seed's end-to-end reward from that hop on), with exponential forgetting (`bandit_forget`, discounted
LinUCB) so it tracks a network that changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlrun.agents.qrouting.variant import ColdStart, Pending, Variant, phi, phi_dim
from rlrun.envs.relay.obs import Decision, Workload


class LinUCB(Variant):
    name = "bandit"

    def __init__(self, heads: int, alpha: float, gamma: float, cold: ColdStart, n_features: int, ucb_c: float,
                 forget: float, reg: float) -> None:
        super().__init__(heads, alpha, gamma, cold)
        self.n_features, self.ucb_c, self.forget, self.reg = n_features, ucb_c, forget, reg
        self.dim = phi_dim(n_features)
        self.A = np.stack([np.eye(self.dim) * reg for _ in range(heads)])
        self.b = np.zeros((heads, self.dim))
        self._theta: np.ndarray | None = None
        self._A_inv: np.ndarray | None = None

    def _params(self, head: int) -> tuple[np.ndarray, np.ndarray]:
        if self._theta is None:
            self._A_inv = np.linalg.inv(self.A)
            self._theta = np.einsum("hij,hj->hi", self._A_inv, self.b)
        return self._theta[head], self._A_inv[head]

    def scores(self, node: int, dst: int, cands: np.ndarray, feats: np.ndarray, workload: Workload, head: int,
               explore: bool) -> np.ndarray:
        x = phi(feats, workload)
        theta, a_inv = self._params(head)
        mean = x @ theta
        if not explore:
            return mean
        width = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", x, a_inv, x), 0.0))
        return mean + self.ucb_c * width

    def open(self, hop: Pending, dec: Decision, j: int, previous: Pending | None) -> None:
        hop.key = phi(dec.feats[j : j + 1], dec.workload)[0]
        hop.trail = (previous.trail if previous is not None else []) + [(hop.key, hop.reward)]

    def moved_on(self, hop: Pending, nxt: Decision, cands: np.ndarray, feats: np.ndarray) -> list[float]:
        return []  # the trail is regressed when the message ends

    def ended(self, hop: Pending, delivered: bool) -> list[float]:
        self._close(hop.trail)
        return []

    def refused(self, previous: Pending | None, reward: float) -> None:
        self._close(previous.trail if previous is not None else [], extra=reward)

    def _close(self, trail: list[tuple[np.ndarray, float]], extra: float = 0.0) -> None:
        """A message ended: regress each hop's phi on its return-to-go (discounted LinUCB update)."""
        if not trail:
            return
        rewards = np.array([r for _, r in trail])
        togo = np.cumsum(rewards[::-1])[::-1] + extra
        eye = np.eye(self.dim)
        f = self.n_features
        for (x, _), g in zip(trail, togo, strict=True):
            h = int(np.argmax(x[f : f + 3])) if self.heads > 1 else 0
            self.A[h] = self.forget * self.A[h] + np.outer(x, x) + (1.0 - self.forget) * self.reg * eye
            self.b[h] = self.forget * self.b[h] + g * x
        self._theta = None

    def tables(self, node_region: np.ndarray) -> dict[str, Any]:
        return {"regions": {}, "weights": {"A": torch.from_numpy(self.A.copy()), "b": torch.from_numpy(self.b.copy())}}

    def load_weights(self, weights: dict[str, Any]) -> None:
        self.A, self.b = weights["A"].numpy().copy(), weights["b"].numpy().copy()
        self._theta = None
