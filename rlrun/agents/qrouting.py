"""`agent=qrouting`: seed 003's QRouter, plus Boyan-Littman Q-routing and a LinUCB router, for env=relay.

The seed runs one QRouter per relay; here one object holds every relay's table, indexed by relay, so the
generic trainer can drive it. Per decision it reads the relay env's observation (layout decoded from the
space's header, see `RelayObs`): the deciding relay, destination, message id, the outcome of the previous
action, the seed's per-hop features and workload, and the candidates' relay ids.

Variants (`agent.variant`):
    tabular        the seed's Q(s, hop) <- (1-a) Q + a [r + g max_h' Q(s', h')] on the env reward. The state is
                   (relay, destination[, qClass head]) and, with `state_encoding=pooled`, also the seed's
                   mean/min pooling of the per-hop features, quantised into `pool_bins` levels (the seed's
                   pooled vector alone omits the destination, so no table keyed on it alone can route).
    linear         the seed's first extension: Q(s, hop) = w . phi(s, hop) over per-hop features, workload and
                   pooled features, semi-gradient TD(0) with a normalised step (NLMS) so alpha is scale-free.
    boyan_littman  Q_x(d, y) = estimated delivery time (ms) from x to d via neighbour y, updated from y's own
                   estimate: Q_x(d,y) += a (hop_ms + min_z Q_y(d,z) - Q_x(d,y)); chooses the minimum.
    bandit         the seed's third extension: LinUCB over phi(s, hop) predicting a message's return-to-go
                   (the seed's end-to-end reward from that hop on), with exponential forgetting
                   (`bandit_forget`, discounted LinUCB) so it tracks a network that changes.
`per_class_heads` gives each qClass its own table/weights (the seed's per-SLA heads).

Learning per message: the trainer hands `update()` one (obs, action, reward, next_obs) at a time, but
consecutive steps are different messages. The observation carries the message id, and `next_obs` the outcome
of the action (delivered / dropped, hop time), so the agent keeps one pending transition per message in
flight and completes it when that message's next decision shows up: s' is then exactly the message's next
relay, as the seed's update(prev_state, hop, reward, next_state, next_candidates) wants. No trainer hook and
no env import is needed. Requires replay.n_step=1 (the default); the trainer does not use replay here.

Safety: `allow`/`deny` relay lists and the region boundary of `regional` messages (`respect_regions`) are
filters applied before exploration and exploitation alike, so they are never violated; when no candidate
passes, the agent refuses the message (chooses an empty slot, which the env treats as a refusal).

Persistence: tables are grouped per region of the deciding relay (`q_tables()`), saved in checkpoints via
`extra_state`, loadable into a new run with `init_from=<checkpoint .pt | run dir | save_tables() file>`
(optionally only `init_regions`), and entries not updated during an episode decay toward their cold-start
prior by `table_decay` at each episode end (an EMA that forgets stale routes). Cold start: an unseen
(state, hop) starts at a prior from the hop's regionMatch and reputation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.errors import CheckpointError, ConfigError, IncompatibleSpaceError

# ---- the relay observation protocol (mirrors rlrun/envs/relay/obs.py; tests check they agree) -----------
FORMAT_MARKER = 0.625
ID_SCALE = 4096.0
MSG_ID_MOD = float(1 << 24)  # the message id is (id mod 2^24 + 1) / 2^24
N_CONTEXT, N_FEEDBACK, N_WORKLOAD = 6, 6, 7
CANDIDATE_FEATURES = (
    "rtt",
    "loss",
    "jitter",
    "price",
    "reputation",
    "region_match",
    "queue",
    "dist",
    "on_sp",
    "is_dst",
    "delay",
)
QCLASSES = ("best-effort", "regional", "backbone")
SEED_FEATURES = 6  # rtt, loss, jitter, price, reputation, regionMatch: the seed's per-hop features
F_RTT, F_REGION, F_REP, F_DIST, F_ON_SP, F_IS_DST, F_DELAY = 0, 5, 4, 7, 8, 9, 10
RTT_NORM_MS = 100.0
MAX_SIZE_BYTES = 1 << 20
_LOG_MAX_SIZE = math.log1p(MAX_SIZE_BYTES)


@dataclass
class Workload:
    """The seed's workload: size, qClass, TTL (as its bucket), and the destination's region (region_hint)."""

    qclass: str
    size_bytes: float
    ttl_bucket: float
    region_hint: int

    @property
    def qclass_index(self) -> int:
        return QCLASSES.index(self.qclass)

    def vector(self) -> np.ndarray:
        """[qClass one-hot(3), log1p(size) scaled, ttl bucket] as in the seed's feature list."""
        v = np.zeros(5)
        v[self.qclass_index] = 1.0
        v[3] = np.log1p(self.size_bytes) / np.log1p(MAX_SIZE_BYTES)
        v[4] = self.ttl_bucket
        return v


