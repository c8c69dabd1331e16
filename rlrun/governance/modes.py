"""Agent modes and the bounded parameter update they govern (seed 001, "Agent Modes").

    Mode          ID  Max change  Behaviour
    Shadow         0     0%       observe and log the recommendation, change nothing (the default)
    Conservative   1   +-10%      apply changes within tight bounds
    Autonomous     2   +-25%      apply changes within wider bounds
    Paused         3     0%       idle: no observation, no inference

An action component a in [-1, 1] proposes new = current * (1 + a * max_change) for its parameter, clamped to
the parameter's [low, high]; the change is relative to the *current* value, so the bound holds per decision.
In Shadow mode the logged recommendation is what Conservative mode would have applied (the mode's own 0%
bound would make every recommendation "no change", which is useless to review before promotion).
Parameters marked `applied=False` (the seed's validator_set_size_delta) are recommended and logged, never
applied. Mode transitions are governance actions: `ParameterGovernor.set_mode` is the one entry point.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.errors import ConfigError


class AgentMode(IntEnum):
    SHADOW = 0
    CONSERVATIVE = 1
    AUTONOMOUS = 2
    PAUSED = 3


MODE_NAMES = tuple(m.name.lower() for m in AgentMode)


def parse_mode(value: str | int | AgentMode, key: str = "agent_mode") -> AgentMode:
    """Accept the mode's name (any case) or its seed ID (0-3, also as a string)."""
    if isinstance(value, AgentMode):
        return value
    text = str(value).strip().lower()
    if text.isdigit() and int(text) in AgentMode._value2member_map_:
        return AgentMode(int(text))
    if text in MODE_NAMES:
        return AgentMode[text.upper()]
    raise ConfigError(f"{key}={value!r} is not an agent mode; allowed: {', '.join(MODE_NAMES)} or 0-3")


def applies_changes(mode: AgentMode) -> bool:
    return mode in (AgentMode.CONSERVATIVE, AgentMode.AUTONOMOUS)


def runs_inference(mode: AgentMode) -> bool:
    """Paused is the only mode without observation collection and inference."""
    return mode != AgentMode.PAUSED


def max_change(mode: AgentMode, conservative: float = 0.10, autonomous: float = 0.25) -> float:
    """The mode's bound on the relative change of a parameter per decision."""
    return {AgentMode.CONSERVATIVE: conservative, AgentMode.AUTONOMOUS: autonomous}.get(mode, 0.0)


@dataclass(frozen=True)
class TunedParameter:
    """One RL-tunable parameter: its default (the circuit breaker reverts to it) and hard bounds."""

    name: str
    default: float
    low: float
    high: float
    applied: bool = True
    integer: bool = False

    def clamp(self, value: float) -> float:
        v = min(max(float(value), self.low), self.high)
        return float(round(v)) if self.integer else v


@dataclass
class Decision:
    mode: AgentMode
    action: np.ndarray | None  # clipped action, None when no inference ran
    recommended: dict[str, float]
    applied: dict[str, float]


class ParameterGovernor:
    """Holds the current values of the tuned parameters and turns actions into bounded updates."""

    def __init__(
        self,
        parameters: Sequence[TunedParameter],
        mode: AgentMode | str | int = AgentMode.SHADOW,
        max_change_conservative: float = 0.10,
        max_change_autonomous: float = 0.25,
        project: Callable[[dict[str, float]], dict[str, float]] | None = None,
    ) -> None:
        if not 0 <= max_change_conservative <= 1:
            raise ConfigError(f"max_change_conservative must be in [0, 1], got {max_change_conservative}")
        if not 0 <= max_change_autonomous <= 1:
            raise ConfigError(f"max_change_autonomous must be in [0, 1], got {max_change_autonomous}")
        for p in parameters:
            if not p.low <= p.default <= p.high:
                raise ConfigError(f"default {p.name}={p.default} is outside its bounds [{p.low}, {p.high}]")
        self.parameters = list(parameters)
        self.mode = parse_mode(mode)
        self.max_change_conservative = float(max_change_conservative)
        self.max_change_autonomous = float(max_change_autonomous)
        self.project = project
        self.values: dict[str, float] = {}
        self.revert()

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def defaults(self) -> dict[str, float]:
        return {p.name: float(p.default) for p in self.parameters}

    def revert(self) -> None:
        """Every parameter back to its default (the circuit breaker's first response)."""
        self.values = self.defaults()

    def set_mode(self, mode: AgentMode | str | int) -> None:
        self.mode = parse_mode(mode)

    def recommendation_bound(self) -> float:
        if self.mode == AgentMode.AUTONOMOUS:
            return self.max_change_autonomous
        return self.max_change_conservative  # Conservative, and what Shadow reports

    def decide(self, action: Any, paused: bool = False) -> Decision:
        """Recommend from the action and apply it if the mode allows (and the agent is not paused)."""
        if self.mode == AgentMode.PAUSED or action is None:
            cur = dict(self.values)
            return Decision(self.mode, None, cur, cur)
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if a.shape[0] != len(self.parameters):
            raise ValueError(f"expected an action of {len(self.parameters)} values, got {a.shape[0]}")
        if not np.all(np.isfinite(a)):
            raise ValueError("non-finite action")
        bound = self.recommendation_bound()
        rec = {
            p.name: p.clamp(self.values[p.name] * (1.0 + float(x) * bound))
            for p, x in zip(self.parameters, a, strict=True)
        }
        if self.project is not None:
            rec = self.project(rec)
        if applies_changes(self.mode) and not paused:
            for p in self.parameters:
                if p.applied:
                    self.values[p.name] = rec[p.name]
        return Decision(self.mode, a, rec, dict(self.values))


class JsonlLog:
    """Append-only JSON-lines file (shadow recommendations, circuit-breaker events), flushed per record so
    a crash loses nothing already logged."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=_jsonable, sort_keys=False) + "\n")


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
