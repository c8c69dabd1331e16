"""The tuned chain parameters under governance (seed 001): the agent mode's bounded updates
(rlrun.governance.modes.ParameterGovernor), the circuit breaker checked on every block, which reverts every
tuned parameter to its default when block times go unhealthy, and the shadow-mode and event logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlrun.envs.consensus_sim.chain import BlockRecord, ChainSim
from rlrun.governance.circuit_breaker import CircuitBreaker
from rlrun.governance.modes import AgentMode, JsonlLog, ParameterGovernor, TunedParameter

#: the parameter each action component moves
TUNED_NAMES = (
    "block_time_ms",
    "base_gas_price",
    "validator_set_size",
    "pool_weight_rpos",
    "pool_weight_dpos",
)
MAX_POOL_WEIGHT_SUM = 0.95
#: (low, high) of each tuned parameter as multiples of its default (pool weights: absolute)
PARAMETER_BOUNDS = {
    "block_time_ms": (0.05, 4.0),
    "base_gas_price": (0.1, 10.0),
    "validator_set_size": (0.5, 2.0),
    "pool_weight_rpos": (0.05, 0.90),
    "pool_weight_dpos": (0.05, 0.90),
}


class ChainGovernance:
    def __init__(self, defaults: dict[str, float], mode: AgentMode, max_change_conservative: float,
                 max_change_autonomous: float, breaker_window: int, breaker_threshold: float,
                 log_dir: Path | None) -> None:
        params = []
        for name in TUNED_NAMES:
            lo, hi = PARAMETER_BOUNDS[name]
            if not name.startswith("pool_weight"):
                lo, hi = lo * defaults[name], hi * defaults[name]
            params.append(TunedParameter(name, defaults[name], lo, hi, applied=name != "validator_set_size",
                                         integer=name in ("block_time_ms", "validator_set_size")))
        self.governor = ParameterGovernor(params, mode, max_change_conservative, max_change_autonomous,
                                          project=cap_pool_weights)
        self.breaker = CircuitBreaker(breaker_window, breaker_threshold)
        self.log_dir = log_dir
        self._shadow_log = JsonlLog(log_dir / "shadow.jsonl") if log_dir else None
        self._event_log = JsonlLog(log_dir / "events.jsonl") if log_dir else None
        self.status: Any = None  # the breaker's latest evaluation
        self.events: list[dict[str, Any]] = []  # breaker events since the env last cleared them

    def reset(self) -> None:
        """A new episode: every parameter at its default, the breaker's history empty."""
        self.governor.revert()
        self.breaker.reset()
        self.status = None

    def set_mode(self, mode: AgentMode) -> None:
        self.governor.set_mode(mode)

    def param_values(self) -> tuple[float, float, float, float]:
        v = self.governor.values
        return v["block_time_ms"], v["base_gas_price"], v["pool_weight_rpos"], v["pool_weight_dpos"]

    def decide(self, action: Any) -> Any:
        """The mode's bounded update for `action` (None: no recommendation), held while the breaker is active."""
        return self.governor.decide(action, paused=self.breaker.active)

    def apply(self, sim: ChainSim) -> None:
        """Put the governed values into force on the chain."""
        p = sim.params
        before = (p.pool_weight_rpos, p.pool_weight_dpos)
        (p.target_block_time_ms, p.base_gas_price, p.pool_weight_rpos, p.pool_weight_dpos) = self.param_values()
        if (p.pool_weight_rpos, p.pool_weight_dpos) != before:
            sim.refresh_power()

    def log_shadow(self, record: dict[str, Any]) -> None:
        if self._shadow_log is not None:
            self._shadow_log.write(record)

    def on_block(self, rec: BlockRecord, sim: ChainSim, check: bool, episode: int, step: int) -> None:
        """Record the block's time; with `check` (governance enabled), evaluate the breaker and revert on a trip."""
        self.breaker.record_block(rec.timestamp_ms, int(round(rec.target_ms)))
        if not check:
            return
        status = self.breaker.evaluate()
        self.status = status
        if status.triggered:
            self.governor.revert()
            self.apply(sim)
            self._emit("circuit_breaker_triggered", rec, status, episode, step, reverted_to=self.governor.defaults())
        elif status.cleared:
            self._emit("circuit_breaker_cleared", rec, status, episode, step)

    def _emit(self, name: str, rec: BlockRecord, status: Any, episode: int, step: int, **extra: Any) -> None:
        event = {
            "event": name,
            "episode": episode,
            "step": step,
            "height": rec.height,
            "time_s": round(rec.timestamp_ms / 1000.0, 3),
            "healthy_blocks": status.healthy,
            "total_deltas": status.total,
            "healthy_fraction": status.fraction,
            "threshold": float(self.breaker.threshold),
            "target_block_time_ms": rec.target_ms,
            **extra,
        }
        self.events.append(event)
        if self._event_log is not None:
            self._event_log.write(event)


def cap_pool_weights(values: dict[str, float]) -> dict[str, float]:
    """Keep rpos + dpos <= 0.95 by scaling both down (the PoS pool keeps the remainder)."""
    r, d = values["pool_weight_rpos"], values["pool_weight_dpos"]
    if r + d > MAX_POOL_WEIGHT_SUM:
        f = MAX_POOL_WEIGHT_SUM / (r + d)
        values = {**values, "pool_weight_rpos": r * f, "pool_weight_dpos": d * f}
    return values