@dataclass
class Decision:
    """One decoded observation."""

    node: int
    dst: int
    prev: int  # relay the message came from (-1 at its source)
    msg: int
    region: int
    dst_region: int
    first_of_episode: bool
    terminal: bool  # feedback: the previous action's message left the network
    delivered: bool
    hop_ms: float  # feedback: time of the previous action's hop
    workload: Workload
    cand_ids: np.ndarray  # [k] relay ids of the live candidates, in slot order
    slots: np.ndarray  # [k] their slot indices
    feats: np.ndarray  # [k, F] their features
    free_slot: int  # an empty/down slot (the refusal action), -1 if none


class RelayObs:
    """Decodes the relay env's observation; the layout comes from the observation space's header."""

    def __init__(self, observation_space: spaces.Box) -> None:
        high = np.asarray(observation_space.high, dtype=np.float64).reshape(-1)
        size = high.shape[0]
        if size < 4 or abs(high[0] - FORMAT_MARKER) > 1e-6:
            raise IncompatibleSpaceError(
                f"this agent routes on env=relay's observation (header marker {FORMAT_MARKER}); "
                f"got an observation of size {size} without it"
            )
        self.n, self.d, self.f = (int(round(h * 1000)) for h in high[1:4])
        if self.f != len(CANDIDATE_FEATURES):
            raise IncompatibleSpaceError(
                f"relay observation has {self.f} candidate features, expected "
                f"{len(CANDIDATE_FEATURES)}: agent and env versions differ"
            )
        self.o_ctx = 4
        self.o_fb = self.o_ctx + N_CONTEXT
        self.o_wl = self.o_fb + N_FEEDBACK
        self.o_cand = self.o_wl + N_WORKLOAD
        self.o_ids = self.o_cand + self.d * self.f
        self.o_mask = self.o_ids + self.d + 2 * self.n
        if self.o_mask + self.d != size:
            raise IncompatibleSpaceError(
                f"relay observation size {size} does not match its header (N={self.n}, D={self.d}, F={self.f})"
            )

    def ids(self, x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float64) * ID_SCALE).astype(np.int64) - 1

    def feedback(self, obs: np.ndarray) -> tuple[bool, bool, float]:
        """(terminal, delivered, hop_ms) of the action that led to `obs`."""
        fb = obs[self.o_fb : self.o_fb + N_FEEDBACK]
        return bool(fb[1] > 0.5), bool(fb[2] > 0.5), float(fb[4]) * 1000.0

    def decode(self, obs: np.ndarray) -> Decision:
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        v = obs[self.o_ctx : self.o_cand].tolist()  # scalars in Python: cheaper than many tiny numpy calls
        ctx = [round(x * ID_SCALE) - 1 for x in v[:N_CONTEXT]]
        ctx[3] = round(v[3] * MSG_ID_MOD) - 1
        fb = v[N_CONTEXT : N_CONTEXT + N_FEEDBACK]
        wl = v[N_CONTEXT + N_FEEDBACK :]
        mask = obs[self.o_mask : self.o_mask + self.d].tolist()
        slots = [i for i, m in enumerate(mask) if m > 0.5]
        free = next((i for i, m in enumerate(mask) if m <= 0.5), -1)
        id_codes = obs[self.o_ids : self.o_ids + self.d].tolist()
        ids = [round(id_codes[i] * ID_SCALE) - 1 for i in slots]
        feats = obs[self.o_cand : self.o_ids].reshape(self.d, self.f)[slots].astype(np.float64)
        qclass = QCLASSES[0 if wl[0] > 0.5 else 1 if wl[1] > 0.5 else 2]
        return Decision(
            node=ctx[0],
            dst=ctx[1],
            prev=ctx[2],
            msg=ctx[3],
            region=ctx[4],
            dst_region=ctx[5],
            first_of_episode=fb[0] < 0.5,
            terminal=fb[1] > 0.5,
            delivered=fb[2] > 0.5,
            hop_ms=fb[4] * 1000.0,
            workload=Workload(qclass, math.expm1(wl[3] * _LOG_MAX_SIZE), wl[4], ctx[5]),
            cand_ids=np.array(ids, dtype=np.int64),
            slots=np.array(slots, dtype=np.int64),
            feats=feats,
            free_slot=free,
        )


