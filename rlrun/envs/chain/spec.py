"""Validation helpers shared by the chain configs: every bad value becomes a one-line ConfigError that names
the full config key (e.g. `env.network.outbound`) and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rlrun.errors import ConfigError


def check_keys(cfg: Mapping[str, Any] | None, allowed: set[str], prefix: str) -> dict[str, Any]:
    """Return cfg as a plain dict, rejecting keys the section does not know (typos fail loudly)."""
    if cfg is None:
        return {}
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{prefix} must be a mapping of settings, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(
            f"{prefix}.{unknown[0]} is not a known setting; allowed: {', '.join(sorted(allowed))}")
    return dict(cfg)


def number(value: Any, key: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> float:
    """A finite float within [low, high] (or (low, high] with low_open)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{key} must be finite, got {value!r}")
    if low is not None and (x <= low if low_open else x < low):
        raise ConfigError(f"{key} must be {'>' if low_open else '>='} {low:g}, got {x:g}")
    if high is not None and x > high:
        raise ConfigError(f"{key} must be <= {high:g}, got {x:g}")
    return x


def integer(value: Any, key: str, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key} must be >= {low}, got {value}")
    return int(value)


def number_list(value: Any, key: str, *, length: int | None = None, low: float | None = None,
                low_open: bool = False) -> list[float]:
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        raise ConfigError(f"{key} must be a list of numbers, got {value!r}")
    if length is not None and len(value) != length:
        raise ConfigError(f"{key} must have {length} entries (one per region), got {len(value)}")
    return [number(v, f"{key}[{i}]", low=low, low_open=low_open) for i, v in enumerate(value)]


def choice(value: Any, key: str, allowed: list[str] | tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}")
    return str(value)
