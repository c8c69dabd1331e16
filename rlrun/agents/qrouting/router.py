"""`agent=qrouting`: seed 003's QRouter, plus Boyan-Littman Q-routing and a LinUCB router, for env=relay.

The seed runs one QRouter per relay; here one object holds every relay's table, indexed by relay, so the
generic trainer can drive it. Per decision it reads the relay env's observation (layout decoded from the
space's header, see `rlrun.envs.relay.obs.RelayObs`): the deciding relay, destination, message id, the
outcome of the previous action, the seed's per-hop features and workload, and the candidates' relay ids.

Variants (`agent.variant`), one module each over the shared `variant.py`: `tabular` (the seed's Q-table),
`linear` (its first extension), `boyan_littman` (delivery-time estimates, Boyan & Littman 1994) and `bandit`
(LinUCB, its third extension). `per_class_heads` gives each qClass its own table/weights (the seed's per-SLA
heads). This module holds what they share: exploration, the safety filters, per-message learning and
persistence.

Learning per message: the trainer hands `update()` one (obs, action, reward, next_obs) at a time, but
consecutive steps are different messages. The observation carries the message id, and `next_obs` the outcome
of the action (delivered / dropped, hop time), so the agent keeps one pending transition per message in
flight and completes it when that message's next decision shows up: s' is then exactly the message's next
relay, as the seed's update(prev_state, hop, reward, next_state, next_candidates) wants. No trainer hook is
needed. Requires replay.n_step=1 (the default); the trainer does not use replay here.

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

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlrun.agents.base import Agent
from rlrun.agents.qrouting.bandit import LinUCB
from rlrun.agents.qrouting.boyan_littman import BoyanLittmanQ
from rlrun.agents.qrouting.linear import LinearQ
from rlrun.agents.qrouting.tabular import TabularQ
from rlrun.agents.qrouting.variant import ColdStart, Pending, Variant
from rlrun.envs.relay.obs import F_REGION, Decision, RelayObs, Workload
from rlrun.errors import CheckpointError, ConfigError, IncompatibleSpaceError

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
        self.alpha = float(alpha)
        self.eps_start, self.eps_end, self.eps_decay = (
            float(eps_start),
            float(eps_end),
            float(eps_decay),
        )
        self.state_encoding = state_encoding
        self.per_class = bool(per_class_heads)
        self.heads = 3 if self.per_class else 1
        self.split_horizon = bool(split_horizon)
        self.allow = np.array(sorted({int(a) for a in (allow or [])}), dtype=np.int64)
        self.deny = np.array(sorted({int(d) for d in (deny or [])}), dtype=np.int64)
        self.respect_regions = bool(respect_regions)
        self.table_decay = float(table_decay)
        self.node_region = np.full(self.spec.n, -1, dtype=np.int64)
        self.epsilon: dict[int, float] = {}
        cold = ColdStart(prior, float(prior_scale), float(cold_start), float(cold_start_ms))
        common = (self.heads, self.alpha, self.gamma, cold)
        self.learner: Variant = {
            "tabular": lambda: TabularQ(*common, state_encoding, int(pool_bins)),
            "linear": lambda: LinearQ(*common, self.spec.f),
            "boyan_littman": lambda: BoyanLittmanQ(*common, self.spec.n, float(drop_penalty_ms)),
            "bandit": lambda: LinUCB(*common, self.spec.f, float(ucb_c), float(bandit_forget), float(bandit_reg)),
        }[variant]()
        self.pending: dict[int, Pending] = {}
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
        scores = self.learner.scores(src, dst, cands, feats, workload, head, explore)
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

    @property
    def variant(self) -> str:
        return self.learner.name

    @property
    def episode(self) -> int:
        return self.learner.episode

    def on_episode_end(self, env_index: int = 0) -> None:
        """Messages of the ended episode never come back: drop their pending hops; age the tables."""
        self.pending.clear()
        self.learner.end_episode(self.table_decay)

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
        if p is not None:
            tds += self.learner.moved_on(p, dec, *self._allowed_of(dec))
        terminal, delivered, hop_ms = self.spec.feedback(next_obs)
        where = np.flatnonzero(dec.slots == slot)
        if len(where) == 0:  # the message was refused here: it ends without another hop
            self.learner.refused(p, reward)
            return tds
        j = int(where[0])
        head = dec.workload.qclass_index if self.per_class else 0
        new = Pending(node=dec.node, dst=dec.dst, hop=int(dec.cand_ids[j]), head=head, reward=reward,
                      hop_ms=hop_ms, prior=float(self.learner.prior(dec.feats[j : j + 1])[0]))
        self.learner.open(new, dec, j, p)
        if terminal:
            tds += self.learner.ended(new, delivered)
        else:  # one record per message in flight, however many: none is dropped to make room
            self.pending[dec.msg] = new
        return tds

    def _allowed_of(self, dec: Decision) -> tuple[np.ndarray, np.ndarray]:
        keep = self._allowed(dec.cand_ids, dec.feats, dec.workload, dec.prev)
        return (dec.cand_ids, dec.feats) if keep is None else (dec.cand_ids[keep], dec.feats[keep])

    # ---- persistence --------------------------------------------------------------------------------
    def q_tables(self) -> dict[str, Any]:
        """Tables grouped by the deciding relay's region (plain tensors: torch.load(weights_only=True))."""
        return {"variant": self.variant, "heads": self.heads, "state_encoding": self.state_encoding,
                "node_region": torch.from_numpy(self.node_region.copy()), **self.learner.tables(self.node_region)}

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
        for region, table in tables["regions"].items():
            if wanted is None or int(region) in wanted:
                self.learner.load_region(table)
        if "weights" in tables and wanted is None:
            self.learner.load_weights(tables["weights"])

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
        self.learner.episode = int(state.get("episode", 0))
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
