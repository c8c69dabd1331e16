"""The circuit breaker of seed 001: revert RL-tuned parameters when block production becomes unhealthy.

Detection, exactly as the seed states it:
1. over the last `window` blocks (default 50) take each block's time delta: its timestamp minus its
   predecessor's (so the breaker keeps window + 1 timestamps);
2. a block is healthy if its delta is positive and at most 2x the target block time (exactly 2x is healthy).
   The target is the one in force when the block was produced (recorded with its timestamp): after the
   breaker reverts an RL-shortened target to the default, blocks made under the short target stay
   unhealthy until they leave the window, instead of being re-judged healthy against the new, longer
   target (which would clear the breaker one block after it fired). `evaluate(target)` judges every
   block against one given target instead;
3. healthy fraction = healthy blocks / total deltas;
4. the breaker triggers when the fraction is below `threshold` (default 0.50; exactly 50% does not trigger).
Until `window` deltas exist the fraction is taken over the deltas there are (at least one), as the seed's
"healthy blocks / total deltas" reads; with no delta there is nothing to judge.

The comparison is exact rational arithmetic (healthy * den < num * total with the threshold parsed from its
decimal string), like the LegacyDec comparison on chain, so 0.5 and "0.50" are the same threshold and no
float rounding moves a boundary.

Response (the owner performs it when `evaluate` reports `triggered`): revert every RL-applied parameter
to its default, pause the agent (`active` is the seed's CircuitBreakerActive), clear the in-memory agent so
it is reloaded from its checkpoint, and emit a `circuit_breaker_triggered` event. The breaker clears itself
(`cleared`, event `circuit_breaker_cleared`) at the first evaluation whose fraction is back at or above the
threshold.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from rlrun.errors import ConfigError


def exact_fraction(
    value: float | str | Decimal | Fraction, key: str = "circuit_breaker_threshold"
) -> Fraction:
    """A config decimal as an exact fraction (floats through their shortest repr: 0.5 -> 1/2, 0.1 -> 1/10)."""
    try:
        if isinstance(value, Fraction):
            return value
        if isinstance(value, float):
            return Fraction(Decimal(repr(value)))
        return Fraction(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a decimal number") from None


@dataclass(frozen=True)
class BreakerStatus:
    healthy: int
    total: int
    evaluated: bool  # False when there was no delta to judge
    below_threshold: bool
    triggered: bool  # this evaluation switched the breaker on
    cleared: bool  # this evaluation switched it off
    active: bool  # CircuitBreakerActive after this evaluation

    @property
    def fraction(self) -> float:
        return self.healthy / self.total if self.total else 1.0


class CircuitBreaker:
    def __init__(self, window: int = 50, threshold: float | str = 0.50) -> None:
        if int(window) < 1:
            raise ConfigError(f"circuit_breaker_window must be >= 1, got {window}")
        thr = exact_fraction(threshold)
        if not 0 <= thr <= 1:
            raise ConfigError(f"circuit_breaker_threshold must be in [0, 1], got {threshold}")
        self.window = int(window)
        self.threshold = thr
        self._timestamps: deque[int] = deque(maxlen=self.window + 1)
        self._targets: deque[int] = deque(maxlen=self.window + 1)
        self.active = False
        self.trigger_count = 0

    def reset(self) -> None:
        self._timestamps.clear()
        self._targets.clear()
        self.active = False
        self.trigger_count = 0

    def record_block(self, timestamp_ms: int, target_block_time_ms: int | None = None) -> None:
        """A committed block: its timestamp and the target block time it was produced under."""
        self._timestamps.append(int(timestamp_ms))
        self._targets.append(int(target_block_time_ms) if target_block_time_ms is not None else -1)

    def deltas(self) -> list[int]:
        ts = list(self._timestamps)
        return [b - a for a, b in zip(ts[:-1], ts[1:], strict=True)]

    def count_healthy(self, target_block_time_ms: int | None = None) -> tuple[int, int]:
        """(healthy blocks, deltas) over the window; each delta is judged against its block's recorded
        target unless one target is given."""
        d = self.deltas()
        targets = list(self._targets)[1:]
        healthy = 0
        for delta, own in zip(d, targets, strict=True):
            target = int(target_block_time_ms) if target_block_time_ms is not None else own
            if target < 0:
                raise ValueError("no target block time recorded for a block; pass target_block_time_ms")
            healthy += 0 < delta <= 2 * target
        return healthy, len(d)

    def evaluate(self, target_block_time_ms: int | None = None) -> BreakerStatus:
        healthy, total = self.count_healthy(target_block_time_ms)
        if total == 0:
            return BreakerStatus(0, 0, False, False, False, False, self.active)
        below = healthy * self.threshold.denominator < self.threshold.numerator * total
        triggered = below and not self.active
        cleared = (not below) and self.active
        if triggered:
            self.active = True
            self.trigger_count += 1
        elif cleared:
            self.active = False
        return BreakerStatus(healthy, total, True, below, triggered, cleared, self.active)

    def state_dict(self) -> dict[str, Any]:
        return {
            "timestamps": list(self._timestamps),
            "targets": list(self._targets),
            "active": self.active,
            "trigger_count": self.trigger_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._timestamps = deque((int(t) for t in state["timestamps"]), maxlen=self.window + 1)
        self._targets = deque((int(t) for t in state["targets"]), maxlen=self.window + 1)
        self.active = bool(state["active"])
        self.trigger_count = int(state["trigger_count"])