@dataclass
class _Pending:
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


VARIANTS = ("tabular", "linear", "boyan_littman", "bandit")
TABLES_KEY = "qrouting_tables"


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class QRouting(Agent):
    """The seed's QRouter behind the Agent contract; see the module docstring."""

    uses_replay = False
    supported_action_spaces = ("discrete",)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        device: str = "cpu",
        seed: int = 0,
        variant: str = "tabular",
        alpha: float = 0.1,
        gamma: float = 0.8,
        eps_start: float = 0.2,
        eps_end: float = 0.02,
        eps_decay: float = 0.99999,
        state_encoding: str = "node_dst",
        pool_bins: int = 4,
        per_class_heads: bool = False,
        prior: str = "distance",
        prior_scale: float = 2.0,
        split_horizon: bool = True,
        cold_start: float = 0.5,
        cold_start_ms: float = 20.0,
        drop_penalty_ms: float = 500.0,
        ucb_c: float = 0.5,
        bandit_forget: float = 0.999,
        bandit_reg: float = 1.0,
        allow: list[int] | None = None,
        deny: list[int] | None = None,
        respect_regions: bool = True,
        table_decay: float = 0.0,
        init_from: str = "",
        init_regions: list[int] | None = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__(observation_space, action_space, device=device, seed=seed, gamma=gamma, batch_size=batch_size)
        if variant not in VARIANTS:
            raise ConfigError(f"agent.variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if prior not in ("reputation", "distance"):
            raise ConfigError(f"agent.prior must be reputation or distance, got {prior!r}")
        if state_encoding not in ("node_dst", "pooled"):
            raise ConfigError(f"agent.state_encoding must be node_dst or pooled, got {state_encoding!r}")
        if not 0 < alpha <= 1 or not 0 <= gamma <= 1:
            raise ConfigError(f"agent.alpha must be in (0, 1] and agent.gamma in [0, 1], got {alpha}, {gamma}")
        if not 0 <= eps_end <= eps_start <= 1 or not 0 < eps_decay <= 1:
            raise ConfigError("agent.eps_* need 0 <= eps_end <= eps_start <= 1 and eps_decay in (0, 1]")
        if not 0 < bandit_forget <= 1 or bandit_reg <= 0 or ucb_c < 0 or pool_bins < 1:
            raise ConfigError("agent.bandit_forget must be in (0, 1], bandit_reg > 0, ucb_c >= 0, pool_bins >= 1")
        if not 0 <= table_decay <= 1 or drop_penalty_ms < 0 or cold_start_ms < 0:
            raise ConfigError("agent.table_decay must be in [0, 1]; drop_penalty_ms and cold_start_ms >= 0")
        self.spec = RelayObs(observation_space)
        if action_space.n != self.spec.d:
            raise IncompatibleSpaceError(f"action space Discrete({action_space.n}) != relay slots {self.spec.d}")
        self.variant = variant
        self.alpha = float(alpha)
        self.eps_start, self.eps_end, self.eps_decay = (
            float(eps_start),
            float(eps_end),
            float(eps_decay),
        )
        self.state_encoding = state_encoding
        self.pool_bins = int(pool_bins)
        self.per_class = bool(per_class_heads)
        self.heads = 3 if self.per_class else 1
        self.prior_kind = prior
        self.prior_scale = float(prior_scale)
        self.split_horizon = bool(split_horizon)
        self.cold_start, self.cold_start_ms = float(cold_start), float(cold_start_ms)
        self.drop_penalty_ms = float(drop_penalty_ms)
        self.ucb_c, self.forget, self.reg = float(ucb_c), float(bandit_forget), float(bandit_reg)
        self.allow = np.array(sorted({int(a) for a in (allow or [])}), dtype=np.int64)
        self.deny = np.array(sorted({int(d) for d in (deny or [])}), dtype=np.int64)
        self.respect_regions = bool(respect_regions)
        self.table_decay = float(table_decay)
        n = self.spec.n
        self.node_region = np.full(n, -1, dtype=np.int64)
        self.epsilon: dict[int, float] = {}
        self.episode = 0
        # tabular: key -> {hop: [q, prior, last episode updated]}
        self.q: dict[tuple, dict[int, list[float]]] = {}
        if variant == "boyan_littman":  # T[head, x, d, y] in ms; NaN = never updated (cold-start prior)
            self.T = np.full((self.heads, n, n, n), np.nan)
            self.T_prior = np.zeros((self.heads, n, n, n))
            self.T_episode = np.zeros((self.heads, n, n, n), dtype=np.int64)
        self.phi_dim = self.spec.f + 5 + 2 * SEED_FEATURES + 1
        if variant == "linear":
            self.w = np.zeros((self.heads, self.phi_dim))
        if variant == "bandit":
            self.A = np.stack([np.eye(self.phi_dim) * self.reg for _ in range(self.heads)])
            self.b = np.zeros((self.heads, self.phi_dim))
        self._theta: np.ndarray | None = None
        self._A_inv: np.ndarray | None = None
        self.pending: dict[int, _Pending] = {}
        self._last_raw: bytes = b""
        self._last_dec: Decision | None = None
        self.last_scores: dict[int, float] = {}  # select_next_hop's scores (act() skips building the dict)
        self._last_best: float | None = None
        self.last_td = 0.0
        self.refusals = 0  # decisions where no candidate passed the allow/deny/region filters
        if init_from:
            self.load_tables(init_from, regions=init_regions)

    # ---- the seed's API -----------------------------------------------------------------------------
    def select_next_hop(
        self,
        src: int,
        dst: int,
        candidates: list[int] | np.ndarray,
        workload: Workload,
        features: np.ndarray,
        explore: bool = True,
        came_from: int = -1,
    ) -> tuple[int | None, dict[int, float]]:
        """Choose the next hop for a message at relay `src` (the deciding relay) bound for `dst`.

        `candidates` are the live neighbours' relay ids, `features` their CANDIDATE_FEATURES rows. Returns
        (chosen hop, or None when the allow/deny/region filters leave nothing, and the policy score per
        allowed hop). Scores are "higher is better"; boyan_littman's are negated delivery-time estimates.
        `came_from` (the previous relay) is skipped when `split_horizon` is on and another hop is allowed.
        """
        cands = np.asarray(candidates, dtype=np.int64)
        feats = np.asarray(features, dtype=np.float64).reshape(len(cands), -1)
        i, cands, scores = self._choose(src, dst, cands, feats, workload, explore, came_from)
        self.last_scores = {int(h): float(x) for h, x in zip(cands, scores, strict=True)}
        return (None if i < 0 else int(cands[i])), self.last_scores

    def _choose(
        self,
        src: int,
        dst: int,
        cands: np.ndarray,
        feats: np.ndarray,
        workload: Workload,
        explore: bool,
        came_from: int,
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """(index of the chosen hop among the allowed ones or -1, allowed hops, their scores)."""
        keep = self._allowed(cands, feats, workload, came_from)
        if keep is not None:
            if not keep.any():
                self.refusals += 1
                self._last_best = None
                return -1, cands[:0], np.zeros(0)
            cands, feats = cands[keep], feats[keep]
        head = workload.qclass_index if self.per_class else 0
        scores = self._scores(src, dst, cands, feats, workload, head, explore)
        i = int(scores.argmax())
        self._last_best = float(scores[i])
        if explore:
            region = max(int(self.node_region[src]), 0)
            eps = self.epsilon.get(region, self.eps_start)
            self.epsilon[region] = max(self.eps_end, eps * self.eps_decay)
            if self.rng.random() < eps:
                i = int(self.rng.integers(len(cands)))
        return i, cands, scores

    def _allowed(
        self, cands: np.ndarray, feats: np.ndarray, workload: Workload, came_from: int = -1
    ) -> np.ndarray | None:
        """Hard filters (allow/deny lists, region boundary) and the soft split-horizon rule; None = all pass."""
        regional = self.respect_regions and workload.qclass == "regional"
        if not (regional or len(self.allow) or len(self.deny)):  # the common case: split horizon at most
            if self.split_horizon and came_from >= 0 and len(cands) > 1:
                keep = cands != came_from
                return None if keep.all() else keep
            return None
        keep = np.ones(len(cands), dtype=bool)
        if len(self.allow):
            keep &= np.isin(cands, self.allow)
        if len(self.deny):
            keep &= ~np.isin(cands, self.deny)
        if self.respect_regions and workload.qclass == "regional":
            keep &= feats[:, F_REGION] > 0.5
        if self.split_horizon and came_from >= 0:
            back = cands == came_from
            if (keep & ~back).any():
                keep &= ~back
        return keep

    # ---- scores per variant -------------------------------------------------------------------------
    def _prior(self, feats: np.ndarray) -> np.ndarray:
        """Cold-start value of unseen (state, hop) entries, in the variant's units (reward; BL: ms).

        reputation (the seed): a preference in [0, 1] from the hop's regionMatch and reputation, scaled by
        cold_start (BL: cold_start_ms * (1 - preference)). distance: additionally, times prior_scale, the
        zero-load delivery time via the hop (the env's `delay` feature: this relay's service time, the link,
        then service and link times along the fastest path on), so an untrained router starts out as
        shortest-path routing instead of exploring blindly, and counts relays as well as links."""
        pref = 0.5 * (feats[:, F_REGION] + feats[:, F_REP])
        delay_ms = 0.0
        if self.prior_kind == "distance":
            delay_ms = self.prior_scale * feats[:, F_DELAY] * RTT_NORM_MS
        if self.variant == "boyan_littman":
            return self.cold_start_ms * (1.0 - pref) + delay_ms
        return self.cold_start * pref - delay_ms / 1000.0

    def _table_key(self, node: int, dst: int, feats: np.ndarray, head: int) -> tuple:
        key: tuple = (node, dst, head)
        if self.state_encoding == "pooled":
            seed_feats = feats[:, :SEED_FEATURES]
            pooled = np.concatenate([seed_feats.mean(axis=0), seed_feats.min(axis=0)])
            bins = np.clip(np.floor(pooled * self.pool_bins), 0, 4 * self.pool_bins).astype(np.int64)
            key = key + tuple(bins.tolist())
        return key

    def _phi(self, feats: np.ndarray, workload: Workload) -> np.ndarray:
        """phi(s, hop) per candidate: the hop's features, the workload, the seed's mean/min pooling, a bias."""
        k = feats.shape[0]
        seed_feats = feats[:, :SEED_FEATURES]
        pooled = np.concatenate([seed_feats.mean(axis=0), seed_feats.min(axis=0)])
        return np.concatenate(
            [feats, np.tile(workload.vector(), (k, 1)), np.tile(pooled, (k, 1)), np.ones((k, 1))], axis=1
        )

    def _scores(self, node, dst, cands, feats, workload, head, explore) -> np.ndarray:
        if self.variant == "tabular":
            row = self.q.get(self._table_key(node, dst, feats, head))
            if not row:
                return self._prior(feats)
            learned = [row.get(h) for h in cands.tolist()]
            if None not in learned:  # every hop has an entry: no prior needed
                return np.array([e[0] for e in learned])
            prior = self._prior(feats)
            return np.array([p if e is None else e[0] for e, p in zip(learned, prior.tolist(), strict=True)])
        if self.variant == "boyan_littman":
            t = self.T[head, node, dst, cands]
            return -np.where(np.isnan(t), self._prior(feats), t)
        phi = self._phi(feats, workload)
        if self.variant == "linear":
            return phi @ self.w[head]
        theta, a_inv = self._bandit_params(head)
        mean = phi @ theta
        if not explore:
            return mean
        width = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", phi, a_inv, phi), 0.0))
        return mean + self.ucb_c * width

    def _bandit_params(self, head: int) -> tuple[np.ndarray, np.ndarray]:
        if self._theta is None:
            self._A_inv = np.linalg.inv(self.A)
            self._theta = np.einsum("hij,hj->hi", self._A_inv, self.b)
        return self._theta[head], self._A_inv[head]

    # ---- Agent contract -----------------------------------------------------------------------------
    def _decode(self, obs: np.ndarray) -> Decision:
        """Decode, reusing the last result: update() sees the observation act() just decoded."""
        raw = np.asarray(obs, dtype=np.float32).tobytes()
        if raw != self._last_raw:
            self._last_raw, self._last_dec = raw, self.spec.decode(obs)
        return self._last_dec

    def act(self, obs: np.ndarray, explore: bool) -> int:
        dec = self._decode(obs)
        self.node_region[dec.node] = dec.region
        if len(dec.cand_ids) == 0:  # every link of this relay is down: only refusal is possible
            return max(dec.free_slot, 0)
        i, cands, _ = self._choose(dec.node, dec.dst, dec.cand_ids, dec.feats, dec.workload, explore, dec.prev)
        if i < 0:  # nothing passes allow/deny/region filters: refuse rather than break a rule
            return dec.free_slot if dec.free_slot >= 0 else int(dec.slots[0])
        hop = cands[i]
        return int(dec.slots[int((dec.cand_ids == hop).argmax())])

    def on_episode_end(self, env_index: int = 0) -> None:
        """Messages of the ended episode never come back: drop their pending hops; age the tables."""
        self.pending.clear()
        if self.table_decay > 0:
            self._decay_tables()
        self.episode += 1

    def update(self, batch: Any) -> dict[str, Any]:
        obs, actions = _np(batch.obs), _np(batch.actions).reshape(len(batch), -1)
        rewards, next_obs = _np(batch.rewards).reshape(-1), _np(batch.next_obs)
        tds = [
            td
            for i in range(obs.shape[0])
            for td in self._learn_step(obs[i], int(round(float(actions[i, 0]))), float(rewards[i]), next_obs[i])
        ]
        if tds:
            self.last_td = sum(tds) / len(tds)
        eps = self.epsilon.values()
        out: dict[str, Any] = {
            "loss/q_td": self.last_td,
            "train/epsilon": sum(eps) / len(eps) if eps else self.eps_start,
        }
        for region, e in self.epsilon.items():  # the seed's per-region exploration, one curve each
            out[f"train/epsilon_region{region}"] = e
        if self._last_best is not None:
            out["train/q_best"] = self._last_best  # the policy's best score at the latest decision
        return out

    # ---- learning, one message at a time -------------------------------------------------------------
    def _learn_step(self, obs: np.ndarray, slot: int, reward: float, next_obs: np.ndarray) -> list[float]:
        """Complete this message's pending hop (its s' is `obs`), then open or close the hop just taken."""
        dec = self._decode(obs)
        self.node_region[dec.node] = dec.region
        if dec.first_of_episode:
            self.pending.clear()
        tds: list[float] = []
        p = self.pending.pop(dec.msg, None)
        if p is not None and not (p.hop == dec.node and p.dst == dec.dst):
            p = None  # a stale record whose id was reused
        if p is not None and self.variant != "bandit":
            tds.append(self._complete(p, dec))
        trail = p.trail if p is not None else []
        terminal, delivered, hop_ms = self.spec.feedback(next_obs)
        where = np.flatnonzero(dec.slots == slot)
        if len(where) == 0:  # the message was refused here: it ends without another hop
            if self.variant == "bandit":
                self._bandit_close(trail, extra=reward)
            return tds
        j = int(where[0])
        head = dec.workload.qclass_index if self.per_class else 0
        prior = float(self._prior(dec.feats[j : j + 1])[0])
        new = _Pending(
            node=dec.node,
            dst=dec.dst,
            hop=int(dec.cand_ids[j]),
            head=head,
            reward=reward,
            hop_ms=hop_ms,
            prior=prior,
        )
        if self.variant in ("linear", "bandit"):
            new.key = self._phi(dec.feats[j : j + 1], dec.workload)[0]
            if self.variant == "bandit":
                new.trail = trail + [(new.key, reward)]
        elif self.variant == "tabular":
            new.key = self._table_key(dec.node, dec.dst, dec.feats, head)
        if terminal:
            if self.variant == "bandit":
                self._bandit_close(new.trail)
            else:
                tds.append(self._complete(new, None, delivered=delivered))
        else:  # one record per message in flight, however many: none is dropped to make room
            self.pending[dec.msg] = new
        return tds

    def _complete(self, p: _Pending, nxt: Decision | None, delivered: bool = False) -> float:
        """One update of hop `p`; `nxt` is its message's next decision, None if the message ended."""
        a = self.alpha
        if nxt is not None:
            cands, feats = self._allowed_of(nxt)
        if self.variant == "boyan_littman":
            if nxt is None:
                rest = 0.0 if delivered else self.drop_penalty_ms
            elif len(cands) == 0:
                rest = self.drop_penalty_ms
            else:  # y's own estimate: min_z Q_y(d, z)
                rest = -float(self._scores(nxt.node, nxt.dst, cands, feats, nxt.workload, p.head, False).max())
            target = p.hop_ms + rest
            idx = (p.head, p.node, p.dst, p.hop)
            old = self.T[idx]
            if np.isnan(old):
                old = self.T_prior[idx] = p.prior
            self.T[idx] = old + a * (target - old)
            self.T_episode[idx] = self.episode
            return abs(target - old)
        if nxt is None or len(cands) == 0:
            target = p.reward
        else:
            head = nxt.workload.qclass_index if self.per_class else 0
            q_next = self._scores(nxt.node, nxt.dst, cands, feats, nxt.workload, head, False)
            target = p.reward + self.gamma * float(q_next.max())
        if self.variant == "linear":
            phi, w = p.key, self.w[p.head]
            td = target - float(phi @ w)
            w += a * td * phi / float(phi @ phi)  # NLMS: alpha is the fraction of the error corrected
            return abs(td)
        row = self.q.setdefault(p.key, {})
        entry = row.get(p.hop)
        if entry is None:
            entry = row[p.hop] = [p.prior, p.prior, self.episode]
        old = entry[0]
        entry[0] = (1.0 - a) * old + a * target
        entry[2] = self.episode
        return abs(target - old)

    def _allowed_of(self, dec: Decision) -> tuple[np.ndarray, np.ndarray]:
        keep = self._allowed(dec.cand_ids, dec.feats, dec.workload, dec.prev)
        return (dec.cand_ids, dec.feats) if keep is None else (dec.cand_ids[keep], dec.feats[keep])

    def _bandit_close(self, trail: list[tuple[np.ndarray, float]], extra: float = 0.0) -> None:
        """A message ended: regress each hop's phi on its return-to-go (discounted LinUCB update)."""
        if not trail:
            return
        rewards = np.array([r for _, r in trail])
        togo = np.cumsum(rewards[::-1])[::-1] + extra
        eye = np.eye(self.phi_dim)
        f = self.spec.f
        for (phi, _), g in zip(trail, togo, strict=True):
            h = int(np.argmax(phi[f : f + 3])) if self.per_class else 0
            self.A[h] = self.forget * self.A[h] + np.outer(phi, phi) + (1.0 - self.forget) * self.reg * eye
            self.b[h] = self.forget * self.b[h] + g * phi
        self._theta = None

    def _decay_tables(self) -> None:
        """EMA toward the cold-start prior for entries this episode did not update."""
        d = self.table_decay
        if self.variant == "tabular":
            for row in self.q.values():
                for entry in row.values():
                    if entry[2] < self.episode:
                        entry[0] += d * (entry[1] - entry[0])
        elif self.variant == "boyan_littman":
            stale = ~np.isnan(self.T) & (self.T_episode < self.episode)
            self.T[stale] += d * (self.T_prior[stale] - self.T[stale])

    # ---- persistence --------------------------------------------------------------------------------
    def q_tables(self) -> dict[str, Any]:
        """Tables grouped by the deciding relay's region (plain tensors: torch.load(weights_only=True))."""
        out: dict[str, Any] = {
            "variant": self.variant,
            "heads": self.heads,
            "state_encoding": self.state_encoding,
            "node_region": torch.from_numpy(self.node_region.copy()),
            "regions": {},
        }
        if self.variant == "tabular":
            rows: dict[int, list[tuple]] = {}
            for key, row in self.q.items():
                region = int(self.node_region[key[0]])
                for hop, (q, prior, ep) in row.items():
                    rows.setdefault(region, []).append((key, hop, q, prior, ep))
            for region, items in rows.items():
                out["regions"][region] = {
                    "keys": torch.tensor([k for k, *_ in items], dtype=torch.int64),
                    "hops": torch.tensor([h for _, h, *_ in items], dtype=torch.int64),
                    "q": torch.tensor([q for *_, q, _, _ in items], dtype=torch.float64),
                    "prior": torch.tensor([p for *_, p, _ in items], dtype=torch.float64),
                    "episode": torch.tensor([e for *_, e in items], dtype=torch.int64),
                }
        elif self.variant == "boyan_littman":
            for region in sorted(set(self.node_region.tolist()) - {-1}):
                nodes = np.flatnonzero(self.node_region == region)
                out["regions"][region] = {
                    "nodes": torch.from_numpy(nodes),
                    "T": torch.from_numpy(self.T[:, nodes].copy()),
                    "prior": torch.from_numpy(self.T_prior[:, nodes].copy()),
                    "episode": torch.from_numpy(self.T_episode[:, nodes].copy()),
                }
        elif self.variant == "linear":
            out["weights"] = {"w": torch.from_numpy(self.w.copy())}
        else:
            out["weights"] = {"A": torch.from_numpy(self.A.copy()), "b": torch.from_numpy(self.b.copy())}
        return out

    def set_q_tables(self, tables: dict[str, Any], regions: list[int] | None = None) -> None:
        """Load tables saved by q_tables(), optionally only those of some regions."""
        if tables.get("variant") != self.variant or int(tables.get("heads", -1)) != self.heads:
            raise CheckpointError(
                f"saved Q-tables are for variant={tables.get('variant')} heads={tables.get('heads')}, this agent "
                f"is variant={self.variant} heads={self.heads}"
            )
        if self.variant == "tabular" and tables.get("state_encoding") != self.state_encoding:
            raise CheckpointError(f"saved Q-tables use state_encoding={tables.get('state_encoding')}")
        wanted = None if not regions else {int(r) for r in regions}
        saved_regions = np.asarray(tables["node_region"])
        if saved_regions.shape != self.node_region.shape:
            raise CheckpointError(
                f"saved Q-tables cover {saved_regions.shape[0]} relays, this env has {self.node_region.shape[0]}"
            )
        known = saved_regions >= 0
        self.node_region[known] = saved_regions[known]
        for region, t in tables["regions"].items():
            if wanted is not None and int(region) not in wanted:
                continue
            if self.variant == "tabular":
                for key, hop, q, prior, ep in zip(
                    t["keys"].tolist(),
                    t["hops"].tolist(),
                    t["q"].tolist(),
                    t["prior"].tolist(),
                    t["episode"].tolist(),
                    strict=True,
                ):
                    self.q.setdefault(tuple(key), {})[int(hop)] = [q, prior, int(ep)]
            else:
                nodes = t["nodes"].numpy()
                self.T[:, nodes] = t["T"].numpy()
                self.T_prior[:, nodes] = t["prior"].numpy()
                self.T_episode[:, nodes] = t["episode"].numpy()
        if "weights" in tables and wanted is None:
            for name, value in tables["weights"].items():
                setattr(self, name, value.numpy().copy())
            self._theta = None

    def save_tables(self, path: str | Path) -> None:
        torch.save({TABLES_KEY: self.q_tables()}, str(path))

    def load_tables(self, path: str | Path, regions: list[int] | None = None) -> None:
        """Start from the tables of an earlier run: a run dir, a checkpoint, or a save_tables() file."""
        p = Path(path)
        if p.is_dir():
            for name in ("checkpoints/last.pt", "checkpoints/best.pt"):
                if (p / name).is_file():
                    p = p / name
                    break
        if not p.is_file():
            raise CheckpointError(f"agent.init_from={path!r}: no such checkpoint or table file")
        try:
            data = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file
            raise CheckpointError(f"agent.init_from={path!r} cannot be read: {type(e).__name__}: {e}") from None
        tables = _find_key(data, TABLES_KEY)
        if tables is None:
            raise CheckpointError(f"agent.init_from={path!r} holds no qrouting tables")
        self.set_q_tables(tables, regions)

    def extra_state(self) -> dict[str, Any]:
        return {
            TABLES_KEY: self.q_tables(),
            "epsilon": dict(self.epsilon),
            "episode": self.episode,
            "refusals": self.refusals,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if TABLES_KEY in state:
            self.set_q_tables(state[TABLES_KEY])
        self.epsilon = {int(k): float(v) for k, v in state.get("epsilon", {}).items()}
        self.episode = int(state.get("episode", 0))
        self.refusals = int(state.get("refusals", 0))


def _find_key(data: Any, key: str) -> Any:
    """Depth-first search for `key` in nested dicts/lists (checkpoint layouts differ between versions)."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        values = data.values()
    elif isinstance(data, list | tuple):
        values = data
    else:
        return None
    for v in values:
        found = _find_key(v, key)
        if found is not None:
            return found
    return None
