"""Staking economy of the BFT chain: Cosmos x/mint inflation and delegators bonding in response to the yield.

x/mint moves the inflation rate every block by (1 - bonded/goal) * InflationRateChange / BlocksPerYear, at
most 13 % a year: over an episode of about an hour and a half it moves by a few millionths, and the bonded
ratio, driven only by auto-compounded rewards, by even less. The agent would see two constant observations.
Monetary policy therefore runs on its own clock, `economy_speedup` times the consensus clock (default
1,000: an episode covers about two months of policy), while block rewards are still paid at the real rate.

Delegators compare the staking yield (inflation * (1 - community tax) / bonded ratio) with an outside
yield: they bond when staking pays more and unbond when it pays less, `DELEGATION_RESPONSE` of the supply
per year per unit of yield gap, plus a random walk of `DELEGATION_SIGMA` per square-root year (individual
delegators coming and going). Bonding and unbonding are pro rata, so voting power shares do not move; the
bonded ratio does, and with it the inflation x/mint sets, which is the loop Cosmos chains are designed around.
"""

from __future__ import annotations

import numpy as np

GOAL_BONDED = 0.67
INFLATION_RATE_CHANGE = 0.13  # per (policy) year
INFLATION_MIN, INFLATION_MAX = 0.07, 0.20
COMMUNITY_TAX = 0.02
OUTSIDE_YIELD = 0.15  # what bonded tokens must beat for delegators to bond more
DELEGATION_RESPONSE = 1.0  # share of supply bonded per year per unit of yield gap
DELEGATION_SIGMA = 0.05  # random walk of the bonded share, per square-root year
BONDED_MIN, BONDED_MAX = 0.05, 0.95
MS_PER_YEAR = 365.25 * 86400 * 1000.0


def next_inflation(inflation: float, bonded: float, policy_years: float) -> float:
    """x/mint's NextInflationRate over `policy_years` of its clock."""
    change = (1.0 - bonded / GOAL_BONDED) * INFLATION_RATE_CHANGE * policy_years
    return min(INFLATION_MAX, max(INFLATION_MIN, inflation + change))


def staking_yield(inflation: float, bonded: float) -> float:
    return inflation * (1.0 - COMMUNITY_TAX) / max(bonded, 1e-9)


def bonded_change(inflation: float, bonded: float, policy_years: float, z: float) -> float:
    """Change of the bonded share of supply over `policy_years`, kept inside [BONDED_MIN, BONDED_MAX]; `z` is
    a standard normal draw."""
    drift = DELEGATION_RESPONSE * (staking_yield(inflation, bonded) - OUTSIDE_YIELD) * policy_years
    target = bonded + drift + DELEGATION_SIGMA * np.sqrt(policy_years) * z
    return float(min(BONDED_MAX, max(BONDED_MIN, target)) - bonded)
