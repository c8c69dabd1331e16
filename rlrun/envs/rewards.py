"""Rewards as components: each `reward` config-group option names a class here (`_target_`) with its weights as
typed constructor arguments, and the env asks it for the step's reward terms, `terms(metrics) -> {name:
value}`; the reward is their sum, and each term is logged (info / TensorBoard `env/<term>`). A new formula is
a new class (here or in your own package) plus a YAML file that names it; the env does not change.

    reward = BlockchainReward(orphan_weight=5.0)
    terms = reward.terms({"latency": 120.0, "throughput": 3.0, "offered_load": 3.0, "orphan_rate": 0.01})

Weights are checked when the reward is built: a wrong key or value is one ConfigError line that names
`reward.<key>`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlrun.errors import ConfigError

QCLASSES = ("best-effort", "regional", "backbone")  # the relay's message classes (rlrun.envs.relay.obs)


class Reward(abc.ABC):
    """A reward formula. Subclasses are dataclasses whose fields are the weights."""

    @abc.abstractmethod
    def terms(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """The step's named reward terms; the reward is their sum."""

    def reset(self) -> None:  # noqa: B027 (optional hook)
        """Forget per-episode state (the relay's rolling SLA windows); called at every env reset."""

    def weights(self) -> dict[str, Any]:
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


def weight(value: Any, key: str) -> float:
    """A finite weight >= 0 (the formula carries the signs)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"reward.{key} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ConfigError(f"reward.{key} must be a finite number >= 0 (it weighs a cost or a bonus), got {value!r}")
    return x


def as_reward(reward: Reward | Mapping[str, Any] | None, default: type[Reward]) -> Reward:
    """The env's reward component: one built from the `reward` group (anything with `terms`), or `default`
    built from a mapping of its weights (a run saved before rewards had a `_target_`, or Python callers), or
    `default()` for None."""
    if reward is None:
        return default()
    if hasattr(reward, "terms"):
        return reward  # type: ignore[return-value]
    if not isinstance(reward, Mapping):
        raise ConfigError(f"reward must be a mapping of weights or a reward component, got {type(reward).__name__}")
    allowed = [f.name for f in dataclasses.fields(default)]
    unknown = sorted(set(reward) - set(allowed) - {"_target_"})
    if unknown:
        raise ConfigError(f"reward.{unknown[0]} is not a weight of {default.__name__}; allowed: {', '.join(allowed)}")
    return default(**{k: v for k, v in reward.items() if k != "_target_"})


@dataclass
class BlockchainReward(Reward):
    """Seed 000's MAP reward (its alpha, beta, gamma): r = -latency_weight * latency_min
    + throughput_weight * throughput_tpm - orphan_weight * orphan_rate. Throughput counts confirmations only up
    to the window's offered load (see rlrun.envs.blockchain)."""

    latency_weight: float = 1.0
    throughput_weight: float = 3e-3
    orphan_weight: float = 10.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, weight(getattr(self, f.name), f.name))

    def terms(self, m: Mapping[str, Any]) -> dict[str, float]:
        return {
            "reward_latency": -self.latency_weight * m["latency"] / 60.0,
            "reward_throughput": self.throughput_weight * min(m["throughput"], m["offered_load"]) * 60.0,
            "reward_orphan": -self.orphan_weight * m["orphan_rate"],
        }


@dataclass
class RelayReward(Reward):
    """Seed 003's per-hop reward (see rlrun.envs.relay.env):
    r = -(latency_weight * hop_s + price_weight * cost) - loss_penalty * dropped + success_bonus * delivered
        - sla_penalty * max(0, P95/target - 1) [on delivery] - cross_region_penalty * violation
        + progress_weight * (shortest-path RTT to the destination before - after the hop) / 100 ms."""

    latency_weight: float = 1.0  # per second of delivery time
    loss_penalty: float = 3.0  # per dropped message (lost, expired or refused)
    price_weight: float = 0.2  # per unit of cost (price per MB * MB)
    success_bonus: float = 2.0  # per delivered message
    sla_penalty: float = 1.0  # per delivery while the class's rolling P95 exceeds its target, times the excess
    cross_region_penalty: float = 1.0  # per hop that takes a `regional` message out of its region
    progress_weight: float = 0.0  # potential-based shaping by static shortest-path RTT (0 = the seed's reward)
    sla_target_ms: dict[str, float] = field(
        default_factory=lambda: {"best-effort": 1500.0, "regional": 400.0, "backbone": 800.0})
    sla_window: int = 200  # deliveries per class in the rolling P95

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in ("sla_target_ms", "sla_window"):
                setattr(self, f.name, weight(getattr(self, f.name), f.name))
        targets = {"best-effort": 1500.0, "regional": 400.0, "backbone": 800.0}
        given = dict(self.sla_target_ms or {})
        bad = sorted(set(given) - set(QCLASSES))
        if bad:
            raise ConfigError(f"reward.sla_target_ms keys must be among {', '.join(QCLASSES)}, got {bad}")
        for cls, t in given.items():
            if not float(t) > 0:
                raise ConfigError(f"reward.sla_target_ms.{cls} must be > 0, got {t}")
            targets[cls] = float(t)
        self.sla_target_ms = targets
        if int(self.sla_window) < 1:
            raise ConfigError(f"reward.sla_window must be >= 1, got {self.sla_window}")
        self.sla_window = int(self.sla_window)
        self.reset()

    def reset(self) -> None:
        self._sla = [deque(maxlen=self.sla_window) for _ in QCLASSES]

    def _sla_excess(self, qclass: int, delivery_ms: float) -> float:
        window = self._sla[qclass]
        window.append(delivery_ms)
        p95 = float(np.percentile(np.fromiter(window, dtype=np.float64, count=len(window)), 95))
        return max(0.0, p95 / self.sla_target_ms[QCLASSES[qclass]] - 1.0)

    def terms(self, hop: Mapping[str, Any]) -> dict[str, float]:
        """`hop`: refused, cost, violation, lost, expired, delivered, delivery_ms, hop_ms, qclass, progress_ms
        (the last only read for hops that neither dropped nor refused the message)."""
        r_lat = r_price = r_loss = r_bonus = r_sla = r_region = r_prog = 0.0
        if hop["refused"]:
            r_loss = -self.loss_penalty
        else:
            r_price = -self.price_weight * hop["cost"]
            if hop["violation"]:
                r_region = -self.cross_region_penalty
            if hop["expired"] or hop["lost"]:
                r_loss = -self.loss_penalty
            else:
                r_prog = self.progress_weight * hop["progress_ms"] / 100.0
                if hop["delivered"]:
                    r_bonus = self.success_bonus
                    r_sla = -self.sla_penalty * self._sla_excess(hop["qclass"], hop["delivery_ms"])
            r_lat = -self.latency_weight * hop["hop_ms"] / 1000.0
        return {"r_latency": r_lat, "r_price": r_price, "r_loss": r_loss, "r_bonus": r_bonus, "r_sla": r_sla,
                "r_region": r_region, "r_progress": r_prog}


