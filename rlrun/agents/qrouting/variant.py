"""What the four Q-routing variants share: the record of a hop in flight, the cold-start prior, and the
interface the router drives them through (score the candidates, learn when a message moves on or ends,
age and persist the tables)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlrun.envs.relay.obs import F_DELAY, F_REGION, F_REP, RTT_NORM_MS, SEED_FEATURES, Decision, Workload


@dataclass
class Pending:
    """A hop whose message has not yet reached its next decision (which supplies s')."""

    node: int  # relay that decided
    dst: int
    hop: int  # chosen neighbour (the relay where the message's next decision happens)
    head: int
    reward: float
    hop_ms: float
    prior: float  # cold-start value of the (state, hop) entry
    key: Any = None  # tabular: table key of s; linear/bandit: phi(s, hop)
    trail: list[tuple[np.ndarray, float]] = field(default_factory=list)  # bandit: (phi, r) along the path


@dataclass
class ColdStart:
    """Cold-start value of unseen (state, hop) entries.

    reputation (the seed): a preference in [0, 1] from the hop's regionMatch and reputation. distance:
    additionally, times `scale`, the zero-load delivery time via the hop (the env's `delay` feature: this
    relay's service time, the link, then service and link times along the fastest path on), so an untrained
    router starts out as shortest-path routing instead of exploring blindly, and counts relays as well as
    links."""

    kind: str  # reputation | distance
    scale: float
    reward_units: float  # the preference's weight in reward units (agent.cold_start)
    ms: float  # the preference's weight in milliseconds (agent.cold_start_ms, delivery-time variants)

    def preference_and_delay_ms(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        pref = 0.5 * (feats[:, F_REGION] + feats[:, F_REP])
        delay_ms = self.scale * feats[:, F_DELAY] * RTT_NORM_MS if self.kind == "distance" else 0.0
        return pref, delay_ms


def pooled(feats: np.ndarray) -> np.ndarray:
    """The seed's mean/min pooling of the per-hop features over the candidates."""
    seed_feats = feats[:, :SEED_FEATURES]
    return np.concatenate([seed_feats.mean(axis=0), seed_feats.min(axis=0)])


def phi(feats: np.ndarray, workload: Workload) -> np.ndarray:
    """phi(s, hop) per candidate: the hop's features, the workload, the seed's mean/min pooling, a bias."""
    k = feats.shape[0]
    return np.concatenate(
        [feats, np.tile(workload.vector(), (k, 1)), np.tile(pooled(feats), (k, 1)), np.ones((k, 1))], axis=1
    )


def phi_dim(n_features: int) -> int:
    return n_features + 5 + 2 * SEED_FEATURES + 1


class Variant(abc.ABC):
    """A way to value next hops. Scores are "higher is better"."""

    name = ""

    def __init__(self, heads: int, alpha: float, gamma: float, cold: ColdStart) -> None:
        self.heads, self.alpha, self.gamma, self.cold = heads, alpha, gamma, cold
        self.episode = 0

    def end_episode(self, decay: float) -> None:
        if decay > 0:
            self.age(decay)
        self.episode += 1

    def head_of(self, workload: Workload) -> int:
        return workload.qclass_index if self.heads > 1 else 0

    def prior(self, feats: np.ndarray) -> np.ndarray:
        pref, delay_ms = self.cold.preference_and_delay_ms(feats)
        return self.cold.reward_units * pref - delay_ms / 1000.0

    @abc.abstractmethod
    def scores(self, node: int, dst: int, cands: np.ndarray, feats: np.ndarray, workload: Workload, head: int,
               explore: bool) -> np.ndarray:
        """The candidates' values at relay `node` for destination `dst`."""

    def open(self, hop: Pending, dec: Decision, j: int, previous: Pending | None) -> None:  # noqa: B027
        """Fill in what the variant keeps about the hop just taken (candidate j of `dec`)."""

    @abc.abstractmethod
    def moved_on(self, hop: Pending, nxt: Decision, cands: np.ndarray, feats: np.ndarray) -> list[float]:
        """The hop's message reached its next decision `nxt` (allowed hops `cands`): learn; the |TD errors|."""

    @abc.abstractmethod
    def ended(self, hop: Pending, delivered: bool) -> list[float]:
        """The hop's message left the network right after it (delivered or dropped)."""

    def refused(self, previous: Pending | None, reward: float) -> None:  # noqa: B027 (optional hook)
        """The message was refused at a relay (it ends without another hop)."""

    def age(self, decay: float) -> None:  # noqa: B027 (optional hook)
        """Entries not updated this episode move toward their cold-start prior by the fraction `decay`."""

    @abc.abstractmethod
    def tables(self, node_region: np.ndarray) -> dict[str, Any]:
        """{"regions": {region: tensors}} and/or {"weights": {name: tensor}} (plain tensors)."""

    def load_region(self, table: dict[str, Any]) -> None:  # noqa: B027 (variants with per-region tables)
        """Load one region's entry of `tables()["regions"]`; variants that keep none have none to load."""

    def load_weights(self, weights: dict[str, Any]) -> None:  # noqa: B027 (variants with global weights)
        """Load `tables()["weights"]`; variants that keep none have none to load."""


class TDVariant(Variant):
    """A variant that learns each hop by temporal difference toward r + gamma max Q(s', .)."""

    def moved_on(self, hop: Pending, nxt: Decision, cands: np.ndarray, feats: np.ndarray) -> list[float]:
        """The hop's message reached its next decision `nxt` (allowed hops `cands`): learn; the |TD errors|."""
        if len(cands) == 0:
            return [self.learn(hop, hop.reward)]
        q_next = self.scores(nxt.node, nxt.dst, cands, feats, nxt.workload, self.head_of(nxt.workload), False)
        return [self.learn(hop, hop.reward + self.gamma * float(q_next.max()))]

    def ended(self, hop: Pending, delivered: bool) -> list[float]:
        """The hop's message left the network right after it (delivered or dropped)."""
        return [self.learn(hop, hop.reward)]

    @abc.abstractmethod
    def learn(self, hop: Pending, target: float) -> float:
        """Move the hop's value toward `target`; the |TD error|."""
