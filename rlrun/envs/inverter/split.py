"""Which days of the year an inverter episode may be drawn from: train, validation and test splits.

Held-out data must look like what a deployed controller meets: every weekday (load shapes differ between
weekdays and weekends) and every season (PV and load both do). Holding out single days every k-th day of
the year gives one weekday only when k is a multiple of 7 (the old rule, `doy % 7 == 3`, held out
Wednesdays only). Whole weeks are held out instead: week w = day // 7 (2023-01-01, day 0, is a Sunday, so a
week runs Sunday to Saturday) is a test week if w % k == 1 and a validation week if w % k == 1 + k // 2,
k = `holdout_every_weeks`. With k = 8: 7 test weeks (one every two months, January to December), 6 validation weeks
in between, 274 training days. Validation days are what in-training evaluation and best-checkpoint
selection may look at; test days are for the final report only.
"""

from __future__ import annotations

import numpy as np

from rlrun.errors import ConfigError

SPLITS = ("train", "val", "test", "all")


def split_of_days(holdout_every_weeks: int) -> np.ndarray:
    """For each day of the year 0..364: 0 = train, 1 = validation, 2 = test."""
    k = int(holdout_every_weeks)
    if k < 3:
        raise ConfigError(
            f"env.holdout_every_weeks={k} leaves no training days: it must be >= 3 (one test week and one "
            "validation week in every k weeks, the rest for training)"
        )
    week = np.arange(365) // 7
    out = np.zeros(365, dtype=np.int64)
    out[(week % k == 1 + k // 2) & (week < 52)] = 1
    out[(week % k == 1) & (week < 52)] = 2
    return out


def days_of(split: str, holdout_every_weeks: int) -> np.ndarray:
    """The days of year a split draws from."""
    if split not in SPLITS:
        raise ConfigError(f"env.split must be one of {list(SPLITS)}, got {split!r}")
    label = split_of_days(holdout_every_weeks)
    days = np.arange(365)
    if split == "all":
        return days
    return days[label == SPLITS.index(split)]