@dataclass
class ConsensusReward(Reward):
    """Seed 001's weighted reward (governance-configurable): r = throughput * d(block_utilization)
    + finality * d(precommit_ratio) - decentralization * d(validator_gini) - mev * mev_estimate
    - failed_txs * failed_tx_ratio, d() the change over the step. Each weight is >= 0 and they sum to exactly
    1.0 in decimal arithmetic (0.05 + 0.3 + 0.3 + 0.25 + 0.1 passes; a float sum could not tell 1.0 from
    0.9999999999999999)."""

    reward_weight_throughput: float = 0.30
    reward_weight_finality: float = 0.25
    reward_weight_decentralization: float = 0.20
    reward_weight_mev: float = 0.15
    reward_weight_failed_txs: float = 0.10

    def __post_init__(self) -> None:
        from decimal import Decimal

        total = Decimal(0)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ConfigError(f"reward.{f.name}={value!r} must be a number")
            try:
                d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
            except ArithmeticError:
                raise ConfigError(f"reward.{f.name}={value!r} must be a number") from None
            if not d.is_finite() or d < 0:
                raise ConfigError(f"reward.{f.name}={value!r} must be >= 0 (the seed fixes the sign of each term)")
            setattr(self, f.name, float(d))
            total += Decimal(repr(float(d)))
        if total != 1:
            terms = " + ".join(f"{f.name.removeprefix('reward_weight_')}={getattr(self, f.name):g}"
                               for f in dataclasses.fields(self))
            raise ConfigError(f"reward weights must sum to exactly 1.0, got {total} ({terms})")

    def terms(self, m: Mapping[str, Any]) -> dict[str, float]:
        """`m`: the changes of block_utilization and precommit_ratio over the step (`*_change`), the decrease of
        validator_gini, and the step's mev_estimate and failed_tx_ratio."""
        return {
            "reward_throughput": self.reward_weight_throughput * m["block_utilization_change"],
            "reward_finality": self.reward_weight_finality * m["precommit_ratio_change"],
            "reward_decentralization": self.reward_weight_decentralization * m["validator_gini_decrease"],
            "reward_mev": -self.reward_weight_mev * m["mev_estimate"],
            "reward_failed_txs": -self.reward_weight_failed_txs * m["failed_tx_ratio"],
        }


@dataclass
class ExportReward(Reward):
    """Seed 002's zero-export reward for env=inverter, per second, in kW: r = -(export_weight * export_kw
    + import_weight * over_diversion_kw + churn_weight * sum_phases |command change| kW
    + over_limit_weight * [export > export_limit_w] + curtailment_weight * curtailed_kw). `curtailment_weight`
    None means curtailed PV has no price, which env.curtailment=true refuses."""

    export_weight: float = 1.25
    import_weight: float = 1.0
    churn_weight: float = 0.01
    over_limit_weight: float = 0.0
    curtailment_weight: float | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "curtailment_weight" and value is None:
                continue
            if isinstance(value, bool):
                raise ConfigError(f"reward.{f.name} must be a finite number >= 0, got {value!r}")
            setattr(self, f.name, weight(value, f.name))

    def terms(self, m: Mapping[str, Any]) -> dict[str, float]:
        """`m`: export_w, over_diversion_w, churn_kw, over_limit (bool) and, with curtailment, curtailed_w."""
        terms = {
            "r_export": -self.export_weight * m["export_w"] / 1000.0,
            "r_import": -self.import_weight * m["over_diversion_w"] / 1000.0,
            "r_churn": -self.churn_weight * m["churn_kw"],
            "r_over_limit": -self.over_limit_weight * float(m["over_limit"]),
        }
        if "curtailed_w" in m:
            terms["r_curtailment"] = -(self.curtailment_weight or 0.0) * m["curtailed_w"] / 1000.0
        return terms
